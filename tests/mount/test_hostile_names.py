"""Objects whose names no local file can have, and a `.octue` that is not JSON, put in the bucket by
another client: the mount shows what it can, hides the rest with a log line, never lets a name reach
a local path, and keeps serving.

Object names are any UTF-8 up to 1024 bytes; Linux names are segments of at most 255 bytes without
`/` or NUL, and `.`/`..` mean something else. GCS itself refuses CR and LF in names, so an object
with one was made by something that is not GCS (this emulator accepts them); octuefs hides those too.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from tests.mount.conftest import Mount, alive, is_mount

pytestmark = pytest.mark.timeout(90)

CONTENT = b"hostile\n"
# Object name → the prefix or name a listing finds and hides (what its log line names).
HIDDEN = {
    "../escape.txt": "../",
    "./dot.txt": "./",
    "/leading-slash.txt": "/",
    "odd/a/../b.txt": "odd/a/../",
    "odd/./x.txt": "odd/./",
    "odd/a//b.txt": "odd/a//",
    "odd/..": "odd/..",
    "odd/.": "odd/.",
    "odd/line\nbreak.txt": "odd/line\nbreak.txt",
    "odd/cr\rname.txt": "odd/cr\rname.txt",
    "odd/nul\0name.txt": "odd/nul\0name.txt",
    "odd/" + "x" * 256: "odd/" + "x" * 256,
    "odd/" + "é" * 128 + ".txt": "odd/" + "é" * 128 + ".txt",  # 128 characters, but 260 bytes
    "odd/" + "d" * 300 + "/inner.txt": "odd/" + "d" * 300 + "/",
}
SHOWN = {
    "odd/fine.txt": CONTENT,
    "odd/a/kept.txt": CONTENT,
    "odd/" + "n" * 255: CONTENT,  # exactly NAME_MAX
    "odd/spaces & #?*[].csv": b"a,b\n1,2\n",
    "odd/données ☃.txt": CONTENT,
    "odd/-leading-dash.txt": CONTENT,
    "odd/back\\slash.txt": CONTENT,
    "odd/tab\tand\x7fcontrol.txt": CONTENT,
    ".octue": b"{not json at all",
    "odd/.octue": b'{"dataset": "not an object", "datafiles": [1, 2]}',
}


@pytest.fixture
def hostile(bucket) -> None:
    for name in HIDDEN:
        bucket.blob(name).upload_from_string(CONTENT)
    for name, content in SHOWN.items():
        bucket.blob(name).upload_from_string(content)
    malformed = bucket.blob("odd/bad-metadata.csv")
    malformed.metadata = {"octue__tags": "{not json", "octue__labels": "[1, 2", "owner": "alice"}
    malformed.upload_from_string(CONTENT)


def relative_tree(mounted: Mount) -> list[str]:
    found = mounted.sh("find", mounted.path, "-print0").stdout.split(b"\0")
    return sorted(os.path.relpath(os.fsdecode(path), mounted.path) for path in found if path)


def assert_serving(mounted: Mount) -> None:
    assert alive(mounted.pid), mounted.log[-4000:]
    assert is_mount(mounted.path)
    assert mounted.read_bytes("odd/fine.txt") == CONTENT


def test_names_no_local_file_can_have_are_hidden_and_logged(hostile, mount):
    mounted = mount()
    expected = {".", ".octue", "odd", "odd/a", "odd/a/kept.txt", "odd/bad-metadata.csv"}
    expected |= {name for name in SHOWN if name.startswith("odd/")}
    assert set(relative_tree(mounted)) == expected

    listing = mounted.sh("ls", "-laR", "--quoting-style=escape", mounted.path).stdout.decode()
    for hidden in ("escape", "dot.txt", "leading-slash", "b.txt", "x.txt", "break", "inner.txt", "xxxxxxxx", "ddddd"):
        assert hidden not in listing
    assert "kept.txt" in listing and "n" * 255 in listing

    for name, shown_as in HIDDEN.items():
        assert f"hiding {shown_as!r}" in mounted.log, name
    assert_serving(mounted)


def test_hidden_names_cannot_be_reached_by_naming_them(hostile, mount):
    """Typed before any listing (so the lookup asks the server) and again after one: never found."""
    mounted = mount()
    for relative in ("odd/line\nbreak.txt", "odd/cr\rname.txt", "odd/" + "x" * 256, "odd/" + "é" * 128 + ".txt"):
        for _ in range(2):
            with pytest.raises(OSError) as raised:
                mounted.call(os.stat, mounted / relative)
            assert raised.value.errno in (errno.ENOENT, errno.ENAMETOOLONG), relative
            mounted.sh("ls", mounted / "odd")
    # `..` and `.` are the kernel's: they walk the mount's own tree, never to an object of that name.
    assert mounted.call(os.stat, mounted / "odd/a/..").st_ino == mounted.call(os.stat, mounted / "odd").st_ino
    assert mounted.read_bytes("odd/a/../fine.txt") == CONTENT
    with pytest.raises(FileNotFoundError):
        mounted.call(os.stat, mounted / "odd/a/../b.txt")
    assert_serving(mounted)


def test_everything_shown_reads_and_has_attributes(hostile, mount):
    mounted = mount()
    for name, content in SHOWN.items():
        assert mounted.sh("cat", mounted / name).stdout == content, name
        assert mounted.call(os.stat, mounted / name).st_size == len(content)
        shown = mounted.sh("getfattr", "-d", "--absolute-names", mounted / name).stdout.decode()
        assert f'user.octue.cloud_path="gs://{mounted.source}/' in shown, name
    # Every file, through find and a shell loop, as a backup or indexing job would walk it.
    mounted.sh("find", mounted.path, "-type", "f", "-exec", "cat", "{}", "+")
    mounted.sh("find", mounted.path, "-type", "f", "-exec", "getfattr", "-d", "{}", "+")
    assert mounted.call(os.getxattr, mounted / "odd/bad-metadata.csv", "user.octue.tags") == b"{}"
    # Reported by object and field in the daemon's log; the file is shown with the rest of its metadata.
    assert f"gs://{mounted.source}/odd/bad-metadata.csv: stored tags" in mounted.log
    assert_serving(mounted)


def test_a_dot_octue_that_is_not_json_is_an_ordinary_file(hostile, mount, bucket):
    """The mount does not interpret `.octue` objects: a broken one lists, reads and takes tags like any file."""
    mounted = mount()
    assert mounted.sh("ls", "-A", mounted.path).stdout.decode().split() == [".octue", "odd"]
    assert mounted.read_bytes(".octue") == SHOWN[".octue"]
    mounted.sh("setfattr", "-n", "user.octue.tag.checked", "-v", "true", mounted / "odd/.octue")
    assert json.loads(bucket.get_blob("odd/.octue").metadata["octue__tags"]) == {"checked": True}
    assert bucket.get_blob("odd/.octue").download_as_bytes() == SHOWN["odd/.octue"]
    assert_serving(mounted)


def test_no_name_reaches_a_path_outside_the_cache_directory(hostile, mount, tmp_path):
    mounted = mount()
    mounted.sh("find", mounted.path, "-type", "f", "-exec", "cat", "{}", "+")
    mounted.call((mounted / "odd/a/written.txt").write_bytes, b"staged in the cache directory, then uploaded\n")
    before_outside = sorted(path.name for path in tmp_path.iterdir())

    cache = mounted.cache_dir.resolve()
    entries = [Path(root) / name for root, directories, files in os.walk(cache) for name in directories + files]
    assert entries, "the reads cached nothing"
    for entry in entries:
        assert entry.resolve().is_relative_to(cache), entry
        for fragment in ("escape", "dot.txt", "b.txt", "break", "fine", "kept", "written", "données", "xxxx"):
            assert fragment not in entry.name, entry
    chunk_names = [entry.name for entry in entries if entry.parent.parent.name == "chunks"]
    assert chunk_names and all(len(name.split(".")[0]) == 64 for name in chunk_names), chunk_names
    assert sorted(path.name for path in tmp_path.iterdir()) == before_outside
    for escaped in ("escape.txt", "dot.txt", "b.txt", "leading-slash.txt"):
        assert not (tmp_path / escaped).exists() and not (cache.parent / escaped).exists()
    assert_serving(mounted)


def test_a_prefix_mount_of_a_hostile_directory_stays_inside_it(hostile, mount):
    """Mounting `odd/a`: its `..` prefix (from `odd/a/../b.txt`) is hidden, not a way up to `odd`."""
    mounted = mount("odd/a")
    assert relative_tree(mounted) == [".", "kept.txt"]
    assert "hiding 'odd/a/../'" in mounted.log and "hiding 'odd/a//'" in mounted.log
    assert mounted.read_bytes("kept.txt") == CONTENT
    assert alive(mounted.pid)


def test_a_name_over_255_bytes_is_too_long_to_look_up(hostile, mount):
    """Linux hands FUSE names of up to 1024 bytes; no file of the mount can have one over NAME_MAX."""
    mounted = mount()
    for relative in ("odd/" + "x" * 256, "odd/" + "é" * 128 + ".txt", "y" * 1000, "odd/" + "d" * 300 + "/inner.txt"):
        with pytest.raises(OSError) as raised:
            mounted.call(os.stat, mounted / relative)
        assert raised.value.errno == errno.ENAMETOOLONG, relative
    assert mounted.call(os.stat, mounted / ("odd/" + "n" * 255)).st_size == len(CONTENT)
    assert_serving(mounted)


@pytest.mark.parametrize(
    ("name", "code"),
    [("new\nline.txt", errno.EINVAL), ("new\rreturn.txt", errno.EINVAL), ("y" * 256, errno.ENAMETOOLONG)],
    ids=["newline", "carriage-return", "256-bytes"],
)
def test_names_listings_would_hide_cannot_be_made(hostile, mount, bucket, name, code):
    """Made, they would vanish at the next listing (and GCS refuses CR and LF in object names)."""
    mounted = mount()
    attempts = {
        "create": lambda: (mounted / "odd" / name).write_bytes(CONTENT),
        "mkdir": lambda: os.mkdir(mounted / "odd" / name),
        "rename": lambda: os.rename(mounted / "odd/fine.txt", mounted / "odd" / name),
    }
    for operation, attempt in attempts.items():
        with pytest.raises(OSError) as raised:
            mounted.call(attempt)
        assert raised.value.errno == code, operation
    assert [blob.name for blob in bucket.list_blobs(prefix="odd/") if name in blob.name] == []
    assert name not in mounted.sh("ls", "-a", mounted / "odd").stdout.decode()
    assert_serving(mounted)


def test_control_characters_in_names_reach_the_text_log_escaped(bucket, mount):
    """A name is the bucket writer's text: raw, an escape sequence would drive the terminal of whoever
    reads the log, and a line break forge a log line. The text log escapes them as the JSON log does."""
    bucket.blob("odd/forged\n2026-01-01 00:00:00,000 1 ERROR fake: line.txt").upload_from_string(CONTENT)
    mounted = mount()
    name = "esc\x1b[2Jtab\tbell\x07.txt"
    mounted.call((mounted / name).write_bytes, CONTENT)
    assert mounted.call(os.listdir, mounted / "odd") == []
    assert bucket.blob(name).download_as_bytes() == CONTENT
    log = mounted.log
    assert "esc\\u001b[2Jtab\\tbell\\u0007.txt: uploaded" in log, log[-3000:]
    assert "forged\\n2026-01-01" in log, log[-3000:]
    assert not any(character in log for character in "\x1b\t\x07\r"), log[-3000:]
    assert "\n2026-01-01 00:00:00,000 1 ERROR fake" not in log
