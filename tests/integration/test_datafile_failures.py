"""Datafile when things go wrong: lost precondition races, failing uploads, refused metadata, missing objects.

The emulator never answers 412 or 503 by itself, so the proxy injects them; everything else is the
real server's behaviour.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import octuefs
from octuefs import (
    CloudLocationNotSpecified,
    CloudObjectNotFound,
    Datafile,
    MetadataTooLargeError,
    PreconditionConflict,
    StorageError,
)
from octuefs.cloud_metadata import MAX_CONFLICT_RETRIES
from octuefs.storage.gcs import StorageSettings
from tests.integration.datafile_objects import (
    CSV,
    CSV_CONTENT_TYPE,
    CSV_NAME,
    FOREIGN,
    GOLDEN_CSV_METADATA,
    GOLDEN_CSV_TAGS,
    crc32c,
    gs,
    put,
    put_golden_csv,
)

MiB = 1024 * 1024


@pytest.fixture
def short_retry_deadline(proxy) -> Iterator[None]:
    """Give up on a failing server after ~1 s instead of the fixture's 10 s (configure rebuilds the client)."""
    octuefs.configure(retry_deadline=1.0)
    try:
        yield
    finally:
        octuefs.configure(endpoint=proxy.url, retry_deadline=10.0)


def other_writer_sets(bucket, **changes: object) -> dict[str, str]:
    """Another client changes Octue fields on the object (as the Octue SDK would encode them)."""
    blob = bucket.get_blob(CSV_NAME)
    blob.metadata = {**blob.metadata, **{f"octue__{key}": json.dumps(value) for key, value in changes.items()}}
    blob.patch()
    return bucket.get_blob(CSV_NAME).metadata


# Preconditions ---------------------------------------------------------------------------------


def test_lost_precondition_race_rereads_and_retries_once(bucket, proxy):
    put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))
    proxy.reset()
    datafile.tags["checked"] = True
    proxy.inject("PATCH", r"/o/", 412, 1)

    datafile.update_metadata()

    assert proxy.kinds() == ["patch", "stat", "patch"]
    assert [request.status for request in proxy.requests] == [412, 200, 200]
    metadata = bucket.get_blob(CSV_NAME).metadata
    assert json.loads(metadata["octue__tags"]) == {**GOLDEN_CSV_TAGS, "checked": True}
    assert metadata["owner"] == FOREIGN["owner"]


@pytest.mark.parametrize("octue_metadata", [GOLDEN_CSV_METADATA, {}], ids=["written-by-octue", "no-octue-metadata"])
def test_concurrent_metadata_change_is_merged(bucket, proxy, octue_metadata):
    put(bucket, CSV_NAME, CSV, CSV_CONTENT_TYPE, {**octue_metadata, **FOREIGN})
    datafile = Datafile(gs(bucket, CSV_NAME))
    start_tags, start_labels = dict(datafile.tags), set(datafile.labels)
    other_writer_sets(
        bucket,
        tags={**start_tags, "inspector": "bob"},
        labels={"_type": "set", "items": sorted(start_labels | {"reviewed"})},
    )
    proxy.reset()
    datafile.tags["checked"] = True
    datafile.labels.add("qa")
    # The emulator ignores ifMetagenerationMatch on PATCH; real GCS would answer this 412 itself.
    proxy.inject("PATCH", r"/o/", 412, 1)

    datafile.update_metadata()

    assert proxy.kinds() == ["patch", "stat", "patch"]
    merged_tags = {**start_tags, "inspector": "bob", "checked": True}
    merged_labels = start_labels | {"qa", "reviewed"}
    metadata = bucket.get_blob(CSV_NAME).metadata
    assert json.loads(metadata["octue__tags"]) == merged_tags
    assert json.loads(metadata["octue__labels"])["items"] == sorted(merged_labels)
    assert json.loads(metadata["octue__id"]) == datafile.id
    assert metadata["owner"] == FOREIGN["owner"]
    assert datafile.tags == merged_tags
    assert datafile.labels == merged_labels


