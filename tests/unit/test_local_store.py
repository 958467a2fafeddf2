"""The `.octue` file: entries merged (never clobbered), replaced atomically, errors naming the file."""

from __future__ import annotations

import json
import os
import re
import stat
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NoReturn

import pytest

from octuefs.errors import MalformedMetadataError
from octuefs.metadata import codec, local_store
from octuefs.metadata.labels import LabelSet
from octuefs.metadata.local_store import METADATA_FILENAME, LocalMetadataStore
from octuefs.metadata.model import OctueMetadata
from octuefs.metadata.tags import TagDict

ID_A = "11111111-1111-4111-8111-111111111111"
ID_B = "22222222-2222-4222-8222-222222222222"


def entry(id_: str, **tags: Any) -> dict[str, Any]:
    return codec.encode_local(OctueMetadata(id=id_, timestamp=datetime(2024, 1, 1), tags=TagDict(tags)))


def directory_listing(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def test_missing_file_reads_as_empty(tmp_path: Path) -> None:
    store = LocalMetadataStore(tmp_path)
    assert store.path == tmp_path / METADATA_FILENAME
    assert store.read() == {}
    assert store.datafile_entry("a.csv") is None
    assert "dataset" not in store.read()
    assert directory_listing(tmp_path) == []


def test_written_entry_reads_back(tmp_path: Path) -> None:
    store = LocalMetadataStore(tmp_path)
    store.write_datafile_entry("a.csv", entry(ID_A, x=1))
    assert LocalMetadataStore(tmp_path).datafile_entry("a.csv") == entry(ID_A, x=1)
    assert LocalMetadataStore(tmp_path).datafile_entry("b.csv") is None


def test_file_is_indented_json_with_trailing_newline(tmp_path: Path) -> None:
    store = LocalMetadataStore(tmp_path)
    store.write_datafile_entry("a.csv", entry(ID_A))
    text = store.path.read_text()
    assert text == json.dumps({"datafiles": {"a.csv": entry(ID_A)}}, indent=4) + "\n"


def test_two_datafiles_in_one_directory_are_both_kept(tmp_path: Path) -> None:
    LocalMetadataStore(tmp_path).write_datafile_entry("a.csv", entry(ID_A, x=1))
    LocalMetadataStore(tmp_path).write_datafile_entry("b.csv", entry(ID_B, y=2))
    document = json.loads((tmp_path / ".octue").read_text())
    assert document == {"datafiles": {"a.csv": entry(ID_A, x=1), "b.csv": entry(ID_B, y=2)}}


def test_rewriting_one_entry_replaces_only_that_entry(tmp_path: Path) -> None:
    store = LocalMetadataStore(tmp_path)
    store.write_datafile_entry("a.csv", entry(ID_A, x=1))
    store.write_datafile_entry("b.csv", entry(ID_B, y=2))
    store.write_datafile_entry("a.csv", entry(ID_A, x=3))
    assert store.read()["datafiles"] == {"a.csv": entry(ID_A, x=3), "b.csv": entry(ID_B, y=2)}


def test_stores_for_different_directories_are_separate(tmp_path: Path) -> None:
    LocalMetadataStore(tmp_path / "one").write_datafile_entry("a.csv", entry(ID_A))
    LocalMetadataStore(tmp_path / "two").write_datafile_entry("a.csv", entry(ID_B))
    assert LocalMetadataStore(tmp_path / "one").datafile_entry("a.csv") == entry(ID_A)
    assert LocalMetadataStore(tmp_path / "two").datafile_entry("a.csv") == entry(ID_B)


def test_dataset_entry_does_not_remove_datafile_entries(tmp_path: Path) -> None:
    store = LocalMetadataStore(tmp_path)
    store.write_datafile_entry("a.csv", entry(ID_A))
    seen = []
    written = store.write_dataset_entry(lambda current: seen.append(current) or {"id": ID_B, "name": "wind"})
    store.write_datafile_entry("b.csv", entry(ID_B))
    assert seen == [None]
    assert store.read()["dataset"] == written == {"id": ID_B, "name": "wind"}
    store.write_dataset_entry(lambda current: seen.append(current) or current)
    assert seen == [None, written]
    assert store.read()["datafiles"] == {"a.csv": entry(ID_A), "b.csv": entry(ID_B)}


def test_datafile_entry_does_not_remove_dataset_entry_or_unknown_keys(tmp_path: Path) -> None:
    (tmp_path / ".octue").write_text(json.dumps({"dataset": {"id": ID_B}, "future_key": [1, 2]}))
    LocalMetadataStore(tmp_path).write_datafile_entry("a.csv", entry(ID_A))
    assert json.loads((tmp_path / ".octue").read_text()) == {
        "dataset": {"id": ID_B},
        "future_key": [1, 2],
        "datafiles": {"a.csv": entry(ID_A)},
    }


def test_entry_written_by_octue_is_kept_when_another_is_added(tmp_path: Path) -> None:
    octue_text = json.dumps({"datafiles": {"old.csv": {"id": ID_A, "timestamp": None}}}, indent=4) + "\n"
    (tmp_path / ".octue").write_text(octue_text)
    LocalMetadataStore(tmp_path).write_datafile_entry("new.csv", entry(ID_B))
    datafiles = LocalMetadataStore(tmp_path).read()["datafiles"]
    assert datafiles == {"old.csv": {"id": ID_A, "timestamp": None}, "new.csv": entry(ID_B)}


def test_directory_is_created_when_missing(tmp_path: Path) -> None:
    directory = tmp_path / "deep" / "er"
    LocalMetadataStore(directory).write_datafile_entry("a.csv", entry(ID_A))
    assert directory_listing(directory) == [".octue"]


def test_non_dict_datafiles_section_is_replaced(tmp_path: Path) -> None:
    (tmp_path / ".octue").write_text('{"datafiles": ["junk"]}')
    store = LocalMetadataStore(tmp_path)
    assert store.datafile_entry("a.csv") is None
    store.write_datafile_entry("a.csv", entry(ID_A))
    assert store.read() == {"datafiles": {"a.csv": entry(ID_A)}}


def raise_encoding_error(*args: Any, **kwargs: Any) -> NoReturn:
    raise TypeError("Object of type object is not JSON serializable")


def test_failed_encode_leaves_existing_file_intact_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalMetadataStore(tmp_path)
    store.write_datafile_entry("a.csv", entry(ID_A, x=1))
    before = store.path.read_text()
    monkeypatch.setattr(
        local_store,
        "json",
        SimpleNamespace(dumps=raise_encoding_error, loads=json.loads, JSONDecodeError=json.JSONDecodeError),
    )
    with pytest.raises(TypeError):
        store.write_datafile_entry("b.csv", entry(ID_B))
    assert store.path.read_text() == before
    assert directory_listing(tmp_path) == [".octue"]


def test_unencodable_entry_leaves_existing_file_intact(tmp_path: Path) -> None:
    """Octue truncates `.octue` when an entry cannot be encoded; here the file is untouched."""
    store = LocalMetadataStore(tmp_path)
    store.write_datafile_entry("a.csv", entry(ID_A, x=1))
    before = store.path.read_text()
    with pytest.raises(TypeError):
        store.write_datafile_entry("b.csv", {"tags": {"bad": object()}})
    assert store.path.read_text() == before
    assert directory_listing(tmp_path) == [".octue"]


def test_failed_encode_with_no_existing_file_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        LocalMetadataStore(tmp_path).write_datafile_entry("a.csv", {"bad": object()})
    assert directory_listing(tmp_path) == []


def test_failed_rename_removes_temp_file_and_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalMetadataStore(tmp_path)
    store.write_datafile_entry("a.csv", entry(ID_A))
    before = store.path.read_text()

    def failing_replace(source: Any, destination: Any) -> NoReturn:
        raise OSError("disk full")

    monkeypatch.setattr(local_store.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        store.write_datafile_entry("b.csv", entry(ID_B))
    monkeypatch.undo()
    assert store.path.read_text() == before
    assert directory_listing(tmp_path) == [".octue"]


def test_exception_inside_locked_block_writes_nothing(tmp_path: Path) -> None:
    store = LocalMetadataStore(tmp_path)
    store.write_datafile_entry("a.csv", entry(ID_A))
    before = store.path.read_text()
    with pytest.raises(RuntimeError), store._locked() as document:
        document["datafiles"]["a.csv"] = "changed"
        raise RuntimeError("abandon")
    assert store.path.read_text() == before
    assert directory_listing(tmp_path) == [".octue"]


@pytest.mark.parametrize("text", ["{not json", "", '{"datafiles": {', "[1, 2]", '"text"', "null"])
def test_invalid_file_raises_malformed_metadata_naming_the_path(tmp_path: Path, text: str) -> None:
    path = tmp_path / ".octue"
    path.write_text(text)
    store = LocalMetadataStore(tmp_path)
    for read in (store.read, lambda: store.datafile_entry("a.csv")):
        with pytest.raises(MalformedMetadataError, match=re.escape(str(path))):
            read()


def test_invalid_file_is_not_overwritten_by_a_write(tmp_path: Path) -> None:
    path = tmp_path / ".octue"
    path.write_text("{not json")
    with pytest.raises(MalformedMetadataError, match=re.escape(str(path))):
        LocalMetadataStore(tmp_path).write_datafile_entry("a.csv", entry(ID_A))
    assert path.read_text() == "{not json"
    assert directory_listing(tmp_path) == [".octue"]


def test_concurrent_writers_in_one_directory_lose_no_entries(tmp_path: Path) -> None:
    names = [f"file{index}.csv" for index in range(16)]
    errors: list[BaseException] = []

    def write(name: str) -> None:
        try:
            LocalMetadataStore(tmp_path).write_datafile_entry(name, entry(ID_A, name=name))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=write, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(LocalMetadataStore(tmp_path).read()["datafiles"]) == sorted(names)
    assert directory_listing(tmp_path) == [".octue"]


def test_round_trip_through_codec_and_store(tmp_path: Path) -> None:
    metadata = OctueMetadata(
        id=ID_A,
        timestamp=datetime.fromisoformat("2024-05-06T07:08:09+02:00"),
        tags=TagDict(kinds={"b", "a"}, when=datetime(2024, 1, 1), nested={"list": [1, "two"]}),
        labels=LabelSet(["Vestas", "met-mast"]),
    )
    store = LocalMetadataStore(tmp_path)
    store.write_datafile_entry("a.csv", codec.encode_local(metadata))
    stored = LocalMetadataStore(tmp_path).datafile_entry("a.csv")
    assert stored is not None
    assert OctueMetadata(**codec.decode_local(stored, str(store.path))) == metadata


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.mark.usefixtures("umask_022")
def test_new_file_mode_follows_the_umask(tmp_path: Path) -> None:
    """mkstemp would make `.octue` 0600 and hide it from everyone else; Octue's `open` gives 0666 & ~umask."""
    store = LocalMetadataStore(tmp_path)
    store.write_datafile_entry("a.csv", entry(ID_A))
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o644


@pytest.mark.usefixtures("umask_022")
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o664])
def test_existing_file_mode_is_kept(tmp_path: Path, mode: int) -> None:
    store = LocalMetadataStore(tmp_path)
    store.write_datafile_entry("a.csv", entry(ID_A))
    os.chmod(store.path, mode)
    store.write_datafile_entry("b.csv", entry(ID_B))
    assert stat.S_IMODE(os.stat(store.path).st_mode) == mode
