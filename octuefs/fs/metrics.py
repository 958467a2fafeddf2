"""The mount's counters in Prometheus text format, served when `--metrics-port` is given (on 127.0.0.1 unless
`--metrics-address` says otherwise)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)

COUNTERS_BY_LABEL = (
    ("requests", "octuefs_requests_total", "kind", "Storage requests sent, by kind."),
    ("failed_requests", "octuefs_failed_requests_total", "kind", "Storage requests that failed, by kind."),
    ("errors", "octuefs_errors_total", "errno", "FUSE requests answered with an error, by errno."),
)
SCALARS = (
    (("bytes_down",), "octuefs_bytes_down_total", "counter", "Bytes downloaded."),
    (("bytes_up",), "octuefs_bytes_up_total", "counter", "Bytes uploaded."),
    (("cache", "hits"), "octuefs_cache_hits_total", "counter", "Chunk cache hits."),
    (("cache", "misses"), "octuefs_cache_misses_total", "counter", "Chunk cache misses."),
    (("cache", "size_bytes"), "octuefs_cache_size_bytes", "gauge", "Bytes in the chunk cache on disk."),
    (("cache", "max_bytes"), "octuefs_cache_max_bytes", "gauge", "Bound of the chunk cache."),
    (("open_files",), "octuefs_open_files", "gauge", "Open file handles."),
    (("pending_uploads",), "octuefs_pending_uploads", "gauge", "Files written here and not yet uploaded."),
    (("stalled_reads_retried",), "octuefs_stalled_reads_retried_total", "counter", "Stalled ranged GETs retried."),
    (("server", "outages"), "octuefs_server_outages_total", "counter", "Times the storage server was lost."),
)
# The server's state and its last loss and return, as numbers (0: never).
SERVER_GAUGES = (
    ("octuefs_server_up", "1 while the storage server answers (breaker closed), 0 while it is lost."),
    ("octuefs_server_lost_at_seconds", "Unix time since which the server was last unreachable."),
    ("octuefs_server_found_at_seconds", "Unix time the server was last found again after being lost."),
)


def _server_values(server: dict[str, Any]) -> tuple[float, ...]:
    def moment(text: str | None) -> float:
        return datetime.fromisoformat(text).timestamp() if text else 0

    return (0 if server["state"] == "down" else 1, moment(server["lost_at"]), moment(server["found_at"]))


def prometheus_text(statistics: dict[str, Any]) -> str:
    lines = []
    for key, name, label, description in COUNTERS_BY_LABEL:
        lines += [f"# HELP {name} {description}", f"# TYPE {name} counter"]
        lines += [f'{name}{{{label}="{value_label}"}} {count}' for value_label, count in statistics[key].items()]
    for path, name, kind, description in SCALARS:
        value: Any = statistics
        for part in path:
            value = value[part]
        lines += [f"# HELP {name} {description}", f"# TYPE {name} {kind}", f"{name} {value}"]
    for (name, description), value in zip(SERVER_GAUGES, _server_values(statistics["server"]), strict=True):
        lines += [f"# HELP {name} {description}", f"# TYPE {name} gauge", f"{name} {value:.0f}"]
    return "\n".join(lines) + "\n"


def serve_metrics(address: str, port: int, statistics: Callable[[], dict[str, Any]]) -> ThreadingHTTPServer:
    """Serve GET /metrics on address:port from a daemon thread; the caller shuts it down."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] not in ("/metrics", "/"):
                self.send_error(404)
                return
            body = prometheus_text(statistics()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("metrics: " + format, *args)

    server = ThreadingHTTPServer((address, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
