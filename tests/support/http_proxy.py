"""A real HTTP proxy between octuefs and the GCS server that counts requests and injects faults.

Counting at the wire proves laziness and request budgets instead of assuming them; faults exercise
retries, precondition races and broken transfers that the emulator itself never produces. Every
fault is bounded, in count or in time or both, so a test that forgets to clear one cannot turn
into a server that never answers again. Generation preconditions the emulator ignores are
enforced here as GCS enforces them (see `tests.support.preconditions`).
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import urlsplit

from tests.support.preconditions import Preconditions

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade"}
# Lengths are set by the connection for each body sent (the preconditions layer sends bodies of its own).
# The upstream's own host goes out (set by the connection): the server reads a path-style object URL
# (a signed URL) as such only when the Host header is its public host.
NOT_FORWARDED = HOP_BY_HOP | {"accept-encoding", "content-length", "host"}

FaultKind = Literal["status", "corrupt", "delay", "reset", "truncate", "short", "trickle"]


@dataclass
class Request:
    method: str
    path: str
    request_bytes: int
    response_bytes: int
    status: int
    range: str | None
    fault: FaultKind | None = None

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
    """What happens to requests matching `method` (None: any) and `path_pattern`, for the next
    `remaining` of them (None: any number) while `lasting` seconds have not passed since it was added
    (None: no time limit); at least one of the two bounds is required.

    - status: answered with `status` and `body`, `seconds` late; the server never sees the request.
    - corrupt: the server's answer with its first body byte flipped (same length).
    - delay: the server's answer, `seconds` late.
    - reset: the connection is reset without a reply; before the request reaches the server, or
      with `after_server=True` after the server acted on it (an upload that happened, unheard of).
    - truncate: the server's status and its full Content-Length, then only `keep` body bytes and a close.
    - short: the server's status with only `keep` body bytes, consistently declared as the length.
    - trickle: the server's whole answer, its body sent `keep` bytes at a time `seconds` apart (a slow
      but flowing connection).
    """

    kind: FaultKind
    method: str | None
    path_pattern: str
    remaining: int | None = 1
    lasting: float | None = None
    status: int = 503
    seconds: float = 0.0
    keep: int = 0
    after_server: bool = False
    body: bytes = b'{"error": {"code": 0, "message": "injected by the test proxy"}}'
    until: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.remaining is None and self.lasting is None:
            raise ValueError("a fault needs a bound: a count (remaining), a time (lasting), or both")

    def active(self, now: float) -> bool:
        return (self.remaining is None or self.remaining > 0) and (self.until is None or now < self.until)


@dataclass
class CountingProxy:
    upstream: str
    requests: list[Request] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    down_until: float = 0.0
    preconditions: Preconditions = field(default_factory=Preconditions)

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
            self.down_until = 0.0
            self.preconditions.refused = 0

    def add(self, fault: Fault) -> Fault:
        """Arm `fault` (its time bound starts now); the returned object shows how much of it is left."""
        with self.lock:
            if fault.lasting is not None:
                fault.until = time.monotonic() + fault.lasting
            self.faults.append(fault)
        return fault

    def inject(self, method: str, path_pattern: str, status: int, count: int = 1) -> None:
        self.add(Fault("status", method, path_pattern, remaining=count, status=status))

    def corrupt(self, method: str, path_pattern: str, count: int = 1) -> None:
        self.add(Fault("corrupt", method, path_pattern, remaining=count))

    def down(self, lasting: float) -> None:
        """The server is gone for `lasting` seconds (or until `up()`): replies still in flight are lost
        and every new request has its connection reset, as when the server process is killed."""
        with self.lock:
            self.down_until = time.monotonic() + lasting

    def up(self) -> None:
        with self.lock:
            self.down_until = 0.0

    def is_down(self) -> bool:
        with self.lock:
            return time.monotonic() < self.down_until

    def kinds(self) -> list[str]:
        with self.lock:
            return [request.kind for request in self.requests]

    def count(self, kind: str) -> int:
        return self.kinds().count(kind)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            now = time.monotonic()
            for fault in self.faults:
                if fault.active(now) and fault.method in (None, method) and re.search(fault.path_pattern, path):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return fault
        return None


def _handler_for(proxy: CountingProxy) -> type[BaseHTTPRequestHandler]:
    upstream = urlsplit(proxy.upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body leave in separate writes: with Nagle's algorithm the body then waits for the
        # client's delayed ACK (~40 ms a request), which real GCS does not add.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if proxy.is_down():
                self._reset(None, len(body))
                return
            fault = proxy._take_fault(self.command, self.path)
            kind = fault.kind if fault is not None else None
            if fault is not None and fault.kind == "status":
                time.sleep(fault.seconds)
                self._reply(fault.status, [("Content-Type", "application/json")], fault.body, len(body), fault)
                return
            if fault is not None and fault.kind == "reset" and not fault.after_server:
                self._reset(fault, len(body))
                return
            if fault is not None and fault.kind == "delay":
                time.sleep(fault.seconds)
            try:
                headers = {key: value for key, value in self.headers.items()}
                status, reply_headers, data = proxy.preconditions.forward(
                    self.command, self.path, headers, body, self._ask_upstream
                )
            except OSError:
                # The server is unreachable (stopped, or refusing): the client sees its connection dropped.
                self._reset(fault, len(body))
                return
            if proxy.is_down() or kind == "reset":
                self._reset(fault, len(body))
                return
            declared = len(data)
            if kind == "corrupt" and data:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            if fault is not None and fault.kind in ("truncate", "short"):
                data = data[: fault.keep]
                declared = declared if fault.kind == "truncate" else len(data)
                self.close_connection = True
            self._reply(status, reply_headers, data, len(body), fault, declared)

        def _ask_upstream(self, method: str, path: str, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
            connection = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
            try:
                # Replies come back uncompressed, so their object resources can be read and adjusted.
                headers = {key: value for key, value in self.headers.items() if key.lower() not in NOT_FORWARDED}
                if method != self.command:  # the guard's own GET carries none of the request's body headers
                    headers = {key: value for key, value in headers.items() if not key.lower().startswith("content-")}
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
            finally:
                connection.close()
            reply_headers = []
            for key, value in response.getheaders():
                # A HEAD's length describes the body it did not send: pass it on as the server said it.
                if key.lower() in HOP_BY_HOP or (key.lower() == "content-length" and method != "HEAD"):
                    continue
                if key.lower() == "location":
                    value = value.replace(proxy.upstream, proxy.url)
                reply_headers.append((key, value))
            return response.status, reply_headers, data

        def _record(self, status: int, request_bytes: int, response_bytes: int, fault: Fault | None) -> None:
            with proxy.lock:
                proxy.requests.append(
                    Request(
                        self.command,
                        self.path,
                        request_bytes,
                        response_bytes,
                        status,
                        self.headers.get("Range"),
                        fault.kind if fault is not None else None,
                    )
                )

        def _reply(
            self,
            status: int,
            headers: list[tuple[str, str]],
            data: bytes,
            request_bytes: int,
            fault: Fault | None = None,
            declared: int | None = None,
        ) -> None:
            self._record(status, request_bytes, len(data), fault)
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            if self.command == "HEAD":
                # No body, not even an injected fault's: its bytes would be read as the next reply on the
                # same keep-alive connection.
                self.end_headers()
                return
            self.send_header("Content-Length", str(len(data) if declared is None else declared))
            self.end_headers()
            if fault is not None and fault.kind == "trickle":
                for start in range(0, len(data), fault.keep):
                    self.wfile.write(data[start : start + fault.keep])
                    self.wfile.flush()
                    time.sleep(fault.seconds)
                return
            self.wfile.write(data)

        def _reset(self, fault: Fault | None, request_bytes: int) -> None:
            """Close with a TCP reset (SO_LINGER 0) and no reply, as a crashed server's kernel would."""
            self._record(0, request_bytes, 0, fault)
            self.close_connection = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # Detached, so the handler's own clean-up later finds a closed socket instead of a reused fd.
            os.close(self.connection.detach())

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

    return Handler
