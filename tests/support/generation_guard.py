"""Generation preconditions that GCS enforces and the emulator ignores, enforced by the test proxy.

fake-gcs-server honours `ifGenerationMatch` on simple uploads but not on compose, rewrite or
resumable upload sessions: an append joined by compose, a rename's rewrite or a file uploaded in
parts would replace another writer's object there, where GCS answers 412. Without this the tests
of "never clobber" for those paths would pass whatever octuefs did. The check and the request it
guards run under one lock, so they are atomic as on GCS.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, quote, unquote, urlsplit

Reply = tuple[int, list[tuple[str, str]], bytes]
Send = Callable[[str, str, bytes], Reply]

COMPOSE = re.compile(r"^/storage/v1/b/([^/]+)/o/(.+)/compose$")
REWRITE = re.compile(r"^/storage/v1/b/[^/]+/o/.+/rewriteTo/b/([^/]+)/o/(.+)$")
RESUMABLE = re.compile(r"^/upload/storage/v1/b/([^/]+)/o$")
CONDITION_NOT_MET = b'{"error": {"code": 412, "message": "conditionNotMet (ifGenerationMatch, by the test proxy)"}}'


@dataclass
class GenerationGuard:
    refused: int = 0
    sessions: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes, send: Send) -> Reply:
        """Send the request upstream, unless it carries a generation precondition the object fails."""
        target = urlsplit(path)
        query = parse_qs(target.query)
        if method == "POST" and RESUMABLE.match(target.path) and "resumable" in query.get("uploadType", []):
            return self._open_session(target.path, query, body, send, path)
        guarded = self._guarded(method, target.path, query, headers)
        if guarded is None:
            return send(method, path, body)
        bucket, name, expected = guarded
        with self.lock:
            if self._generation(bucket, name, send) != expected:
                self.refused += 1
                return 412, [("Content-Type", "application/json")], CONDITION_NOT_MET
            return send(method, path, body)

    def _guarded(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str]
    ) -> tuple[str, str, int] | None:
        if method == "PUT" and "upload_id" in query:
            final = not headers.get("Content-Range", "").endswith("/*")
            return self.sessions.get(query["upload_id"][0]) if final else None
        match = (COMPOSE.match(path) or REWRITE.match(path)) if method == "POST" else None
        if match is None or "ifGenerationMatch" not in query:
            return None
        return unquote(match.group(1)), unquote(match.group(2)), int(query["ifGenerationMatch"][0])

    def _open_session(self, path: str, query: dict[str, list[str]], body: bytes, send: Send, full: str) -> Reply:
        status, headers, data = send("POST", full, body)
        if status == 200 and "ifGenerationMatch" in query:
            bucket = unquote(RESUMABLE.match(path).group(1))  # type: ignore[union-attr]
            name = query["name"][0] if "name" in query else json.loads(body or b"{}")["name"]
            location = dict((key.lower(), value) for key, value in headers).get("location", "")
            upload_id = parse_qs(urlsplit(location).query).get("upload_id", [""])[0]
            self.sessions[upload_id] = (bucket, name, int(query["ifGenerationMatch"][0]))
        return status, headers, data

    @staticmethod
    def _generation(bucket: str, name: str, send: Send) -> int:
        status, _, data = send("GET", f"/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}", b"")
        return int(json.loads(data)["generation"]) if status == 200 else 0
