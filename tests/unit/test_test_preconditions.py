"""The test proxy's metageneration bookkeeping (tests/support/preconditions.py) under a race.

A reply computed by the emulator before a PATCH must not be reported with the metageneration the
PATCH made: a client would then send a PATCH guarded by the new metageneration but built on the old
metadata, and the proxy would let it overwrite the other writer's change (which GCS refuses).
"""

from __future__ import annotations

import json

from tests.support.preconditions import Preconditions, Reply

OBJECT_PATH = "/storage/v1/b/bucket/o/name"


class FakeEmulator:
    """Like fake-gcs-server: PATCHes change metadata but never the metageneration."""

    def __init__(self) -> None:
        self.resource = {"bucket": "bucket", "name": "name", "generation": "7", "metageneration": "1", "metadata": {}}

    def send(self, method: str, path: str, body: bytes) -> Reply:
        if method == "PATCH":
            self.resource = {**self.resource, "metadata": json.loads(body)["metadata"]}
        return 200, [], json.dumps(self.resource).encode()


def test_a_get_answered_before_a_racing_patch_keeps_the_metageneration_it_was_answered_at():
    preconditions = Preconditions()
    emulator = FakeEmulator()

    def get_racing_a_patch(method: str, path: str, body: bytes) -> Reply:
        answer = emulator.send(method, path, body)  # the emulator answers the GET first...
        patch = json.dumps({"metadata": {"theirs": "1"}}).encode()
        # ...then another client's PATCH lands before the proxy reports that answer.
        preconditions.forward("PATCH", f"{OBJECT_PATH}?ifMetagenerationMatch=1", {}, patch, emulator.send)
        return answer

    _, _, data = preconditions.forward("GET", OBJECT_PATH, {}, b"", get_racing_a_patch)
    stale = json.loads(data)
    assert stale["metadata"] == {}
    assert stale["metageneration"] == "1"

    ours = json.dumps({"metadata": {"ours": "1"}}).encode()
    status, _, _ = preconditions.forward(
        "PATCH", f"{OBJECT_PATH}?ifMetagenerationMatch={stale['metageneration']}", {}, ours, emulator.send
    )
    assert status == 412
    assert emulator.resource["metadata"] == {"theirs": "1"}
