"""Every `open` mode on a cloud datafile leaves the object holding what built-in `open` leaves in a file.

Each case runs the same operations on a local reference file with built-in `open` and on a cloud
datafile, then compares the object's bytes with the file's. Edits must also keep the object's
content type and foreign metadata (Octue bugs 1 and 3) and leave fresh size and hash (bug 4).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest

from octuefs import CloudObjectNotFound, Datafile
from tests.integration.datafile_objects import (
    CSV,
    CSV_CONTENT_TYPE,
    CSV_NAME,
    FOREIGN,
    GOLDEN_CSV_METADATA,
    crc32c,
    gs,
    put_golden_csv,
)


def overwrite_middle(f: IO[Any]) -> Any:
    head = f.read(4)
    f.seek(5)
    f.write("SPEED" if isinstance(head, str) else b"SPEED")
    return head + f.read()


def write_then_read_back(text: str) -> Callable[[IO[Any]], Any]:
    def operation(f: IO[Any]) -> Any:
        f.write(text)
        f.seek(0)
        return f.read()

    return operation


# What each mode does to the file; the return value (what was read) is compared too.
OPERATIONS: dict[str, Callable[[IO[Any]], Any]] = {
    "r": lambda f: f.read(),
    "rb": lambda f: f.read(),
    "w": lambda f: f.write("replaced,text\n"),
    "wb": lambda f: f.write(b"\x00\x01 binary \xff"),
    "a": lambda f: f.write("2,5.5\n"),
    "ab": lambda f: f.write(b"3,6.75\n"),
    "r+": overwrite_middle,
    "r+b": overwrite_middle,
    "w+": write_then_read_back("fresh\ncontent\n"),
    "a+": write_then_read_back("4,1.0\n"),
    "x": lambda f: f.write("exclusive\n"),
}
READING_MODES = {"r", "rb"}
REPLACING_MODES = {"w", "wb", "w+", "x"}


def reference_result(path: Path, mode: str) -> tuple[Any, bytes | None]:
    """What built-in `open` reads and leaves behind (None: the file does not exist)."""
    try:
        with open(path, mode) as f:
            read = OPERATIONS[mode](f)
    except FileNotFoundError:
        return FileNotFoundError, None
    except FileExistsError:
        return FileExistsError, path.read_bytes()
    return read, path.read_bytes()


def expected_kinds(mode: str, exists: bool) -> list[str]:
    if mode in READING_MODES:
        return ["media"]
    if mode in REPLACING_MODES or not exists:
        return ["upload"]
    return ["media", "upload"]


@pytest.mark.parametrize("mode", [mode for mode in OPERATIONS if mode != "x"])
def test_mode_on_an_existing_object_matches_builtin_open(bucket, proxy, tmp_path, mode):
    reference = tmp_path / "reference.csv"
    reference.write_bytes(CSV)
    expected_read, expected_content = reference_result(reference, mode)
    before = put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))
    proxy.reset()

    with datafile.open(mode) as f:
        assert OPERATIONS[mode](f) == expected_read

    assert proxy.kinds() == expected_kinds(mode, exists=True)
    for upload in (request for request in proxy.requests if request.kind == "upload"):
        assert f"ifGenerationMatch={before.generation}" in upload.path
    after = bucket.get_blob(CSV_NAME)
    assert after.download_as_bytes() == expected_content
    assert after.content_type == CSV_CONTENT_TYPE
    assert after.metadata == {**GOLDEN_CSV_METADATA, **FOREIGN}
    assert (after.generation == before.generation) == (mode in READING_MODES)
    proxy.reset()
    assert datafile.size_bytes == len(expected_content) == after.size
    assert datafile.hash_value == datafile.cloud_hash_value == after.crc32c == crc32c(expected_content)
    assert proxy.kinds() == []


@pytest.mark.parametrize("mode", list(OPERATIONS))
def test_mode_on_a_missing_object_matches_builtin_open(bucket, proxy, tmp_path, mode):
    expected_read, expected_content = reference_result(tmp_path / "reference.csv", mode)
    datafile = Datafile(gs(bucket, "new/data.csv"), tags={"made_by": "test"})
    proxy.reset()

    if expected_read is FileNotFoundError:
        with pytest.raises(CloudObjectNotFound, match=re.escape(gs(bucket, "new/data.csv"))), datafile.open(mode):
            pass
        assert proxy.kinds() == []
        assert bucket.get_blob("new/data.csv") is None
        return

    with datafile.open(mode) as f:
        assert OPERATIONS[mode](f) == expected_read

    assert proxy.kinds() == expected_kinds(mode, exists=False)
    assert "ifGenerationMatch=0" in proxy.requests[-1].path  # create only: never replaces someone else's object
    blob = bucket.get_blob("new/data.csv")
    assert blob.download_as_bytes() == expected_content
    assert blob.content_type == "text/csv"
    assert json.loads(blob.metadata["octue__tags"]) == {"made_by": "test"}
    assert json.loads(blob.metadata["octue__id"]) == datafile.id
    assert datafile.size_bytes == blob.size
    assert datafile.cloud_hash_value == blob.crc32c == crc32c(expected_content)


@pytest.mark.parametrize("mode", ["x", "xb", "x+"])
def test_exclusive_mode_on_an_existing_object_raises_and_changes_nothing(bucket, proxy, mode):
    before = put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))
    proxy.reset()

    with pytest.raises(FileExistsError, match=re.escape(gs(bucket, CSV_NAME))), datafile.open(mode):
        pass

    assert proxy.kinds() == []
    after = bucket.get_blob(CSV_NAME)
    assert after.generation == before.generation
    assert after.download_as_bytes() == CSV


def test_editing_twice_keeps_content_type_and_foreign_metadata(bucket, proxy):
    put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))

    with datafile.open("a") as f:
        f.write("2,5.5\n")
    datafile.tags["edited"] = True
    datafile.update_metadata()
    with datafile.open("a") as f:
        f.write("3,6.0\n")

    assert proxy.kinds() == ["stat", "media", "upload", "patch", "upload"]
    blob = bucket.get_blob(CSV_NAME)
    assert blob.download_as_bytes() == CSV + b"2,5.5\n3,6.0\n"
    assert blob.content_type == CSV_CONTENT_TYPE
    assert blob.metadata["owner"] == FOREIGN["owner"]
    assert json.loads(blob.metadata["octue__tags"])["edited"] is True
    assert datafile.cloud_hash_value == blob.crc32c
    assert datafile.size_bytes == blob.size


def test_metadata_changed_inside_a_write_block_travels_with_the_content(bucket, proxy):
    put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))
    proxy.reset()

    with datafile.open("w") as f:
        f.write("new\n")
        datafile.labels.add("rewritten")

    assert proxy.kinds() == ["upload"]
    blob = bucket.get_blob(CSV_NAME)
    assert blob.download_as_bytes() == b"new\n"
    assert "rewritten" in json.loads(blob.metadata["octue__labels"])["items"]
    assert blob.metadata["owner"] == FOREIGN["owner"]


@pytest.mark.parametrize("mode", ["w", "wb", "a", "r+", "w+", "a+"])
def test_exception_inside_a_write_block_uploads_nothing(bucket, proxy, mode):
    before = put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))
    downloaded = datafile.download()
    proxy.reset()

    with pytest.raises(RuntimeError, match="stop"), datafile.open(mode) as f:
        f.write(b"partial" if "b" in mode else "partial")
        datafile.tags["broken"] = True
        raise RuntimeError("stop")

    assert proxy.kinds() == []
    after = bucket.get_blob(CSV_NAME)
    assert after.generation == before.generation
    assert after.download_as_bytes() == CSV
    assert after.metadata == before.metadata
    assert datafile.local_path == downloaded
    assert Path(downloaded).read_bytes() == CSV
    assert datafile.hash_value == crc32c(CSV)
    assert proxy.kinds() == []


def test_exception_inside_a_write_block_on_a_missing_object_creates_nothing(bucket, proxy):
    datafile = Datafile(gs(bucket, "new/data.csv"))
    proxy.reset()

    with pytest.raises(RuntimeError), datafile.open("w") as f:
        f.write("partial")
        raise RuntimeError("stop")

    assert proxy.kinds() == []
    assert bucket.get_blob("new/data.csv") is None
    assert not datafile.exists_locally


def test_exception_inside_datafile_context_manager_uploads_nothing(bucket, proxy):
    put_golden_csv(bucket)

    with pytest.raises(RuntimeError), Datafile(gs(bucket, CSV_NAME), mode="w") as (datafile, f):
        f.write("partial")
        datafile.tags["broken"] = True
        raise RuntimeError("stop")

    assert proxy.kinds() == ["stat"]
    blob = bucket.get_blob(CSV_NAME)
    assert blob.download_as_bytes() == CSV
    assert blob.metadata == {**GOLDEN_CSV_METADATA, **FOREIGN}


# Object names are any UTF-8: each must survive URL quoting and become a safe local file name.
@pytest.mark.parametrize("name", ["dir with spaces/#1 ?&=+.csv", "données/météo ☃.csv", "a/../b.csv"])
def test_names_that_need_quoting_work_end_to_end(bucket, proxy, name):
    put_golden_csv(bucket, name)
    datafile = Datafile(gs(bucket, name))

    with datafile.open("a") as f:
        f.write("2,5.5\n")
    datafile.labels.add("edited")
    datafile.update_metadata()

    assert proxy.kinds() == ["stat", "media", "upload", "patch"]
    blob = bucket.get_blob(name)
    assert blob.download_as_bytes() == CSV + b"2,5.5\n"
    assert blob.content_type == CSV_CONTENT_TYPE
    assert blob.metadata["owner"] == FOREIGN["owner"]
    assert "edited" in json.loads(blob.metadata["octue__labels"])["items"]
    assert Path(datafile.local_path).name == Path(name).name


@pytest.mark.parametrize("name", ["folder/", "x/.", "x/..", "long/" + "n" * 300 + ".csv"])
def test_names_no_local_file_can_have_are_downloaded_and_edited(bucket, proxy, name):
    put_golden_csv(bucket, name)
    datafile = Datafile(gs(bucket, name))

    with datafile.open("a") as f:
        f.write("2,5.5\n")

    assert proxy.kinds() == ["stat", "media", "upload"]
    assert bucket.get_blob(name).download_as_bytes() == CSV + b"2,5.5\n"
    local = Path(datafile.local_path)
    assert local.is_file()
    assert local.read_bytes() == CSV + b"2,5.5\n"
    assert local.name.startswith("object-")
    assert local.parent.name.startswith("octuefs-")
