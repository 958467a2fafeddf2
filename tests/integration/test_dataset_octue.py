"""A Dataset's own metadata and serialisation, byte for byte as Octue SDK 0.69.1 writes them.

The expected texts are in `tests/data/octue-dataset-expected.json`, derived by reading Octue's
source (the file says where each comes from). Octue reads a cloud dataset's `.octue` with plain
`json.loads`, so labels written as a tagged set made Octue raise `Invalid label '_type'`: the
list form is what must be written, and both forms must still be read.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from octuefs import Dataset
from octuefs.exceptions import InvalidInputException
from tests.integration.datafile_objects import put
from tests.support.golden import GOLDEN_OBJECTS

EXPECTED: dict[str, Any] = json.loads((Path(__file__).parents[1] / "data" / "octue-dataset-expected.json").read_text())
FULL = {
    "id": "33333333-3333-4333-8333-333333333333",
    "name": "North Sea \u2014 2024",
    "tags": {
        "operator": "\u00d8rsted",
        "height": 350,
        "ratio": 0.5,
        "is_on": True,
        "nothing": None,
        "nested": {"list": [1, "two", 3.0], "flag": False},
        "commissioned": datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
        "phases": {"b", "a"},
    },
    "labels": ["wind-turbine", "met-mast", "a1"],
}
EMPTY = {"id": "44444444-4444-4444-8444-444444444444"}
SERIALISED = {
    "id": "55555555-5555-4555-8555-555555555555",
    "tags": {"b_key": 1, "a_key": datetime(2024, 1, 1, 12, tzinfo=UTC)},
    "labels": ["z", "y"],
}
GOLDEN_CSV_DOT_OCTUE = GOLDEN_OBJECTS[0]["local_dot_octue_file_text"]


def expected(text: str, path: str) -> bytes:
    return text.replace("@PATH@", path).encode()


def put_golden_text_objects(bucket, prefix: str) -> None:
    """The CSV and JSON objects exactly as Octue wrote them (content and metadata)."""
    for golden in GOLDEN_OBJECTS[:2]:
        put(
            bucket,
            f"{prefix}/{golden['name']}",
            golden["content"].encode(),
            golden["object_content_type"],
            golden["object_custom_metadata"],
        )


# Writing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("case", "fields", "prefix"), [("full", FULL, "north-sea"), ("empty", EMPTY, "empty-dataset")])
def test_cloud_dot_octue_is_octues_bytes(bucket, case, fields, prefix):
    path = f"gs://{bucket.name}/campaigns/{prefix}"

    Dataset(path, **fields).update_metadata()

    blob = bucket.get_blob(f"campaigns/{prefix}/.octue")
    assert blob.download_as_bytes() == expected(EXPECTED[case]["cloud_dot_octue"], path)


def test_cloud_dot_octue_at_a_bucket_root(bucket):
    path = f"gs://{bucket.name}"
    dataset = Dataset(path, **FULL)

    with dataset:
        dataset.labels.add("a1")

    assert dataset.metadata_path == f"{path}/.octue"
    assert bucket.get_blob(".octue").download_as_bytes() == expected(EXPECTED["full"]["cloud_dot_octue"], path)


@pytest.mark.parametrize(("case", "fields"), [("full", FULL), ("empty", EMPTY)])
def test_local_dot_octue_is_octues_bytes(tmp_path, case, fields):
    folder = tmp_path / "empty-dataset"

    dataset = Dataset(folder, **fields)
    assert len(dataset) == 0 and not folder.exists()
    dataset.update_local_metadata()

    assert (folder / ".octue").read_bytes() == expected(EXPECTED[case]["local_dot_octue"], str(folder))


def test_local_dot_octue_beside_octues_datafile_entries(tmp_path):
    folder = tmp_path / "empty-dataset"
    folder.mkdir()
    (folder / ".octue").write_text(GOLDEN_CSV_DOT_OCTUE)

    with Dataset(folder, **EMPTY):
        pass

    assert (folder / ".octue").read_bytes() == expected(EXPECTED["empty"]["local_after_datafile"], str(folder))


def test_old_octuefs_form_is_rewritten_in_octues(bucket):
    """Before issue 11 octuefs wrote labels as a tagged set and no path; such a file is read, then replaced."""
    path = f"gs://{bucket.name}/empty-dataset"
    old = {"dataset": {"id": EMPTY["id"], "name": "empty-dataset", "tags": {}, "labels": {"_type": "set", "items": []}}}
    put(bucket, "empty-dataset/.octue", json.dumps(old, indent=4).encode() + b"\n")

    dataset = Dataset(path)
    assert (dataset.id, dataset.labels) == (EMPTY["id"], set())
    dataset.upload()

    blob = bucket.get_blob("empty-dataset/.octue")
    assert blob.download_as_bytes() == expected(EXPECTED["empty"]["cloud_dot_octue"], path)


# Reading ------------------------------------------------------------------------------------


def test_octues_cloud_dot_octue_is_read(bucket):
    path = f"gs://{bucket.name}/north-sea"
    put(bucket, "north-sea/.octue", expected(EXPECTED["full"]["cloud_dot_octue"], path))
    put(bucket, "north-sea/data.csv", b"a,b\n")

    dataset = Dataset(path, name="ignored", tags={"ignored": 1})

    assert (dataset.id, dataset.name) == (FULL["id"], FULL["name"])
    assert dataset.tags == FULL["tags"]
    assert dataset.labels == set(FULL["labels"])
    assert [datafile.name for datafile in dataset.files] == ["data.csv"]
    # Nothing changed, so uploading the dataset where it is rewrites no metadata.
    generation = bucket.get_blob("north-sea/.octue").generation
    dataset.upload()
    assert bucket.get_blob("north-sea/.octue").generation == generation


def test_octues_local_dot_octue_is_read(tmp_path):
    folder = tmp_path / "north-sea"
    folder.mkdir()
    (folder / "readings.csv").write_text(GOLDEN_OBJECTS[0]["content"])
    (folder / ".octue").write_bytes(expected(EXPECTED["full"]["local_dot_octue"], "anywhere/else"))

    dataset = Dataset(folder)

    assert (dataset.id, dataset.name, dataset.tags, dataset.labels) == (
        FULL["id"],
        FULL["name"],
        FULL["tags"],
        set(FULL["labels"]),
    )
    assert dataset.path == str(folder)


# Serialisation and hashes -------------------------------------------------------------------


def test_serialise_is_octues_text_and_deserialises(bucket):
    path = f"gs://{bucket.name}/serialised"
    put_golden_text_objects(bucket, "serialised")

    dataset = Dataset(path, **SERIALISED)

    assert dataset.serialise().encode() == expected(EXPECTED["serialised"], path)
    primitive = dataset.to_primitive()
    assert primitive["files"] == [f"{path}/json/config.json", f"{path}/tables/readings.csv"]
    for copy in (Dataset.deserialise(dataset.serialise(), from_string=True), Dataset.deserialise(primitive)):
        assert copy.to_primitive() == primitive
        assert {datafile.cloud_path: datafile.labels for datafile in copy.files} == {
            f"{path}/json/config.json": {"config"},
            f"{path}/tables/readings.csv": {"a1", "met-mast", "wind-turbine"},
        }
        assert copy.tags["a_key"] == SERIALISED["tags"]["a_key"]


def test_deserialise_reads_text_and_json_parsed_primitives_as_datafile_deserialise_does(bucket):
    """A service that got the text, or parsed it with plain `json.loads`, rebuilds the same dataset."""
    path = f"gs://{bucket.name}/serialised"
    put_golden_text_objects(bucket, "serialised")
    text = Dataset(path, **SERIALISED).serialise()

    for copy in (Dataset.deserialise(text), Dataset.deserialise(json.loads(text))):
        assert copy.serialise() == text
        assert copy.tags["a_key"] == SERIALISED["tags"]["a_key"]
        assert len(copy.files.filter(labels__contains="met-mast")) == 1


def test_deserialise_refuses_what_is_not_a_dataset_naming_it():
    for serialised in ("not json", "[1, 2]", 7):
        with pytest.raises(InvalidInputException, match="serialised Dataset"):
            Dataset.deserialise(serialised)


def test_to_file_and_from_file(bucket, tmp_path):
    path = f"gs://{bucket.name}/serialised"
    put_golden_text_objects(bucket, "serialised")
    dataset = Dataset(path, **SERIALISED)

    dataset.to_file(tmp_path / "dataset.json")

    assert (tmp_path / "dataset.json").read_text() == dataset.serialise()
    assert Dataset.from_file(tmp_path / "dataset.json").to_primitive() == dataset.to_primitive()


def test_hash_value_is_octues(bucket, tmp_path):
    put_golden_text_objects(bucket, "hashed")
    cloud = Dataset(f"gs://{bucket.name}/hashed")
    for golden in GOLDEN_OBJECTS[:2]:
        (tmp_path / "local" / golden["name"]).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "local" / golden["name"]).write_text(golden["content"])
    local = Dataset(tmp_path / "local")

    assert cloud.hash_value == local.hash_value == EXPECTED["hash_value"]["golden_text_objects"]
    assert Dataset(tmp_path / "nothing-here").hash_value == EXPECTED["hash_value"]["no_files"]
    # Metadata does not enter the hash; it has its own.
    metadata_hash = local.metadata_hash_value
    local.labels = {"changed"}
    assert local.hash_value == cloud.hash_value
    assert local.metadata_hash_value != metadata_hash
