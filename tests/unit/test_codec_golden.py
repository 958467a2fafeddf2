"""Golden tests: the exact bytes the Octue SDK 0.69.1 wrote (`tests/data/octue-golden.json`), both ways."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from octuefs.metadata import codec
from octuefs.metadata.labels import LabelSet
from octuefs.metadata.local_store import LocalMetadataStore
from octuefs.metadata.model import OCTUE_SDK_VERSION, OctueMetadata
from octuefs.metadata.tags import TagDict
from octuefs.storage.gcs import crc32c_of_bytes
from tests.support.golden import GOLDEN_OBJECTS

OBJECTS = GOLDEN_OBJECTS


def metadata_given_to_octue(given: dict[str, Any]) -> OctueMetadata:
    timestamp = given["timestamp"]
    return OctueMetadata(
        id=given["id"],
        timestamp=datetime.fromisoformat(timestamp) if timestamp is not None else None,
        tags=TagDict(given["tags"]),
        labels=LabelSet(given["labels"]),
    )


@pytest.fixture(params=OBJECTS, ids=[obj["name"] for obj in OBJECTS])
def golden(request: pytest.FixtureRequest) -> dict[str, Any]:
    return request.param


def test_golden_file_holds_three_objects() -> None:
    assert [obj["name"] for obj in OBJECTS] == [
        "tables/readings.csv",
        "json/config.json",
        "arrays/measurements.hdf5",
    ]


def test_sdk_version_matches_golden(golden: dict[str, Any]) -> None:
    assert json.dumps(OCTUE_SDK_VERSION) == golden["object_custom_metadata"]["octue__sdk_version"]


def test_encode_cloud_matches_octue_bytes(golden: dict[str, Any]) -> None:
    encoded = codec.encode_cloud(metadata_given_to_octue(golden["given_to_octue"]))
    assert encoded == golden["object_custom_metadata"]
    for key, value in golden["object_custom_metadata"].items():
        assert encoded[key].encode() == value.encode(), key


def test_encode_cloud_writes_all_five_keys_in_octue_order(golden: dict[str, Any]) -> None:
    encoded = codec.encode_cloud(metadata_given_to_octue(golden["given_to_octue"]))
    assert list(encoded) == ["octue__id", "octue__timestamp", "octue__tags", "octue__labels", "octue__sdk_version"]


def test_tag_order_is_kept_as_given(golden: dict[str, Any]) -> None:
    encoded = codec.encode_cloud(metadata_given_to_octue(golden["given_to_octue"]))
    assert list(json.loads(encoded["octue__tags"])) == list(golden["given_to_octue"]["tags"])


def test_decode_cloud_gives_back_what_octue_was_given(golden: dict[str, Any]) -> None:
    given = golden["given_to_octue"]
    decoded = codec.decode_cloud(golden["object_custom_metadata"], f"gs://bucket/{golden['name']}")
    expected_timestamp = datetime.fromisoformat(given["timestamp"]) if given["timestamp"] is not None else None
    assert decoded["id"] == given["id"]
    assert decoded["timestamp"] == expected_timestamp
    if expected_timestamp is not None:
        assert decoded["timestamp"].tzinfo == expected_timestamp.tzinfo
    assert decoded["tags"] == given["tags"]
    assert isinstance(decoded["tags"], TagDict)
    assert decoded["labels"] == set(given["labels"])
    assert isinstance(decoded["labels"], LabelSet)
    assert "sdk_version" not in decoded


def test_decode_then_encode_reproduces_octue_bytes(golden: dict[str, Any]) -> None:
    decoded = codec.decode_cloud(golden["object_custom_metadata"], golden["name"])
    assert codec.encode_cloud(OctueMetadata(**decoded)) == golden["object_custom_metadata"]


def test_local_dot_octue_text_matches_octue(golden: dict[str, Any], tmp_path: Path) -> None:
    name = PurePosixPath(golden["name"]).name
    store = LocalMetadataStore(tmp_path)
    store.write_datafile_entry(name, codec.encode_local(metadata_given_to_octue(golden["given_to_octue"])))
    assert (tmp_path / ".octue").read_text() == golden["local_dot_octue_file_text"]
    assert sorted(path.name for path in tmp_path.iterdir()) == [".octue"]


def test_local_dot_octue_written_by_octue_decodes(golden: dict[str, Any], tmp_path: Path) -> None:
    name = PurePosixPath(golden["name"]).name
    (tmp_path / ".octue").write_text(golden["local_dot_octue_file_text"])
    entry = LocalMetadataStore(tmp_path).datafile_entry(name)
    assert entry is not None
    decoded = codec.decode_local(entry, f"{tmp_path}/.octue[{name}]")
    assert OctueMetadata(**decoded) == metadata_given_to_octue(golden["given_to_octue"])


def test_metadata_hash_is_the_same_after_a_cloud_round_trip(golden: dict[str, Any]) -> None:
    metadata = metadata_given_to_octue(golden["given_to_octue"])
    decoded = OctueMetadata(**codec.decode_cloud(golden["object_custom_metadata"], golden["name"]))
    assert codec.metadata_hash(decoded) == codec.metadata_hash(metadata)


def test_crc32c_of_example_bytes() -> None:
    assert crc32c_of_bytes(b"time,speed\n0,3.5\n1,4.25\n") == "Ba+0Wg=="


def test_crc32c_of_empty_bytes() -> None:
    assert crc32c_of_bytes(b"") == "AAAAAA=="


@pytest.mark.parametrize("obj", [obj for obj in OBJECTS if obj["content"] is not None], ids=lambda obj: obj["name"])
def test_crc32c_of_golden_contents(obj: dict[str, Any]) -> None:
    content = obj["content"].encode()
    assert len(content) == obj["object_size"]
    assert crc32c_of_bytes(content) == obj["object_crc32c"] == obj["octue_hash_value"]
