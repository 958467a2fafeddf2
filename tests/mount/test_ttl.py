"""Changes made by other clients appear once the metadata TTL has passed (--metadata-ttl 1)."""

from __future__ import annotations

import json
import os
import time

import pytest

pytestmark = pytest.mark.timeout(60)

TTL = 1.0
PAST_TTL = 1.5


def test_new_and_deleted_objects_appear_after_the_ttl(mount, bucket):
    bucket.blob("logs/first.txt").upload_from_string(b"first\n")
    bucket.blob("logs/doomed.txt").upload_from_string(b"doomed\n")
    mounted = mount(metadata_ttl=TTL)
    assert mounted.sh("ls", mounted / "logs").stdout.decode().split() == ["doomed.txt", "first.txt"]

    bucket.blob("logs/second.txt").upload_from_string(b"second\n")
    bucket.blob("logs/doomed.txt").delete()
    bucket.blob("new-dir/inside.txt").upload_from_string(b"inside\n")
    time.sleep(PAST_TTL)

    assert mounted.sh("ls", mounted / "logs").stdout.decode().split() == ["first.txt", "second.txt"]
    assert mounted.sh("ls", mounted.path).stdout.decode().split() == ["logs", "new-dir"]
    assert mounted.sh("cat", mounted / "logs/second.txt").stdout == b"second\n"
    assert mounted.read_bytes("new-dir/inside.txt") == b"inside\n"
    assert not mounted.call(os.path.exists, mounted / "logs/doomed.txt")


def test_tags_changed_in_the_cloud_appear_after_the_ttl(mount, bucket):
    blob = bucket.blob("data.csv")
    blob.metadata = {"octue__tags": json.dumps({"site": "north"})}
    blob.upload_from_string(b"a,b\n1,2\n")
    mounted = mount(metadata_ttl=TTL)
    path = mounted / "data.csv"
    assert mounted.call(os.getxattr, path, "user.octue.tag.site") == b'"north"'

    blob.metadata = {"octue__tags": json.dumps({"site": "south", "height": 80})}
    blob.patch()
    time.sleep(PAST_TTL)

    shown = mounted.sh("getfattr", "-d", "--absolute-names", path).stdout.decode()
    assert 'user.octue.tag.height="80"' in shown
    assert mounted.call(os.getxattr, path, "user.octue.tag.site") == b'"south"'
    assert json.loads(mounted.call(os.getxattr, path, "user.octue.tags")) == {"site": "south", "height": 80}
