"""Octue metadata as `user.octue.*` extended attributes, driven by getfattr/setfattr and os.*xattr.

Every change is checked on the object itself with the plain google-cloud-storage client: Octue's
wire format, the same generation (no re-upload), foreign keys kept, and exactly one PATCH on the
wire. Every refused change is checked to have sent nothing and changed nothing.
"""

from __future__ import annotations

import errno
import json
import os
from datetime import datetime

import pytest

from tests.mount.conftest import alive, run

pytestmark = pytest.mark.timeout(60)

PREFIX = "user.octue."
NAME = "tables/readings.csv"
PLAIN = "tables/plain.csv"
CONTENT = b"t,speed\n0,3.5\n1,4.25\n"
OCTUE_ID = "11111111-1111-4111-8111-111111111111"
STORED = {
    "owner": "alice",
    "octue__id": json.dumps(OCTUE_ID),
    "octue__timestamp": '{"_type": "datetime", "value": "2024-05-06T07:08:09.123456"}',
    "octue__tags": '{"manufacturer": "Vestas", "height": 350, "is_on": true}',
    "octue__labels": '{"_type": "set", "items": ["a1", "met-mast"]}',
    "octue__sdk_version": '"0.69.1"',
}
OCTUE_KEYS = {"octue__id", "octue__timestamp", "octue__tags", "octue__labels", "octue__sdk_version"}


@pytest.fixture
def objects(bucket):
    """An object with Octue metadata and a foreign key, and one with only a foreign key."""
    for name, metadata in ((NAME, STORED), (PLAIN, {"owner": "alice"})):
        blob = bucket.blob(name)
        blob.metadata = metadata
        blob.upload_from_string(CONTENT, content_type="text/csv")
    return {name: bucket.get_blob(name) for name in (NAME, PLAIN)}


@pytest.fixture
def mounted(mount, objects, proxy):
    """The bucket mounted with both objects already looked up, and the request log emptied."""
    mounted = mount()
    mounted.sh("ls", "-l", mounted / "tables")
    proxy.reset()
    return mounted


def cloud(bucket, name: str):
    return bucket.get_blob(name)


def octue_fields(blob) -> dict:
    """The object's Octue metadata decoded, after checking it is complete Octue wire format."""
    metadata = blob.metadata or {}
    assert set(metadata) >= OCTUE_KEYS, metadata
    fields = {key.removeprefix("octue__"): json.loads(metadata[key]) for key in OCTUE_KEYS}
    labels = fields["labels"]
    assert set(labels) == {"_type", "items"} and labels["_type"] == "set", labels
    assert labels["items"] == sorted(labels["items"])
    assert fields["sdk_version"] == "0.69.1"
    return fields


def attributes(mounted, relative: str) -> dict[str, str]:
    """`getfattr -d` of a file as name → text value."""
    output = mounted.sh("getfattr", "-d", "--absolute-names", mounted / relative).stdout.decode()
    found = {}
    for line in output.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        found[name] = json.loads(value) if value.startswith('"') else value
    return found


def setfattr(mounted, relative: str, name: str, value: str) -> None:
    mounted.sh("setfattr", "-n", name, "-v", value, mounted / relative)


def assert_one_patch_and_unchanged_content(proxy, before, after) -> None:
    assert proxy.kinds() == ["patch"], proxy.kinds()
    assert after.generation == before.generation
    assert after.crc32c == before.crc32c
    assert after.metadata["owner"] == "alice"


def test_getfattr_shows_the_octue_metadata(mounted, objects):
    blob = objects[NAME]

    shown = attributes(mounted, NAME)

    assert shown == {
        PREFIX + "id": OCTUE_ID,
        PREFIX + "hash": blob.crc32c,
        PREFIX + "cloud_path": f"gs://{blob.bucket.name}/{NAME}",
        PREFIX + "tags": '{"manufacturer": "Vestas", "height": 350, "is_on": true}',
        PREFIX + "tag.manufacturer": '"Vestas"',
        PREFIX + "tag.height": "350",
        PREFIX + "tag.is_on": "true",
        PREFIX + "labels": "a1 met-mast",
        PREFIX + "timestamp": "2024-05-06T07:08:09.123456",
    }
    assert json.loads(shown[PREFIX + "tags"]) == {"manufacturer": "Vestas", "height": 350, "is_on": True}
    path = mounted / NAME
    assert mounted.call(os.getxattr, path, PREFIX + "hash") == blob.crc32c.encode()
    assert sorted(mounted.call(os.listxattr, path)) == sorted(shown)