def test_too_many_lost_races_raise_and_keep_the_other_writers_metadata(bucket, proxy):
    put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))
    theirs = other_writer_sets(bucket, tags={"inspector": "bob"})
    proxy.reset()
    datafile.tags["checked"] = True
    proxy.inject("PATCH", r"/o/", 412, MAX_CONFLICT_RETRIES + 1)

    with pytest.raises(PreconditionConflict, match=re.escape(gs(bucket, CSV_NAME))):
        datafile.update_metadata()

    assert proxy.kinds() == ["patch"] + ["stat", "patch"] * MAX_CONFLICT_RETRIES
    assert bucket.get_blob(CSV_NAME).metadata == theirs


# Failed uploads --------------------------------------------------------------------------------


def test_failed_upload_of_an_edit_keeps_the_new_content_locally(bucket, proxy, short_retry_deadline):
    before = put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))
    proxy.reset()
    proxy.inject("POST", r"/upload/", 503, 100)

    with pytest.raises(StorageError, match=re.escape(gs(bucket, CSV_NAME))), datafile.open("w") as f:
        f.write("new content\n")

    # Besides the uploads, only the breaker's probe (one GET of the bucket) when the upload gave up: it
    # found the server answering, so nothing was reported lost.
    uploads = [request.status for request in proxy.requests if request.kind == "upload"]
    others = [request for request in proxy.requests if request.kind != "upload"]
    assert set(uploads) == {503}
    assert [(request.method, request.path.split("?")[0], request.status) for request in others] == [
        ("GET", f"/storage/v1/b/{bucket.name}", 200)
    ]
    assert datafile.exists_locally
    assert Path(datafile.local_path).read_text() == "new content\n"
    after = bucket.get_blob(CSV_NAME)
    assert after.generation == before.generation
    assert after.download_as_bytes() == CSV

    proxy.reset()
    datafile.upload()

    assert proxy.kinds() == ["upload"]
    after = bucket.get_blob(CSV_NAME)
    assert after.download_as_bytes() == b"new content\n"
    assert after.metadata == {**GOLDEN_CSV_METADATA, **FOREIGN}
    assert after.content_type == before.content_type
    assert datafile.cloud_hash_value == after.crc32c == crc32c(b"new content\n")


def test_upload_over_a_changed_object_is_refused_and_keeps_the_new_content_locally(bucket, proxy):
    before = put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))
    proxy.reset()
    # Another writer replaced the content after we read the object (the emulator would enforce this one too).
    proxy.inject("POST", r"/upload/", 412, 1)

    with pytest.raises(PreconditionConflict, match=re.escape(gs(bucket, CSV_NAME))), datafile.open("a") as f:
        f.write("2,5.5\n")

    assert proxy.kinds() == ["media", "upload"]
    assert f"ifGenerationMatch={before.generation}" in proxy.requests[-1].path
    assert Path(datafile.local_path).read_bytes() == CSV + b"2,5.5\n"
    assert bucket.get_blob(CSV_NAME).download_as_bytes() == CSV


def test_failed_upload_of_a_local_datafile_keeps_the_file(bucket, proxy, tmp_path, short_retry_deadline):
    local = tmp_path / "readings.csv"
    local.write_bytes(CSV)
    datafile = Datafile(local, tags={"source": "logger"})
    datafile.update_metadata()
    dot_octue = (tmp_path / ".octue").read_text()
    proxy.inject("POST", r"/upload/", 503, 100)

    with pytest.raises(StorageError, match=re.escape(gs(bucket, "uploaded.csv"))):
        datafile.upload(gs(bucket, "uploaded.csv"))

    assert local.read_bytes() == CSV
    assert datafile.exists_locally
    assert (tmp_path / ".octue").read_text() == dot_octue
    assert bucket.get_blob("uploaded.csv") is None

    proxy.reset()
    datafile.upload(gs(bucket, "uploaded.csv"))

    assert proxy.kinds() == ["stat", "upload"]
    blob = bucket.get_blob("uploaded.csv")
    assert blob.download_as_bytes() == CSV
    assert json.loads(blob.metadata["octue__tags"]) == {"source": "logger"}


# Refused before sending ------------------------------------------------------------------------


