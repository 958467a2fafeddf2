"""Preconditions that GCS enforces and the emulator ignores, enforced by the test proxy.

fake-gcs-server honours `ifGenerationMatch` on simple uploads only: compose, rewrite, delete and
resumable upload sessions ignore it, so an append joined by compose, a rename's rewrite, the delete
after it or a file uploaded in parts would replace or remove another writer's object where GCS
answers 412. It also never increments an object's metageneration on a metadata PATCH and ignores
both `ifMetagenerationMatch` and `ifGenerationMatch` there, so two clients racing to change
metadata both "win", and a PATCH lands on a newer object than the one it was meant for. Without
this layer the tests of "never clobber" and of the metadata retry-merge would pass whatever
octuefs did.

Here every JSON reply reports metagenerations as GCS would (the emulator's plus the PATCHes it
did not count), and a guarded request whose precondition fails gets 412. Each check runs under
one lock with the request it guards, so the two are atomic, as on GCS.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

Reply = tuple[int, list[tuple[str, str]], bytes]
Send = Callable[[str, str, bytes], Reply]
ObjectKey = tuple[str, str, str]  # bucket, name, generation

OBJECT = re.compile(r"^/storage/v1/b/([^/]+)/o/([^/]+)$")
COMPOSE = re.compile(r"^/storage/v1/b/([^/]+)/o/(.+)/compose$")
REWRITE = re.compile(r"^/storage/v1/b/[^/]+/o/.+/rewriteTo/b/([^/]+)/o/(.+)$")
RESUMABLE = re.compile(r"^/upload/storage/v1/b/([^/]+)/o$")
JSON_REPLY = ("/storage/v1/", "/upload/storage/v1/")


def _refusal(condition: str) -> Reply:
    body = {"error": {"code": 412, "message": f"conditionNotMet ({condition}, enforced by the test proxy)"}}
    return 412, [("Content-Type", "application/json")], json.dumps(body).encode()


@dataclass
class Preconditions:
    refused: int = 0
    bumps: Counter[ObjectKey] = field(default_factory=Counter)
    sessions: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes, send: Send) -> Reply:
        """Send the request upstream unless a precondition it carries fails; replies as GCS would give them."""
        target = urlsplit(path)
        query = parse_qs(target.query)
        if "alt=media" in target.query or not target.path.startswith(JSON_REPLY):
            return send(method, path, body)
        if method == "POST" and RESUMABLE.match(target.path) and "resumable" in query.get("uploadType", []):
            return self._open_session(target.path, query, body, send, path)
        if method == "PATCH" and OBJECT.match(target.path):
            with self.lock:
                return self._patch(target.path, query, body, send, path)
        guarded = self._generation_guarded(method, target.path, query, headers)
        if guarded is None:
            # Unlocked, with the PATCHes counted before it was sent: a reply racing a PATCH may then show
            # one metageneration too few, which can only make a client's guarded PATCH fail and retry.
            # Counted after, the emulator's answer from before the PATCH would carry the PATCH's
            # metageneration, and a PATCH built on that old metadata would pass its guard.
            with self.lock:
                bumps = self.bumps.copy()
            return self._adjusted(send(method, path, body), bumps)
        bucket, name, expected = guarded
        with self.lock:
            current = self._current(bucket, name, send)
            # A delete of an object already gone is answered 404 by GCS whatever its guard says.
            if current.get("generation", "0") != expected and (current or method != "DELETE"):
                self.refused += 1
                return _refusal("ifGenerationMatch")
            reply = send(method, path, body)
            if COMPOSE.match(target.path) and reply[0] == 200 and current:
                reply = self._new_generation(bucket, name, current["generation"], reply, send)
            return self._adjusted(reply, self.bumps)

    @staticmethod
    def _new_generation(bucket: str, name: str, before: str, reply: Reply, send: Send) -> Reply:
        """A compose onto an existing object makes a new generation on GCS; the emulator keeps the old
        one, so a retried compose would pass its guard and join the bytes on twice. Copying the object
        onto itself gives it the new generation GCS would have."""
        if json.loads(reply[2]).get("generation") != before:
            return reply
        quoted = f"b/{quote(bucket, safe='')}/o/{quote(name, safe='')}"
        status, _, data = send("POST", f"/storage/v1/{quoted}/rewriteTo/{quoted}", b"")
        return (200, reply[1], json.dumps(json.loads(data)["resource"]).encode()) if status == 200 else reply

    def _generation_guarded(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str]
    ) -> tuple[str, str, str] | None:
        if method == "PUT" and "upload_id" in query:
            final = not headers.get("Content-Range", "").endswith("/*")
            session = self.sessions.get(query["upload_id"][0]) if final else None
            return None if session is None else (session[0], session[1], str(session[2]))
        if method == "DELETE":
            match = OBJECT.match(path)
        else:
            match = (COMPOSE.match(path) or REWRITE.match(path)) if method == "POST" else None
        if match is None or "ifGenerationMatch" not in query:
            return None
        return unquote(match.group(1)), unquote(match.group(2)), query["ifGenerationMatch"][0]

    def _open_session(self, path: str, query: dict[str, list[str]], body: bytes, send: Send, full: str) -> Reply:
        status, headers, data = send("POST", full, body)
        if status == 200 and "ifGenerationMatch" in query:
            bucket = unquote(RESUMABLE.match(path).group(1))  # type: ignore[union-attr]
            name = query["name"][0] if "name" in query else json.loads(body or b"{}")["name"]
            location = {key.lower(): value for key, value in headers}.get("location", "")
            upload_id = parse_qs(urlsplit(location).query).get("upload_id", [""])[0]
            self.sessions[upload_id] = (bucket, name, int(query["ifGenerationMatch"][0]))
        return status, headers, data

    def _patch(self, path: str, query: dict[str, list[str]], body: bytes, send: Send, full: str) -> Reply:
        bucket, name = (unquote(part) for part in OBJECT.match(path).groups())  # type: ignore[union-attr]
        before = self._current(bucket, name, send)
        if not before:
            return send("PATCH", full, body)
        generation = query.get("ifGenerationMatch", [None])[0]
        if generation is not None and generation != before["generation"]:
            self.refused += 1
            return _refusal("ifGenerationMatch")
        expected = query.get("ifMetagenerationMatch", [None])[0]
        if expected is not None and int(expected) != self._metageneration(before):
            self.refused += 1
            return _refusal("ifMetagenerationMatch")
        status, headers, data = send("PATCH", full, body)
        if status == 200:
            after = json.loads(data)
            if after.get("metageneration") in (None, before.get("metageneration")):
                self.bumps[(bucket, name, str(after["generation"]))] += 1
        return self._adjusted((status, headers, data), self.bumps)

    def _current(self, bucket: str, name: str, send: Send) -> dict[str, Any]:
        status, _, data = send("GET", f"/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}", b"")
        return json.loads(data) if status == 200 else {}

    def _metageneration(self, resource: dict[str, Any], bumps: Counter[ObjectKey] | None = None) -> int:
        """The object's metageneration as GCS would report it: the emulator's plus the PATCHes it ignored
        (all of them, or those counted in `bumps`)."""
        key = (resource["bucket"], resource["name"], str(resource["generation"]))
        return int(resource.get("metageneration") or 1) + (self.bumps if bumps is None else bumps)[key]

    def _adjusted(self, reply: Reply, bumps: Counter[ObjectKey]) -> Reply:
        """Every object resource in a JSON reply with its metageneration as GCS would report it."""
        status, headers, data = reply
        try:
            document = json.loads(data) if status == 200 else None
        except ValueError:
            return reply
        if not isinstance(document, dict):
            return reply
        resources = document.get("items", []) if document.get("kind") == "storage#objects" else [document]
        for resource in resources:
            # The emulator's PATCH reply has neither `kind` nor `metageneration`: know an object by its identity.
            if isinstance(resource, dict) and {"bucket", "name", "generation"} <= resource.keys():
                resource["metageneration"] = str(self._metageneration(resource, bumps))
        return status, headers, json.dumps(document).encode()