def test_an_object_without_octue_metadata_has_a_stable_id_and_no_labels_or_timestamp(mounted, objects):
    path = mounted / PLAIN

    shown = attributes(mounted, PLAIN)

    assert set(shown) == {PREFIX + "id", PREFIX + "hash", PREFIX + "cloud_path", PREFIX + "tags"}
    assert shown[PREFIX + "tags"] == "{}"
    assert attributes(mounted, PLAIN)[PREFIX + "id"] == shown[PREFIX + "id"]
    for missing in ("labels", "timestamp", "tag.height"):
        with pytest.raises(OSError) as raised:
            mounted.call(os.getxattr, path, PREFIX + missing)
        assert raised.value.errno == errno.ENODATA, missing


def test_setting_one_tag_patches_metadata_only(mounted, objects, bucket, proxy):
    setfattr(mounted, NAME, PREFIX + "tag.height", "120")

    after = cloud(bucket, NAME)
    assert_one_patch_and_unchanged_content(proxy, objects[NAME], after)
    fields = octue_fields(after)
    assert fields["tags"] == {"manufacturer": "Vestas", "height": 120, "is_on": True}
    assert fields["id"] == OCTUE_ID
    assert fields["labels"]["items"] == ["a1", "met-mast"]
    assert fields["timestamp"] == {"_type": "datetime", "value": "2024-05-06T07:08:09.123456"}
    assert mounted.call(os.getxattr, mounted / NAME, PREFIX + "tag.height") == b"120"


def test_a_tag_value_that_is_json_is_stored_as_json_and_other_text_as_a_string(mounted, objects, bucket, proxy):
    mounted.call(os.setxattr, mounted / NAME, PREFIX + "tag.position", b'{"lat": 51.5, "levels": [1, 2]}')
    assert_one_patch_and_unchanged_content(proxy, objects[NAME], cloud(bucket, NAME))
    proxy.reset()

    setfattr(mounted, NAME, PREFIX + "tag.note", "calibrated on site, see log")
    assert_one_patch_and_unchanged_content(proxy, objects[NAME], cloud(bucket, NAME))

    tags = octue_fields(cloud(bucket, NAME))["tags"]
    assert tags["position"] == {"lat": 51.5, "levels": [1, 2]}
    assert tags["note"] == "calibrated on site, see log"
    assert tags["manufacturer"] == "Vestas"
    assert mounted.call(os.getxattr, mounted / NAME, PREFIX + "tag.note") == b'"calibrated on site, see log"'


def test_setting_tags_replaces_all_tags(mounted, objects, bucket, proxy):
    setfattr(mounted, NAME, PREFIX + "tags", '{"site": "north", "n_samples": 3}')

    after = cloud(bucket, NAME)
    assert_one_patch_and_unchanged_content(proxy, objects[NAME], after)
    assert octue_fields(after)["tags"] == {"site": "north", "n_samples": 3}
    listed = set(mounted.call(os.listxattr, mounted / NAME))
    assert {PREFIX + "tag.site", PREFIX + "tag.n_samples"} <= listed
    assert PREFIX + "tag.manufacturer" not in listed


def test_the_first_change_to_a_plain_object_writes_complete_octue_metadata(mounted, objects, bucket, proxy):
    shown_id = attributes(mounted, PLAIN)[PREFIX + "id"]

    setfattr(mounted, PLAIN, PREFIX + "tag.site", "2")

    after = cloud(bucket, PLAIN)
    assert_one_patch_and_unchanged_content(proxy, objects[PLAIN], after)
    fields = octue_fields(after)
    assert fields["id"] == shown_id
    assert fields["tags"] == {"site": 2}
    assert fields["labels"] == {"_type": "set", "items": []}
    assert fields["timestamp"] is None


def test_a_listing_from_before_a_change_never_brings_the_old_metadata_back(mounted, objects, bucket, proxy):
    path = mounted / NAME
    setfattr(mounted, NAME, PREFIX + "tag.height", "120")

    mounted.sh("ls", "-l", mounted / "tables")  # served from the listing fetched before the change

    assert mounted.call(os.getxattr, path, PREFIX + "tag.height") == b"120"
    setfattr(mounted, NAME, PREFIX + "tag.site", "4")
    assert octue_fields(cloud(bucket, NAME))["tags"] == {
        "manufacturer": "Vestas",
        "height": 120,
        "is_on": True,
        "site": 4,
    }
    assert proxy.kinds() == ["patch", "patch"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Lidar, Met-Mast  turbine", ["lidar", "met-mast", "turbine"]),
        ('["Wind-Turbine", "b2"]', ["b2", "wind-turbine"]),
    ],
)
def test_setting_labels_from_words_or_a_json_list(mounted, objects, bucket, proxy, value, expected):
    setfattr(mounted, NAME, PREFIX + "labels", value)

    after = cloud(bucket, NAME)
    assert_one_patch_and_unchanged_content(proxy, objects[NAME], after)
    assert octue_fields(after)["labels"] == {"_type": "set", "items": expected}
    assert mounted.call(os.getxattr, mounted / NAME, PREFIX + "labels") == " ".join(expected).encode()


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("2025-03-04T05:06:07+00:00", "2025-03-04T05:06:07+00:00"),
        # Epoch seconds become naive local time, as Octue's `datetime.fromtimestamp` makes them.
        ("1700000000", datetime.fromtimestamp(1700000000).isoformat()),
    ],
)
def test_setting_the_timestamp_from_iso_8601_or_epoch_seconds(mounted, objects, bucket, proxy, value, stored):
    setfattr(mounted, NAME, PREFIX + "timestamp", value)

    after = cloud(bucket, NAME)
    assert_one_patch_and_unchanged_content(proxy, objects[NAME], after)
    assert octue_fields(after)["timestamp"] == {"_type": "datetime", "value": stored}
    assert mounted.call(os.getxattr, mounted / NAME, PREFIX + "timestamp") == stored.encode()