def test_metadata_over_8_kib_is_refused_before_any_request(bucket, proxy):
    before = put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))
    proxy.reset()
    datafile.tags["huge"] = "x" * 9000

    with pytest.raises(MetadataTooLargeError, match=re.escape(gs(bucket, CSV_NAME))):
        datafile.update_metadata()
    with pytest.raises(MetadataTooLargeError, match=re.escape(gs(bucket, CSV_NAME))), datafile.open("w") as f:
        f.write("new content\n")

    assert proxy.kinds() == []
    after = bucket.get_blob(CSV_NAME)
    assert after.generation == before.generation
    assert after.metadata == before.metadata
    assert after.download_as_bytes() == CSV


def test_metadata_over_8_kib_on_a_local_upload_sends_no_content(bucket, proxy, tmp_path):
    local = tmp_path / "readings.csv"
    local.write_bytes(CSV)
    datafile = Datafile(local, tags={"huge": "x" * 9000})

    with pytest.raises(MetadataTooLargeError, match=re.escape(gs(bucket, "uploaded.csv"))):
        datafile.upload(gs(bucket, "uploaded.csv"))

    assert "upload" not in proxy.kinds()
    assert bucket.get_blob("uploaded.csv") is None


@pytest.mark.parametrize("mode", ["r", "rb", "r+"])
def test_missing_object_opened_for_reading_is_file_not_found(bucket, proxy, mode):
    datafile = Datafile(gs(bucket, "missing.csv"))

    with pytest.raises(CloudObjectNotFound, match=re.escape(gs(bucket, "missing.csv"))) as raised, datafile.open(mode):
        pass

    assert isinstance(raised.value, FileNotFoundError)
    assert proxy.kinds() == ["stat"]
    assert not datafile.exists_locally


def test_missing_object_download_is_file_not_found(bucket, proxy):
    datafile = Datafile(gs(bucket, "missing.csv"))

    with pytest.raises(FileNotFoundError, match=re.escape(gs(bucket, "missing.csv"))):
        datafile.download()

    assert proxy.kinds() == ["stat"]


def test_local_datafile_without_cloud_path_cannot_upload_or_download(bucket, proxy, tmp_path):
    local = tmp_path / "readings.csv"
    local.write_bytes(CSV)
    datafile = Datafile(local)

    with pytest.raises(CloudLocationNotSpecified, match=re.escape(str(local))):
        datafile.upload()
    with pytest.raises(CloudLocationNotSpecified, match=re.escape(str(local))):
        datafile.download()

    assert proxy.kinds() == []
    assert not datafile.exists_in_cloud


# Large files -----------------------------------------------------------------------------------


@pytest.fixture
def eight_mib_upload_chunks():
    """Chunks smaller than the default, so a 20 MiB file crosses several (configure rebuilds the client)."""
    octuefs.configure(upload_chunk_size=8 * MiB)
    try:
        yield
    finally:
        octuefs.configure(upload_chunk_size=StorageSettings().upload_chunk_size)


def test_large_file_goes_up_as_a_resumable_upload_in_bounded_chunks(bucket, proxy, tmp_path, eight_mib_upload_chunks):
    data = os.urandom(20 * MiB)
    local = tmp_path / "big.bin"
    local.write_bytes(data)
    datafile = Datafile(local)

    datafile.upload(gs(bucket, "big/big.bin"))

    uploads = [request for request in proxy.requests if request.kind == "upload"]
    assert proxy.kinds() == ["stat"] + ["upload"] * len(uploads)
    assert len(uploads) >= 4  # start the session, then at least three chunks
    assert max(request.request_bytes for request in proxy.requests) <= 8.5 * MiB
    assert sum(request.request_bytes for request in uploads) >= len(data)
    blob = bucket.get_blob("big/big.bin")
    assert blob.size == len(data)
    assert datafile.cloud_hash_value == blob.crc32c == crc32c(data)

    proxy.reset()
    cloud = Datafile(gs(bucket, "big/big.bin"))
    with cloud.open("rb") as f:
        assert f.read() == data
    assert proxy.kinds() == ["stat", "media"]
