"""Recovery of staged writes after a crash: finish the upload, or set the bytes aside, never clobber."""

from __future__ import annotations

import json
import stat
from datetime import timedelta

import pytest

from octuefs.datafile import Datafile
from octuefs.storage.gcs import TEMPORARY_PREFIX, get_storage
from octuefs.uploads.staging import StagingArea, recover, remove_stale_parts


def test_new_file_is_uploaded_with_its_metadata(bucket, tmp_path, proxy) -> None:
    area = StagingArea(tmp_path / "staging")
    datafile = Datafile.for_new_object(bucket.name, "new/file.csv")
    datafile.tags = {"kept": True}
    staged = area.create(datafile.content_upload_request())
    staged.data_path.write_bytes(b"a,b\n1,2\n")

    report = recover(StagingArea(tmp_path / "staging"), get_storage(), tmp_path / "lost+found", bucket.name, "")

    assert len(report) == 1 and "uploaded 8 bytes" in report[0]
    blob = bucket.get_blob("new/file.csv")
    assert blob.download_as_bytes() == b"a,b\n1,2\n"
    assert json.loads(blob.metadata["octue__tags"]) == {"kept": True}
    assert json.loads(blob.metadata["octue__id"]) == datafile.id
    assert blob.content_type == "text/csv"
    assert area.pending() == []


def test_object_still_at_its_generation_gets_the_bytes(bucket, tmp_path, proxy) -> None:
    blob = bucket.blob("data.txt")
    blob.metadata = {"owner": "alice"}
    blob.upload_from_string(b"old", content_type="text/plain")
    area = StagingArea(tmp_path / "staging")
    staged = area.create(Datafile(f"gs://{bucket.name}/data.txt").content_upload_request())
    staged.data_path.write_bytes(b"new content")

    report = recover(area, get_storage(), tmp_path / "lost+found", bucket.name, "")

    assert "uploaded 11 bytes" in report[0]
    after = bucket.get_blob("data.txt")
    assert after.download_as_bytes() == b"new content"
    assert after.metadata["owner"] == "alice" and "octue__id" in after.metadata
    assert after.content_type == "text/plain"


def test_object_changed_meanwhile_is_not_overwritten(bucket, tmp_path, proxy) -> None:
    bucket.blob("data.txt").upload_from_string(b"old")
    area = StagingArea(tmp_path / "staging")
    staged = area.create(Datafile(f"gs://{bucket.name}/data.txt").content_upload_request())
    staged.data_path.write_bytes(b"ours")
    bucket.blob("data.txt").upload_from_string(b"theirs")

    report = recover(area, get_storage(), tmp_path / "lost+found", bucket.name, "")

    assert bucket.blob("data.txt").download_as_bytes() == b"theirs"
    kept = next((tmp_path / "lost+found").glob("*-data.txt"))
    assert kept.read_bytes() == b"ours"
    assert stat.S_IMODE((tmp_path / "lost+found").stat().st_mode) == 0o700
    assert {stat.S_IMODE(path.stat().st_mode) for path in (tmp_path / "lost+found").iterdir()} == {0o600}
    assert str(kept) in report[0] and "not uploaded" in report[0]
    assert area.pending() == []


def test_bytes_the_object_already_holds_are_dropped_not_set_aside(bucket, tmp_path, proxy) -> None:
    """An upload that reached the server as its daemon stopped, before the staged copy was dropped: the
    object is at a newer generation than the record says, with exactly the staged bytes."""
    area = StagingArea(tmp_path / "staging")
    staged = area.create(Datafile.for_new_object(bucket.name, "sent.txt").content_upload_request())
    staged.data_path.write_bytes(b"sent just before the stop")
    bucket.blob("sent.txt").upload_from_string(b"sent just before the stop")
    generation = bucket.get_blob("sent.txt").generation

    report = recover(area, get_storage(), tmp_path / "lost+found", bucket.name, "")

    assert report == [f"gs://{bucket.name}/sent.txt already holds these 25 bytes (generation {generation})"]
    assert bucket.get_blob("sent.txt").generation == generation
    assert area.pending() == [] and not (tmp_path / "lost+found").exists()


def test_new_file_whose_name_was_taken_meanwhile_is_set_aside(bucket, tmp_path, proxy) -> None:
    area = StagingArea(tmp_path / "staging")
    staged = area.create(Datafile.for_new_object(bucket.name, "race.txt").content_upload_request())
    staged.data_path.write_bytes(b"ours")
    bucket.blob("race.txt").upload_from_string(b"theirs")

    report = recover(area, get_storage(), tmp_path / "lost+found", bucket.name, "")

    assert bucket.blob("race.txt").download_as_bytes() == b"theirs"
    assert "not uploaded" in report[0]


@pytest.mark.parametrize(("bucket_name", "name"), [("another-bucket", "mine/file.txt"), (None, "minefield/file.txt")])
def test_records_of_other_sources_are_left_alone(bucket, tmp_path, proxy, bucket_name, name) -> None:
    area = StagingArea(tmp_path / "staging")
    staged = area.create(Datafile.for_new_object(bucket_name or bucket.name, name).content_upload_request())
    staged.data_path.write_bytes(b"planted")

    report = recover(area, get_storage(), tmp_path / "lost+found", bucket.name, "mine")

    assert "left where it is" in report[0] and str(staged.data_path) in report[0]
    assert bucket.get_blob(name) is None
    assert area.pending() == [staged] and staged.data_path.read_bytes() == b"planted"


def test_parts_a_crashed_append_left_are_removed_once_old(bucket) -> None:
    for name in (f"{TEMPORARY_PREFIX}a", f"{TEMPORARY_PREFIX}b"):
        bucket.blob(name).upload_from_string(b"tail")
    bucket.blob("kept.txt").upload_from_string(b"not a part")

    assert remove_stale_parts(get_storage(), bucket.name) == []  # young: maybe an append in flight
    removed = remove_stale_parts(get_storage(), bucket.name, older_than=timedelta(0))

    assert sorted(removed) == [f"{TEMPORARY_PREFIX}a", f"{TEMPORARY_PREFIX}b"]
    assert [blob.name for blob in bucket.list_blobs()] == ["kept.txt"]