def test_removing_a_tag_the_timestamp_and_the_labels(mounted, objects, bucket, proxy):
    path = mounted / NAME
    for name in ("tag.height", "timestamp", "labels"):
        proxy.reset()
        mounted.sh("setfattr", "-x", PREFIX + name, path)
        assert_one_patch_and_unchanged_content(proxy, objects[NAME], cloud(bucket, NAME))

    fields = octue_fields(cloud(bucket, NAME))
    assert fields["tags"] == {"manufacturer": "Vestas", "is_on": True}
    assert fields["timestamp"] is None
    assert fields["labels"] == {"_type": "set", "items": []}
    assert fields["id"] == OCTUE_ID
    assert sorted(mounted.call(os.listxattr, path)) == sorted(
        PREFIX + name for name in ("id", "hash", "cloud_path", "tags", "tag.manufacturer", "tag.is_on")
    )
    proxy.reset()
    mounted.call(os.removexattr, path, PREFIX + "tag.is_on")
    assert proxy.kinds() == ["patch"]
    assert octue_fields(cloud(bucket, NAME))["tags"] == {"manufacturer": "Vestas"}


REFUSED_SETS = [
    ("labels", b"good Bad!label", errno.EINVAL),
    ("labels", b'["fine", 3]', errno.EINVAL),
    ("labels", b"trailing-", errno.EINVAL),
    ("tag.Bad-Key", b"1", errno.EINVAL),
    ("tag.ends_", b"1", errno.EINVAL),
    ("tag.", b"1", errno.EINVAL),
    ("tags", b"[1, 2]", errno.EINVAL),
    ("tags", b"not json at all", errno.EINVAL),
    ("tags", b'{"Bad Key": 1}', errno.EINVAL),
    ("timestamp", b"yesterday afternoon", errno.EINVAL),
    # Python's json would store these as non-standard JSON that other readers reject.
    ("tag.ratio", b"NaN", errno.EINVAL),
    ("tag.ratio", b"Infinity", errno.EINVAL),
    ("tag.ratio", b"-Infinity", errno.EINVAL),
    ("tag.position", b'{"lat": NaN}', errno.EINVAL),
    ("tags", b'{"ratio": [1, -Infinity]}', errno.EINVAL),
    # Deeper than any reader of the object could parse without exhausting its stack.
    ("tag.deep", b"[" * 3000 + b"]" * 3000, errno.EINVAL),
    ("tags", b'{"deep": ' + b"[" * 3000 + b"]" * 3000 + b"}", errno.EINVAL),
    ("tag.note", b"\xff\xfe not utf-8", errno.EINVAL),
    ("tag.big", b"x" * 9000, errno.E2BIG),
    ("tags", json.dumps({f"key_{index}": "v" * 100 for index in range(90)}).encode(), errno.E2BIG),
    ("id", b"22222222-2222-4222-8222-222222222222", errno.EPERM),
    ("hash", b"AAAAAA==", errno.EPERM),
    ("cloud_path", b"gs://elsewhere/x", errno.EPERM),
]
REFUSED_REMOVALS = [
    ("tag.not_there", errno.ENODATA),
    ("id", errno.EPERM),
    ("hash", errno.EPERM),
]


