"""The Octue "Datafiles" page's Examples A-D, as written, against the real server.

Each resulting object's custom metadata is checked byte for byte against what the Octue SDK
writes for the same values (`octue-golden.json`'s encoding).
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from octuefs import Datafile

CSV = b"time,speed\n0,3.5\n1,4.25\n"


def octue_metadata(id_: str, timestamp: str | None, tags: str, labels: list[str]) -> dict[str, str]:
    return {
        "octue__id": json.dumps(id_),
        "octue__timestamp": "null" if timestamp is None else json.dumps({"_type": "datetime", "value": timestamp}),
        "octue__tags": tags,
        "octue__labels": json.dumps({"_type": "set", "items": sorted(labels)}),
        "octue__sdk_version": '"0.69.1"',
    }


@pytest.fixture
def data_csv(bucket):
    blob = bucket.blob("path/to/data.csv")
    blob.upload_from_string(CSV, content_type="text/csv")
    return blob


def metadata_calculating_function(data: str) -> dict:
    rows = data.strip().splitlines()[1:]
    return {
        "timestamp": datetime(2024, 5, 6, 7, 8, 9, 123456),
        "tags": {"rows": len(rows), "max_speed": max(float(row.split(",")[1]) for row in rows)},
        "labels": {"Computed", "wind"},
    }


def test_example_a_read_then_set_metadata_inside_block(bucket, data_csv, proxy):
    datafile = Datafile(f"gs://{bucket.name}/path/to/data.csv")

    with datafile.open() as f:
        data = f.read()
        new_metadata = metadata_calculating_function(data)

        datafile.timestamp = new_metadata["timestamp"]
        datafile.tags = new_metadata["tags"]
        datafile.labels = new_metadata["labels"]

    assert proxy.kinds() == ["stat", "media", "patch"]
    blob = bucket.get_blob("path/to/data.csv")
    assert blob.metadata == octue_metadata(
        datafile.id, "2024-05-06T07:08:09.123456", '{"rows": 2, "max_speed": 4.25}', ["computed", "wind"]
    )
    assert blob.generation == data_csv.generation
    assert blob.download_as_bytes() == CSV


def test_example_b_metadata_without_downloading(bucket, data_csv, proxy):
    datafile = Datafile(f"gs://{bucket.name}/path/to/data.csv")

    datafile.timestamp = datetime.now()
    datafile.tags = {"manufacturer": "Vestas", "output": "1MW"}
    datafile.labels = {"new"}

    datafile.upload(update_metadata=True)

    assert proxy.kinds() == ["stat", "patch"]
    blob = bucket.get_blob("path/to/data.csv")
    assert blob.metadata == octue_metadata(
        datafile.id, datafile.timestamp.isoformat(), '{"manufacturer": "Vestas", "output": "1MW"}', ["new"]
    )
    assert blob.generation == data_csv.generation
    assert not datafile.exists_locally


def test_example_b_with_update_metadata_call(bucket, data_csv, proxy):
    datafile = Datafile(f"gs://{bucket.name}/path/to/data.csv")
    datafile.labels = {"new"}
    datafile.update_metadata()
    assert proxy.kinds() == ["stat", "patch"]
    assert json.loads(bucket.get_blob("path/to/data.csv").metadata["octue__labels"])["items"] == ["new"]


def test_example_c_read_without_updating(bucket, proxy):
    golden = {
        "octue__id": '"11111111-1111-4111-8111-111111111111"',
        "octue__labels": '{"_type": "set", "items": ["a1", "met-mast", "wind-turbine"]}',
        "octue__sdk_version": '"0.69.1"',
        "octue__tags": '{"manufacturer": "Vestas", "height": 350, "ratio": 0.5, "is_on": true, "none": null}',
        "octue__timestamp": '{"_type": "datetime", "value": "2024-05-06T07:08:09.123456"}',
    }
    blob = bucket.blob("path/to/data.csv")
    blob.metadata = golden
    blob.upload_from_string(CSV, content_type="text/csv")
    proxy.reset()

    datafile = Datafile(f"gs://{bucket.name}/path/to/data.csv")

    with datafile.open() as f:
        data = f.read()

    metadata = datafile.metadata()

    assert data == CSV.decode()
    assert proxy.kinds() == ["stat", "media"]
    assert metadata == {
        "octue__id": "11111111-1111-4111-8111-111111111111",
        "octue__timestamp": datetime(2024, 5, 6, 7, 8, 9, 123456),
        "octue__tags": {"manufacturer": "Vestas", "height": 350, "ratio": 0.5, "is_on": True, "none": None},
        "octue__labels": {"a1", "met-mast", "wind-turbine"},
        "octue__sdk_version": "0.69.1",
    }
    assert datafile.hash_value == "Ba+0Wg=="
    assert bucket.get_blob("path/to/data.csv").metadata == golden


def test_example_d_new_local_file_then_upload(bucket, tmp_path, monkeypatch, proxy):
    monkeypatch.chdir(tmp_path)
    datafile = Datafile(
        "path/to/local/file.dat",
        tags={"cleaned": True, "type": "linear"},
        labels={"Vestas"}
    )  # fmt: skip

    with datafile.open("w") as f:
        f.write("This is some cleaned data.")

    datafile.upload(f"gs://{bucket.name}/path/to/data.dat")

    assert proxy.kinds() == ["stat", "upload"]
    blob = bucket.get_blob("path/to/data.dat")
    assert blob.download_as_bytes() == b"This is some cleaned data."
    assert blob.metadata == octue_metadata(datafile.id, None, '{"cleaned": true, "type": "linear"}', ["vestas"])
    assert blob.content_type == "application/octet-stream"
    assert blob.crc32c == datafile.hash_value == datafile.cloud_hash_value
    assert datafile.size_bytes == len(b"This is some cleaned data.")
    local_entry = json.loads((tmp_path / "path/to/local/.octue").read_text())["datafiles"]["file.dat"]
    assert local_entry["labels"] == {"_type": "set", "items": ["vestas"]}


def test_example_d_existing_local_file(bucket, tmp_path, monkeypatch, proxy):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "path/to/local").mkdir(parents=True)
    (tmp_path / "path/to/local/file.dat").write_bytes(CSV)

    tags = {"cleaned": True, "type": "linear"}
    labels = {"Vestas"}

    datafile = Datafile(path="path/to/local/file.dat", tags=tags, labels=labels)
    datafile.upload(f"gs://{bucket.name}/path/to/data.dat")

    blob = bucket.get_blob("path/to/data.dat")
    assert blob.download_as_bytes() == CSV
    assert blob.metadata == octue_metadata(datafile.id, None, '{"cleaned": true, "type": "linear"}', ["vestas"])
    assert proxy.kinds() == ["stat", "upload"]
