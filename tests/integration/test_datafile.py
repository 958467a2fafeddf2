"""Datafile against the real server: request budgets, lazy download, metadata persistence, Octue's format.

Every request octuefs sends goes through the counting proxy, so each budget is asserted as the
exact list of request kinds rather than assumed.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest

from octuefs import ChecksumMismatch, Datafile
from octuefs.metadata.codec import encode_cloud
from octuefs.storage.gcs import get_storage
from tests.integration.datafile_objects import (
    CSV,
    CSV_CONTENT_TYPE,
    CSV_NAME,
    FOREIGN,
    GOLDEN_CSV_METADATA,
    GOLDEN_CSV_TAGS,
    GOLDEN_OBJECTS,
    crc32c,
    decoded_octue_values,
    gs,
    put,
    put_golden_csv,
)

# Request budgets -------------------------------------------------------------------------------


def test_constructing_a_cloud_datafile_is_one_stat(bucket, proxy):
    put_golden_csv(bucket)

    datafile = Datafile(gs(bucket, CSV_NAME))

    assert proxy.kinds() == ["stat"]
    assert datafile.tags == GOLDEN_CSV_TAGS


def test_constructing_a_datafile_for_a_missing_object_is_one_stat(bucket, proxy):
    datafile = Datafile(gs(bucket, "missing.csv"))

    # Octue's `exists_in_cloud` means "has a cloud path"; whether the object is there is `cloud_stat`.
    assert datafile.exists_in_cloud
    assert datafile.cloud_stat is None
    assert datafile.cloud_hash_value is None
    assert datafile.size_bytes is None
    assert proxy.kinds() == ["stat"]


def test_datafile_from_a_listing_sends_no_request(bucket, proxy):
    blob = put_golden_csv(bucket)
    (stat,) = get_storage().list(bucket.name).objects
    proxy.reset()

    datafile = Datafile.from_object_stat(stat)

    assert datafile.id == json.loads(GOLDEN_CSV_METADATA["octue__id"])
    assert datafile.tags == GOLDEN_CSV_TAGS
    assert datafile.hash_value == blob.crc32c
    assert datafile.exists_in_cloud
    assert proxy.kinds() == []


def test_update_metadata_is_one_patch_and_leaves_content_alone(bucket, proxy):
    before = put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))
    proxy.reset()

    datafile.tags["checked"] = True
    datafile.labels.add("qa")
    datafile.update_metadata()

    assert proxy.kinds() == ["patch"]
    # Guarded, so on real GCS a concurrent writer's change is never silently overwritten (Octue bug 7).
    assert f"ifGenerationMatch={before.generation}" in proxy.requests[0].path
    assert f"ifMetagenerationMatch={before.metageneration}" in proxy.requests[0].path
    after = bucket.get_blob(CSV_NAME)
    assert after.generation == before.generation
    assert after.download_as_bytes() == CSV
    assert after.content_type == before.content_type
    assert json.loads(after.metadata["octue__tags"]) == {**GOLDEN_CSV_TAGS, "checked": True}
    assert json.loads(after.metadata["octue__labels"])["items"] == ["a1", "met-mast", "qa", "wind-turbine"]
    assert after.metadata["owner"] == FOREIGN["owner"]


@pytest.mark.parametrize("fetch", ["open", "download", "local_path"])
def test_upload_of_unchanged_content_sends_no_content(bucket, proxy, fetch):
    before = put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))
    if fetch == "open":
        with datafile.open("r") as f:
            f.read()
    elif fetch == "download":
        datafile.download()
    else:
        assert Path(datafile.local_path).read_bytes() == CSV
    proxy.reset()

    datafile.upload()
    assert proxy.kinds() == []

    datafile.add_labels("seen")
    datafile.upload()
    assert proxy.kinds() == ["patch"]

    after = bucket.get_blob(CSV_NAME)
    assert after.generation == before.generation
    assert "seen" in json.loads(after.metadata["octue__labels"])["items"]
    assert after.download_as_bytes() == CSV


def test_upload_of_a_cloud_datafile_never_downloaded_sends_no_content(bucket, proxy):
    put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))
    proxy.reset()

    datafile.upload()
    assert proxy.kinds() == []
    datafile.tags["checked"] = True
    datafile.upload()
    assert proxy.kinds() == ["patch"]
    assert not datafile.exists_locally


def test_reading_properties_of_a_cloud_datafile_sends_nothing(bucket, proxy):
    blob = put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))
    proxy.reset()

    assert datafile.hash_value == blob.crc32c == crc32c(CSV)
    assert datafile.cloud_hash_value == blob.crc32c
    assert datafile.size_bytes == len(CSV)
    assert datafile.tags == GOLDEN_CSV_TAGS
    assert datafile.labels == {"a1", "met-mast", "wind-turbine"}
    assert datafile.timestamp == datetime(2024, 5, 6, 7, 8, 9, 123456)
    assert datafile.posix_timestamp == datafile.timestamp.timestamp()
    assert datafile.id == "11111111-1111-4111-8111-111111111111"
    assert (datafile.name, datafile.extension) == ("readings.csv", "csv")
    assert datafile.path == datafile.cloud_path == datafile.metadata_path == gs(bucket, CSV_NAME)
    assert (datafile.bucket_name, datafile.path_in_bucket) == (bucket.name, CSV_NAME)
    assert datafile.metadata()["octue__sdk_version"] == "0.69.1"
    assert re.fullmatch(r"[A-Za-z0-9+/]{6}==", datafile.metadata_hash_value)
    assert datafile.exists_in_cloud
    assert not datafile.exists_locally
    assert proxy.kinds() == []


def test_read_only_open_sends_only_the_download(bucket, proxy):
    put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))
    proxy.reset()

    with datafile.open("r") as f:
        assert f.read() == CSV.decode()
    assert proxy.kinds() == ["media"]

    with datafile.open("rb") as f:
        assert f.read() == CSV
    assert datafile.hash_value == crc32c(CSV)
    assert proxy.kinds() == ["media"]


# Lazy, verified download -----------------------------------------------------------------------


@pytest.mark.parametrize("trigger", ["open", "download", "local_path"])
def test_content_is_downloaded_only_when_asked(bucket, proxy, trigger):
    put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))
    proxy.reset()
    datafile.metadata()
    datafile.serialise()
    assert not datafile.exists_locally
    assert proxy.kinds() == []

    if trigger == "open":
        with datafile.open() as f:
            assert f.read() == CSV.decode()
    elif trigger == "download":
        assert Path(datafile.download()).read_bytes() == CSV
    else:
        assert Path(datafile.local_path).read_bytes() == CSV

    assert proxy.kinds() == ["media"]
    assert datafile.exists_locally
    assert Path(datafile.local_path).read_bytes() == CSV
    assert proxy.kinds() == ["media"]


def test_download_to_a_given_path(bucket, proxy, tmp_path):
    put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))
    target = tmp_path / "copies" / "readings.csv"

    assert datafile.download(target) == str(target)

    assert target.read_bytes() == CSV
    assert datafile.local_path == str(target)
    assert proxy.kinds() == ["stat", "media"]


def test_corrupted_download_is_refused_and_leaves_nothing_behind(bucket, proxy, tmp_path):
    put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))
    target_directory = tmp_path / "downloads"
    target = target_directory / "readings.csv"
    proxy.corrupt("GET", "alt=media")

    with pytest.raises(ChecksumMismatch, match=re.escape(gs(bucket, CSV_NAME))):
        datafile.download(target)

    assert list(target_directory.iterdir()) == []
    assert not datafile.exists_locally

    assert datafile.download(target) == str(target)
    assert [path.name for path in target_directory.iterdir()] == ["readings.csv"]
    assert target.read_bytes() == CSV
    assert datafile.exists_locally
    assert proxy.kinds() == ["stat", "media", "media"]


def test_corrupted_download_on_open_leaves_nothing_behind(bucket, proxy, tmp_path):
    put_golden_csv(bucket)
    target_directory = tmp_path / "copy"
    datafile = Datafile(gs(bucket, CSV_NAME), local_path=target_directory / "readings.csv")
    proxy.corrupt("GET", "alt=media")

    with pytest.raises(ChecksumMismatch), datafile.open() as f:
        f.read()

    assert not datafile.exists_locally
    assert list(target_directory.iterdir()) == []

    with datafile.open() as f:
        assert f.read() == CSV.decode()
    assert datafile.local_path == str(target_directory / "readings.csv")
    assert [path.name for path in target_directory.iterdir()] == ["readings.csv"]


# Metadata changed inside a block ---------------------------------------------------------------


@pytest.mark.parametrize("mode", ["r", "rb"])
def test_metadata_changed_inside_a_read_block_is_one_patch(bucket, proxy, mode):
    before = put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))
    proxy.reset()

    with datafile.open(mode) as f:
        rows = len(f.read().splitlines()) - 1
        datafile.tags["rows"] = rows
        datafile.labels.add("counted")

    assert proxy.kinds() == ["media", "patch"]
    after = bucket.get_blob(CSV_NAME)
    assert after.generation == before.generation
    assert after.download_as_bytes() == CSV
    assert json.loads(after.metadata["octue__tags"]) == {**GOLDEN_CSV_TAGS, "rows": 2}
    assert "counted" in json.loads(after.metadata["octue__labels"])["items"]
    assert after.metadata["owner"] == FOREIGN["owner"]


def test_read_block_that_sets_metadata_to_its_current_value_sends_nothing_more(bucket, proxy):
    put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))
    proxy.reset()

    with datafile.open() as f:
        f.read()
        datafile.tags["manufacturer"] = GOLDEN_CSV_TAGS["manufacturer"]
        datafile.labels.add("a1")

    assert proxy.kinds() == ["media"]


# Context manager, upload options, serialisation -------------------------------------------------


def test_datafile_as_context_manager_writes_a_new_object(bucket, proxy):
    with Datafile(gs(bucket, "notes/new.txt"), mode="w") as (datafile, f):
        f.write("hello")
        datafile.labels.add("Draft")

    assert proxy.kinds() == ["stat", "upload"]
    blob = bucket.get_blob("notes/new.txt")
    assert blob.download_as_bytes() == b"hello"
    assert blob.content_type == "text/plain"
    assert json.loads(blob.metadata["octue__labels"]) == {"_type": "set", "items": ["draft"]}
    assert json.loads(blob.metadata["octue__id"]) == datafile.id


def test_datafile_as_context_manager_reads(bucket, proxy):
    put_golden_csv(bucket)

    with Datafile(gs(bucket, CSV_NAME)) as (datafile, f):
        assert f.read() == CSV.decode()
        assert datafile.tags == GOLDEN_CSV_TAGS

    assert proxy.kinds() == ["stat", "media"]


@pytest.mark.parametrize("keyword", ["update_cloud_metadata", "update_metadata"])
@pytest.mark.parametrize("update", [False, True])
def test_upload_of_a_local_file_over_an_existing_object(bucket, proxy, tmp_path, keyword, update):
    put_golden_csv(bucket)
    local = tmp_path / "readings.csv"
    local.write_bytes(CSV + b"2,5.5\n")
    datafile = Datafile(local, tags={"source": "local"}, labels={"draft"})

    datafile.upload(gs(bucket, CSV_NAME), **{keyword: update})

    assert proxy.kinds() == ["stat", "upload"]
    blob = bucket.get_blob(CSV_NAME)
    assert blob.download_as_bytes() == CSV + b"2,5.5\n"
    assert blob.content_type == CSV_CONTENT_TYPE
    if update:
        assert blob.metadata == {**encode_cloud(datafile.octue_metadata), **FOREIGN}
    else:
        assert blob.metadata == {**GOLDEN_CSV_METADATA, **FOREIGN}
    assert datafile.cloud_hash_value == blob.crc32c == crc32c(CSV + b"2,5.5\n")
    assert datafile.size_bytes == blob.size


def test_serialise_round_trip_of_a_cloud_datafile_sends_nothing(bucket, proxy):
    blob = put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))
    proxy.reset()

    copy = Datafile.deserialise(json.loads(json.dumps(datafile.serialise())))

    assert copy.id == datafile.id
    assert copy.metadata() == datafile.metadata()
    assert copy.cloud_path == gs(bucket, CSV_NAME)
    assert copy.hash_value == copy.cloud_hash_value == blob.crc32c
    assert copy.size_bytes == len(CSV)
    assert copy.exists_in_cloud
    assert not copy.exists_locally
    assert proxy.kinds() == []


def test_serialise_round_trip_keeps_the_downloaded_copy(bucket, proxy):
    put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))
    datafile.download()
    proxy.reset()

    copy = Datafile.deserialise(json.loads(json.dumps(datafile.serialise())))

    assert copy.exists_locally
    assert copy.local_path == datafile.local_path
    with copy.open("rb") as f:
        assert f.read() == CSV
    assert proxy.kinds() == []


# Octue's wire format ---------------------------------------------------------------------------


@pytest.mark.parametrize("golden", GOLDEN_OBJECTS, ids=[golden["name"] for golden in GOLDEN_OBJECTS])
def test_metadata_written_by_octue_is_read(bucket, proxy, golden):
    content = golden["content"].encode() if golden["content"] is not None else b"\x89HDF\r\n\x1a\n"
    blob = put(bucket, golden["name"], content, golden["object_content_type"], golden["object_custom_metadata"])
    given = golden["given_to_octue"]

    datafile = Datafile(gs(bucket, golden["name"]))

    assert datafile.id == given["id"]
    assert datafile.timestamp == (datetime.fromisoformat(given["timestamp"]) if given["timestamp"] else None)
    assert datafile.tags == given["tags"]
    assert datafile.labels == set(given["labels"])
    assert datafile.hash_value == blob.crc32c
    if golden["content"] is not None:
        assert blob.crc32c == golden["object_crc32c"]
    assert proxy.kinds() == ["stat"]


@pytest.mark.parametrize("golden", GOLDEN_OBJECTS, ids=[golden["name"] for golden in GOLDEN_OBJECTS])
def test_metadata_written_by_octuefs_is_octues_bytes(bucket, proxy, tmp_path, golden):
    given = golden["given_to_octue"]
    local = tmp_path / Path(golden["name"]).name
    local.write_bytes(golden["content"].encode() if golden["content"] is not None else b"\x89HDF\r\n\x1a\n")
    datafile = Datafile(local, id=given["id"], timestamp=given["timestamp"], tags=given["tags"], labels=given["labels"])

    datafile.update_metadata()
    datafile.upload(gs(bucket, golden["name"]))

    assert proxy.kinds() == ["stat", "upload"]
    assert bucket.get_blob(golden["name"]).metadata == golden["object_custom_metadata"]
    assert (tmp_path / ".octue").read_text() == golden["local_dot_octue_file_text"]


def test_metadata_written_by_octuefs_decodes_into_octues_format(bucket, proxy):
    put(bucket, "plain.csv", CSV, "text/csv", dict(FOREIGN))
    datafile = Datafile(gs(bucket, "plain.csv"))
    datafile.timestamp = datetime(2024, 1, 2, 3, 4, 5)
    datafile.tags = {"heights": {30, 10}, "site": "Orkney", "when": datetime(2023, 1, 1)}
    datafile.labels = {"wind", "met-mast"}

    datafile.update_metadata()

    blob = bucket.get_blob("plain.csv")
    assert decoded_octue_values(blob) == {
        "octue__id": datafile.id,
        "octue__timestamp": {"_type": "datetime", "value": "2024-01-02T03:04:05"},
        "octue__tags": {
            "heights": {"_type": "set", "items": [10, 30]},
            "site": "Orkney",
            "when": {"_type": "datetime", "value": "2023-01-01T00:00:00"},
        },
        "octue__labels": {"_type": "set", "items": ["met-mast", "wind"]},
        "octue__sdk_version": "0.69.1",
    }
    assert blob.metadata["owner"] == FOREIGN["owner"]
    assert Datafile(gs(bucket, "plain.csv")).metadata() == datafile.metadata()
