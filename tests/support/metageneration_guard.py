"""An HTTP proxy that gives metadata PATCHes GCS's metageneration semantics, which the emulator lacks.

fake-gcs-server neither increments an object's metageneration on a PATCH nor checks
`ifMetagenerationMatch`, so two clients racing to change one object's metadata both "win" and the
second silently replaces the first: the lost race that octuefs must detect and merge never happens.
On GCS every metadata change increments the metageneration and a stale guard is answered 412.

This proxy does both. It counts the PATCHes it forwarded per object generation, adds that count to
the metageneration in every object resource it passes back (stats, listings, PATCH replies), and
refuses a PATCH whose guard is not the current value. The check and the PATCH happen under one
lock, so they are atomic as on GCS. Content downloads and everything else pass through untouched.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

OBJECT_PATH = re.compile(r"^/storage/v1/b/([^/]+)/o/([^/?]+)$")
METAGENERATION_MATCH = re.compile(r"[?&]ifMetagenerationMatch=(\d+)")
CONDITION_NOT_MET = b'{"error": {"code": 412, "message": "conditionNotMet (ifMetagenerationMatch)"}}'
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade"}
# Replies must come back uncompressed for their object resources to be read and adjusted.
NOT_FORWARDED = HOP_BY_HOP | {"accept-encoding"}
Reply = tuple[int, list[tuple[str, str]], bytes]
ObjectKey = tuple[str, str, str]  # bucket, name, generation


@dataclass
class MetagenerationGuard:
    upstream: str
    refused: int = 0
    bumps: Counter[ObjectKey] = field(default_factory=Counter)
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

    def metageneration(self, resource: dict[str, Any]) -> int:
        """The object's metageneration as GCS would report it: the emulator's plus the PATCHes it ignored."""
        key = (resource["bucket"], resource["name"], str(resource["generation"]))
        return int(resource.get("metageneration") or 1) + self.bumps[key]

    def adjusted(self, data: bytes) -> bytes:
        """A JSON API reply with every object resource's metageneration as GCS would report it."""
        try:
            document = json.loads(data)
        except ValueError:
            return data
        if not isinstance(document, dict):
            return data
        resources = document.get("items", []) if document.get("kind") == "storage#objects" else [document]
        for resource in resources:
            # The emulator's PATCH reply has neither `kind` nor `metageneration`: know an object by its identity.
            if isinstance(resource, dict) and {"bucket", "name", "generation"} <= resource.keys():
                resource["metageneration"] = str(self.metageneration(resource))
        return json.dumps(document).encode()


def _handler_for(guard: MetagenerationGuard) -> type[BaseHTTPRequestHandler]:
    upstream = urlsplit(guard.upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            target = urlsplit(self.path)
            if "alt=media" in target.query or not target.path.startswith(("/storage/v1/", "/upload/storage/v1/")):
                self._reply(*self._send(self.command, self.path, body))
                return
            if target.path.startswith("/upload/"):  # a new generation: no PATCH of it can have happened yet
                status, headers, data = self._send(self.command, self.path, body)
                self._reply(status, headers, guard.adjusted(data) if status == 200 else data)
                return
            if self.command != "PATCH" or OBJECT_PATH.match(target.path) is None:
                with guard.lock:  # so a reply shows the metadata and metageneration of the same PATCH
                    status, headers, data = self._send(self.command, self.path, body)
                self._reply(status, headers, guard.adjusted(data) if status == 200 else data)
                return
            with guard.lock:
                self._patch(target.path, body)

        def _patch(self, path: str, body: bytes) -> None:
            status, headers, data = self._send("GET", path, b"")
            if status != 200:
                self._reply(status, headers, data)
                return
            before = json.loads(data)
            expected = METAGENERATION_MATCH.search(self.path)
            if expected is not None and int(expected.group(1)) != guard.metageneration(before):
                guard.refused += 1
                self._reply(412, [("Content-Type", "application/json")], CONDITION_NOT_MET)
                return
            status, headers, data = self._send(self.command, self.path, body)
            if status == 200:
                after = json.loads(data)
                if after.get("metageneration") in (None, before.get("metageneration")):
                    bucket, name = OBJECT_PATH.match(path).groups()  # type: ignore[union-attr]
                    guard.bumps[(unquote(bucket), unquote(name), str(after["generation"]))] += 1
                data = guard.adjusted(data)
            self._reply(status, headers, data)

        def _send(self, method: str, path: str, body: bytes) -> Reply:
            headers = {key: value for key, value in self.headers.items() if key.lower() not in NOT_FORWARDED}
            if method != self.command:  # the metageneration GET carries none of the PATCH's body headers
                headers = {key: value for key, value in headers.items() if not key.lower().startswith("content-")}
            connection = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
            finally:
                connection.close()
            reply_headers = [
                (key, value.replace(guard.upstream, guard.url) if key.lower() == "location" else value)
                for key, value in response.getheaders()
                if key.lower() not in HOP_BY_HOP and key.lower() != "content-length"
            ]
            return response.status, reply_headers, data

        def _reply(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

    return Handler
