"""A real HTTP proxy between octuefs and the GCS server that counts requests and injects faults.

Counting at the wire proves laziness and request budgets instead of assuming them; faults
(a status for the next N matching requests) exercise retries and precondition races that the
emulator itself never produces.
"""

from __future__ import annotations

import http.client
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade"}


@dataclass
class Request:
    method: str
    path: str
    request_bytes: int
    response_bytes: int
    status: int
    range: str | None

    @property
    def kind(self) -> str:
        """A coarse name for the request: list, stat, media, upload, patch, delete, other."""
        path = urlsplit(self.path)
        if path.path.startswith("/upload/"):
            return "upload"
        if self.method == "PATCH":
            return "patch"
        if self.method == "DELETE":
            return "delete"
        if "alt=media" in path.query or path.path.startswith("/download/"):
            return "media"
        if self.method == "GET" and re.search(r"/b/[^/]+/o$", path.path):
            return "list"
        if self.method == "GET" and "/o/" in path.path:
            return "stat"
        return "other"


@dataclass
class Fault:
    """The next `remaining` requests matching `method` and `path_pattern` get `status` instead of the
    server's answer; with `corrupt=True` they get the server's answer with one body byte flipped."""

    method: str
    path_pattern: str
    status: int
    remaining: int
    corrupt: bool = False
    body: bytes = b'{"error": {"code": 0, "message": "injected by the test proxy"}}'


@dataclass
class CountingProxy:
    upstream: str
    requests: list[Request] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.faults.clear()

    def inject(self, method: str, path_pattern: str, status: int, count: int = 1) -> None:
        with self.lock:
            self.faults.append(Fault(method, path_pattern, status, count))

    def corrupt(self, method: str, path_pattern: str, count: int = 1) -> None:
        with self.lock:
            self.faults.append(Fault(method, path_pattern, 0, count, corrupt=True))

    def kinds(self) -> list[str]:
        with self.lock:
            return [request.kind for request in self.requests]

    def count(self, kind: str) -> int:
        return self.kinds().count(kind)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.remaining > 0 and fault.method == method and re.search(fault.path_pattern, path):
                    fault.remaining -= 1
                    return fault
        return None


def _handler_for(proxy: CountingProxy) -> type[BaseHTTPRequestHandler]:
    upstream = urlsplit(proxy.upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            fault = proxy._take_fault(self.command, self.path)
            if fault is not None and not fault.corrupt:
                self._reply(fault.status, [("Content-Type", "application/json")], fault.body, len(body))
                return
            connection = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
            headers = {key: value for key, value in self.headers.items() if key.lower() not in HOP_BY_HOP}
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            connection.close()
            if fault is not None and data:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            reply_headers = []
            for key, value in response.getheaders():
                if key.lower() in HOP_BY_HOP or key.lower() == "content-length":
                    continue
                if key.lower() == "location":
                    value = value.replace(proxy.upstream, proxy.url)
                reply_headers.append((key, value))
            self._reply(response.status, reply_headers, data, len(body))

        def _reply(self, status: int, headers: list[tuple[str, str]], data: bytes, request_bytes: int) -> None:
            with proxy.lock:
                proxy.requests.append(
                    Request(self.command, self.path, request_bytes, len(data), status, self.headers.get("Range"))
                )
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

    return Handler