def test_refused_changes_send_nothing_and_change_nothing(mounted, objects, bucket, proxy):
    path = mounted / NAME
    before = cloud(bucket, NAME)
    shown_before = attributes(mounted, NAME)
    proxy.reset()

    for name, value, expected in REFUSED_SETS:
        with pytest.raises(OSError) as raised:
            mounted.call(os.setxattr, path, PREFIX + name, value)
        assert raised.value.errno == expected, (name, value[:40], os.strerror(raised.value.errno))
    for name, expected in REFUSED_REMOVALS:
        with pytest.raises(OSError) as raised:
            mounted.call(os.removexattr, path, PREFIX + name)
        assert raised.value.errno == expected, (name, os.strerror(raised.value.errno))
    for name in ("user.foo", "user.octue", "user.octue.unknown"):
        with pytest.raises(OSError) as raised:
            mounted.call(os.setxattr, path, name, b"1")
        assert raised.value.errno in (errno.ENOTSUP, errno.EOPNOTSUPP), name
        with pytest.raises(OSError) as raised:
            mounted.call(os.getxattr, path, name)
        assert raised.value.errno == errno.ENODATA, name
    with pytest.raises(OSError) as raised:
        mounted.call(os.getxattr, path, PREFIX + "tag.not_there")
    assert raised.value.errno == errno.ENODATA

    kinds = proxy.kinds()
    assert "patch" not in kinds and "upload" not in kinds, kinds
    after = cloud(bucket, NAME)
    assert after.metadata == before.metadata == STORED
    assert (after.generation, after.metageneration) == (before.generation, before.metageneration)
    assert attributes(mounted, NAME) == shown_before


def test_removing_what_a_plain_object_does_not_have_is_enodata(mounted, objects, bucket, proxy):
    path = mounted / PLAIN
    for name in ("labels", "timestamp", "tag.height"):
        with pytest.raises(OSError) as raised:
            mounted.call(os.removexattr, path, PREFIX + name)
        assert raised.value.errno == errno.ENODATA, name

    assert proxy.kinds() == []
    assert cloud(bucket, PLAIN).metadata == {"owner": "alice"}


def test_a_server_failure_is_eio_and_the_daemon_keeps_working(mounted, objects, bucket, proxy):
    path = mounted / NAME
    proxy.inject("PATCH", r"/o/", 403, 1)

    with pytest.raises(OSError) as raised:
        mounted.call(os.setxattr, path, PREFIX + "tag.height", b"1")

    assert raised.value.errno == errno.EIO
    assert [request.status for request in proxy.requests if request.kind == "patch"] == [403]
    assert cloud(bucket, NAME).metadata == STORED
    assert mounted.call(os.getxattr, path, PREFIX + "tag.height") == b"350"
    assert alive(mounted.pid)
    proxy.reset()

    setfattr(mounted, NAME, PREFIX + "tag.height", "2")

    assert_one_patch_and_unchanged_content(proxy, objects[NAME], cloud(bucket, NAME))
    assert octue_fields(cloud(bucket, NAME))["tags"]["height"] == 2
    assert mounted.sh("cat", path).stdout == CONTENT


def test_listxattr_lists_exactly_what_is_present(mounted, objects):
    plain = mounted / PLAIN
    base = {PREFIX + name for name in ("id", "hash", "cloud_path", "tags")}
    assert set(mounted.call(os.listxattr, plain)) == base

    mounted.call(os.setxattr, plain, PREFIX + "labels", b"lidar")
    mounted.call(os.setxattr, plain, PREFIX + "tag.k", b"1")
    assert set(mounted.call(os.listxattr, plain)) == base | {PREFIX + "labels", PREFIX + "tag.k"}

    mounted.call(os.setxattr, plain, PREFIX + "timestamp", b"0")
    mounted.call(os.removexattr, plain, PREFIX + "labels")
    assert set(mounted.call(os.listxattr, plain)) == base | {PREFIX + "timestamp", PREFIX + "tag.k"}
    listed = run("getfattr", "--absolute-names", plain)
    assert sorted(listed.stdout.decode().split()[3:]) == sorted(base | {PREFIX + "timestamp", PREFIX + "tag.k"})
    assert mounted.call(os.listxattr, mounted / "tables") == []


def test_namespaces_octuefs_has_none_of_are_not_supported_so_ls_stops_asking(mount, bucket):
    for index in range(50):
        bucket.blob(f"many/{index}.txt").upload_from_string(b"x")
    mounted = mount("", "--debug")
    path = mounted / "many/0.txt"
    for name in ("security.selinux", "system.posix_acl_access", "trusted.x"):
        with pytest.raises(OSError) as raised:
            mounted.call(os.getxattr, path, name)
        assert raised.value.errno == errno.ENOTSUP, name
    with pytest.raises(OSError) as raised:
        mounted.call(os.getxattr, path, "user.other")
    assert raised.value.errno == errno.ENODATA
    asked_before = mounted.log.count("fuse getxattr")

    assert len(mounted.sh("ls", "-l", mounted / "many").stdout.splitlines()) == 51

    assert mounted.log.count("fuse getxattr") - asked_before <= 4  # not two for each of the 50 files
