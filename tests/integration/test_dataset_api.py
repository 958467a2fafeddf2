"""The Dataset API Octue code uses (Octue 0.69's `octue.resources.Dataset`), against the real server.

Construction (path default, `files=`, recursion, missing folders, Octue's bookkeeping files),
`add`, `upload`, `download`, the metadata context manager and the location properties.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from octuefs import CloudLocationNotSpecified, Datafile, Dataset, InvalidInputException
from octuefs.cloud_metadata import MAX_CONFLICT_RETRIES
from octuefs.errors import PreconditionConflict
from octuefs.metadata.codec import encode_cloud
from octuefs.metadata.model import OctueMetadata
from tests.integration.datafile_objects import gs, put

NESTED = {"a.csv": b"a\n", "sub/b.csv": b"b,b\n", "sub/deeper/c.txt": b"c"}
A_ID = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"


@pytest.fixture
def folder(tmp_path) -> Path:
    """Three files, one level and two levels down; `a.csv` has Octue metadata in `.octue`."""
    root = tmp_path / "measurements"
    for name, content in NESTED.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    Datafile(root / "a.csv", id=A_ID, tags={"run": 1}, labels={"raw"}).update_metadata()
    return root


@pytest.fixture
def prefix(bucket) -> str:
    """The same three files under `gs://bucket/measurements`, `a.csv` with Octue metadata."""
    for name, content in NESTED.items():
        metadata = (
            encode_cloud(OctueMetadata.build(id=A_ID, tags={"run": 1}, labels={"raw"})) if name == "a.csv" else None
        )
        put(bucket, f"measurements/{name}", content, metadata=metadata)
    return gs(bucket, "measurements")


def relative_names(dataset: Dataset) -> list[str]:
    return sorted(datafile.path.removeprefix(dataset.path + "/") for datafile in dataset)


# Construction -------------------------------------------------------------------------------


def test_recursive_by_default_as_in_octue(folder, prefix):
    for path in (folder, prefix):
        assert relative_names(Dataset(path)) == sorted(NESTED)
        assert relative_names(Dataset(path, recursive=False)) == ["a.csv"]


def test_path_defaults_to_the_current_directory(folder, monkeypatch):
    monkeypatch.chdir(folder / "sub")

    dataset = Dataset()

    assert dataset.path == str(folder / "sub")
    assert dataset.name == "sub"
    assert relative_names(dataset) == ["b.csv", "deeper/c.txt"]


def test_a_folder_that_does_not_exist_yet_is_an_empty_dataset(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="octuefs.dataset"):
        dataset = Dataset(tmp_path / "not-yet", labels={"new"})

    assert len(dataset) == 0 and dataset.labels == {"new"}
    assert f"<Dataset('not-yet')> is empty at instantiation time (path '{tmp_path / 'not-yet'}')" in caplog.text
    assert not (tmp_path / "not-yet").exists()


def test_an_empty_cloud_prefix_is_reported_too(bucket, caplog):
    with caplog.at_level(logging.WARNING, logger="octuefs.dataset"):
        assert len(Dataset(gs(bucket, "nothing"))) == 0

    assert "is empty at instantiation time" in caplog.text


def test_files_argument_takes_datafiles_paths_and_serialised_datafiles(folder, prefix, proxy):
    local = Datafile(folder / "sub/b.csv")
    proxy.reset()

    dataset = Dataset(
        path=prefix,
        files=[local, str(folder / "a.csv"), f"{prefix}/sub/deeper/c.txt", {"path": f"{prefix}/a.csv", "labels": []}],
        name="chosen",
    )

    # Given files are not listed, nor is the dataset's stored metadata read: one stat per cloud path given.
    assert proxy.kinds() == ["stat", "stat"]
    assert [datafile.path for datafile in dataset.files] == [
        local.path,
        str(folder / "a.csv"),
        f"{prefix}/sub/deeper/c.txt",
        f"{prefix}/a.csv",
    ]
    assert dataset.files.one(path=str(folder / "a.csv")).tags == {"run": 1}
    assert dataset.name == "chosen" and dataset.path == prefix


@pytest.mark.parametrize("files", ["a.csv", {"a.csv": 1}, 3])
def test_files_must_be_a_collection(folder, files):
    with pytest.raises(InvalidInputException, match="files of a Dataset"):
        Dataset(folder, files=files)


def test_octues_bookkeeping_files_are_not_datafiles(folder, prefix, bucket):
    (folder / ".signed_metadata_files").mkdir()
    (folder / ".signed_metadata_files" / "brave-lion").write_text("{}")
    put(bucket, "measurements/.signed_metadata_files/brave-lion", b"{}")
    put(bucket, "measurements/sub/.octue", b"{}")
    put(bucket, "measurements/.octue", json.dumps({"dataset": {"name": "stored"}}).encode())

    for path in (folder, prefix):
        assert relative_names(Dataset(path)) == sorted(NESTED), path
    assert relative_names(Dataset(prefix, include_octue_metadata_files=True)) == sorted(
        [*NESTED, ".octue", "sub/.octue"]
    )
    assert relative_names(Dataset(folder, include_octue_metadata_files=True)) == sorted([*NESTED, ".octue"])


# Location -----------------------------------------------------------------------------------


def test_location_properties(folder, prefix, bucket):
    cloud, local = Dataset(prefix), Dataset(folder)

    assert (cloud.exists_in_cloud, cloud.exists_locally, local.exists_in_cloud, local.exists_locally) == (
        True,
        False,
        False,
        True,
    )
    assert (cloud.bucket_name, cloud.path_in_bucket, cloud.cloud_protocol) == (bucket.name, "measurements", "gs")
    assert (local.bucket_name, local.path_in_bucket, local.cloud_protocol) == (None, None, None)
    assert cloud.metadata_path == f"{prefix}/.octue" and local.metadata_path == str(folder / ".octue")
    assert cloud.all_files_are_in_cloud and not local.all_files_are_in_cloud
    assert repr(cloud) == "<Dataset('measurements')>"


def test_metadata_is_octues_dict(folder):
    dataset = Dataset(folder, id=A_ID, tags={"site": "north"}, labels={"raw"})

    assert dataset.metadata() == {
        "id": A_ID,
        "name": "measurements",
        "tags": {"site": "north"},
        "labels": {"raw"},
        "sdk_version": "0.69.1",
    }
    assert dataset.metadata(include_id=False, include_sdk_version=False, use_octue_namespace=False) == {
        "name": "measurements",
        "tags": {"site": "north"},
        "labels": {"raw"},
    }
    dataset.add_tags(height=3)
    dataset.add_labels("clean")
    assert (dataset.tags, dataset.labels) == ({"site": "north", "height": 3}, {"raw", "clean"})


# Metadata context ---------------------------------------------------------------------------


def test_with_dataset_saves_its_metadata_on_exit(folder, prefix):
    for path in (folder, prefix):
        with Dataset(path) as dataset:
            dataset.labels.add("updated")
            dataset.tags["revision"] = 2

        reread = Dataset(path)
        assert (reread.id, reread.labels, reread.tags) == (dataset.id, {"updated"}, {"revision": 2})


def test_an_exception_inside_with_saves_nothing(folder, prefix, bucket):
    for path in (folder, prefix):
        with pytest.raises(RuntimeError), Dataset(path) as dataset:
            dataset.labels.add("half-done")
            raise RuntimeError("stop")

    assert "dataset" not in json.loads((folder / ".octue").read_text())
    assert bucket.get_blob("measurements/.octue") is None


@pytest.mark.parametrize("where", ["folder", "prefix"])
def test_another_writers_change_to_a_dataset_since_it_was_read_is_kept(where, request):
    """Two programs hold the dataset; the later save keeps the earlier one's changes, as datafiles do."""
    path = request.getfixturevalue(where)
    with Dataset(path, name="first", tags={"kept": 1, "dropped": 1}, labels={"old"}) as setup:
        pass
    ours, theirs = Dataset(path), Dataset(path)
    theirs.labels.add("theirs")
    theirs.tags["theirs"] = 2
    theirs.name = "renamed"
    theirs.update_metadata()

    ours.labels.add("ours")
    ours.labels.discard("old")
    ours.tags["ours"] = 3
    del ours.tags["dropped"]
    ours.update_metadata()

    stored = Dataset(path)
    assert (stored.id, stored.name) == (setup.id, "renamed")
    assert stored.labels == {"theirs", "ours"}
    assert stored.tags == {"kept": 1, "theirs": 2, "ours": 3}
    assert (ours.name, ours.labels, ours.tags) == (stored.name, stored.labels, stored.tags)


@pytest.mark.parametrize("where", ["folder", "prefix"])
def test_a_dataset_made_from_files_replaces_the_stored_metadata(where, request):
    """It never read the stored entry, so there is nothing of another writer's to keep."""
    path = request.getfixturevalue(where)
    with Dataset(path, name="stored", labels={"stored"}):
        pass
    replacing = Dataset(path, files=[f"{path}/a.csv"], name="given", labels={"given"})

    replacing.update_metadata()

    assert (Dataset(path).name, Dataset(path).labels) == ("given", {"given"})


def test_a_cloud_dataset_save_that_loses_a_race_is_retried_and_then_refused(prefix, proxy):
    """A 412 on the `.octue` upload means someone wrote it between our stat and our upload: look again."""
    dataset = Dataset(prefix)
    dataset.labels.add("retried")
    proxy.reset()
    proxy.inject("POST", r"^/upload/", 412, count=1)

    dataset.update_cloud_metadata()

    assert proxy.kinds() == ["stat", "upload", "stat", "upload"]
    assert Dataset(prefix).labels == {"retried"}

    dataset.labels.add("refused")
    proxy.reset()
    proxy.inject("POST", r"^/upload/", 412, count=MAX_CONFLICT_RETRIES + 1)
    with pytest.raises(PreconditionConflict):
        dataset.update_cloud_metadata()
    assert proxy.count("upload") == MAX_CONFLICT_RETRIES + 1
    assert Dataset(prefix).labels == {"retried"}


def test_a_dataset_given_a_new_path_replaces_the_metadata_stored_there(folder, tmp_path):
    """What it read at its old path is no base for merging at the new one."""
    with Dataset(tmp_path / "elsewhere", name="elsewhere", labels={"elsewhere"}):
        pass
    with Dataset(folder, name="measured", labels={"measured"}):
        pass
    moved = Dataset(folder)
    moved.path = tmp_path / "elsewhere"

    moved.update_metadata()

    stored = Dataset(tmp_path / "elsewhere")
    assert (stored.id, stored.name, stored.labels) == (moved.id, "measured", {"measured"})


def test_update_cloud_metadata_needs_a_cloud_dataset(folder):
    with pytest.raises(CloudLocationNotSpecified, match="not in the cloud"):
        Dataset(folder).update_cloud_metadata()


def test_update_local_metadata_needs_a_local_dataset(prefix, tmp_path, monkeypatch):
    """Octue fails opening `gs://.../.octue` as a file; a local folder named `gs:` must never appear."""
    monkeypatch.chdir(tmp_path)

    with pytest.raises(InvalidInputException, match="is in the cloud"):
        Dataset(prefix).update_local_metadata()

    assert list(tmp_path.iterdir()) == []


# Upload and download ------------------------------------------------------------------------


def test_upload_a_local_dataset_keeps_relative_paths_and_metadata(folder, bucket):
    dataset = Dataset(folder, tags={"site": "north"}, labels={"campaign"})
    target = gs(bucket, "uploaded")

    assert dataset.upload(target) == target

    assert dataset.path == target and dataset.exists_in_cloud
    assert sorted(blob.name for blob in bucket.list_blobs(prefix="uploaded/")) == sorted(
        ["uploaded/.octue", *(f"uploaded/{name}" for name in NESTED)]
    )
    reread = Dataset(target)
    # A name never given follows the path, as in Octue.
    assert (reread.id, reread.name, reread.tags, reread.labels) == (
        dataset.id,
        "uploaded",
        {"site": "north"},
        {"campaign"},
    )
    assert {name: reread.files.one(path=f"{target}/{name}").hash_value for name in NESTED} == {
        name: Datafile(folder / name).hash_value for name in NESTED
    }
    assert (reread.files.one(name="a.csv").id, reread.files.one(name="a.csv").tags) == (A_ID, {"run": 1})
    assert reread.hash_value == Dataset(folder).hash_value


def test_upload_without_metadata_and_upload_in_place(folder, bucket, proxy):
    dataset = Dataset(folder)
    dataset.upload(gs(bucket, "bare"), update_cloud_metadata=False)
    assert bucket.get_blob("bare/.octue") is None

    dataset.upload()

    assert bucket.get_blob("bare/.octue") is not None
    proxy.reset()
    dataset.upload()
    # Everything is already there: nothing is sent again.
    assert "upload" not in proxy.kinds()


def test_upload_of_a_local_dataset_needs_a_cloud_path(folder):
    with pytest.raises(CloudLocationNotSpecified, match="is not in the cloud"):
        Dataset(folder).upload()
    with pytest.raises(InvalidInputException, match="upload to a gs://bucket/prefix"):
        Dataset(folder).upload(str(folder.parent / "elsewhere"))


def test_download_keeps_relative_paths(prefix, tmp_path):
    dataset = Dataset(prefix)

    directory = dataset.download(tmp_path / "copy")

    assert directory == str(tmp_path / "copy")
    assert {name: (tmp_path / "copy" / name).read_bytes() for name in NESTED} == NESTED
    assert dataset.exists_in_cloud
    default = Path(Dataset(prefix).download())
    assert default.is_absolute() and (default / "sub/deeper/c.txt").read_bytes() == NESTED["sub/deeper/c.txt"]


def test_download_skips_datafiles_that_are_not_in_the_cloud(prefix, folder, tmp_path):
    dataset = Dataset(prefix, files=[f"{prefix}/sub/b.csv", str(folder / "a.csv")])

    copy = Path(dataset.download(tmp_path / "copy"))

    assert [path.relative_to(copy).as_posix() for path in copy.rglob("*.*")] == ["sub/b.csv"]


def test_download_of_a_local_dataset_is_refused(folder):
    with pytest.raises(CloudLocationNotSpecified, match="Only a cloud dataset"):
        Dataset(folder).download()


# add ----------------------------------------------------------------------------------------


def test_add_a_local_datafile_to_a_cloud_dataset_uploads_it(prefix, tmp_path, bucket):
    dataset = Dataset(prefix)
    (tmp_path / "new.csv").write_text("new\n")
    datafile = Datafile(tmp_path / "new.csv", labels={"added"})

    dataset.add(datafile)
    dataset.add(Datafile(tmp_path / "new.csv"), path_in_dataset="sub/renamed.csv")

    assert datafile in dataset and datafile.cloud_path == f"{prefix}/new.csv"
    assert bucket.get_blob("measurements/new.csv").download_as_bytes() == b"new\n"
    assert bucket.get_blob("measurements/sub/renamed.csv") is not None
    assert Dataset(prefix).files.one(name="new.csv").labels == {"added"}


def test_add_a_cloud_datafile_to_a_cloud_dataset_copies_it_only_from_outside(prefix, bucket, proxy):
    put(bucket, "elsewhere/outside.txt", b"outside")
    dataset = Dataset(prefix)
    inside = Datafile(f"{prefix}/a.csv")
    proxy.reset()

    dataset.add(inside)

    assert proxy.kinds() == []
    outside = Datafile(gs(bucket, "elsewhere/outside.txt"))
    dataset.add(outside, path_in_dataset="copied/outside.txt")
    assert outside.cloud_path == f"{prefix}/copied/outside.txt"
    assert bucket.get_blob("measurements/copied/outside.txt").download_as_bytes() == b"outside"
    assert bucket.get_blob("elsewhere/outside.txt") is not None


def test_add_a_cloud_datafile_to_a_local_dataset_downloads_it(folder, prefix):
    dataset = Dataset(folder)
    datafile = Datafile(f"{prefix}/sub/b.csv")

    dataset.add(datafile, path_in_dataset="from-cloud/b.csv")

    assert (folder / "from-cloud" / "b.csv").read_bytes() == NESTED["sub/b.csv"]
    assert datafile.local_path == str(folder / "from-cloud" / "b.csv")
    assert datafile in dataset


def test_add_a_local_datafile_to_a_local_dataset_copies_it_only_from_outside(folder, tmp_path):
    dataset = Dataset(folder)
    (tmp_path / "outside.txt").write_text("outside")
    outside = Datafile(tmp_path / "outside.txt")
    inside = Datafile(folder / "sub" / "b.csv")

    dataset.add(outside)
    dataset.add(inside, path_in_dataset="ignored.csv")

    assert outside.local_path == str(folder / "outside.txt")
    assert (folder / "outside.txt").read_text() == "outside" and (tmp_path / "outside.txt").exists()
    assert inside.local_path == str(folder / "sub" / "b.csv") and not (folder / "ignored.csv").exists()
    assert {outside, inside} <= set(dataset.files)


def test_add_takes_only_datafiles(folder):
    with pytest.raises(InvalidInputException, match="must be a Datafile"):
        Dataset(folder).add(str(folder / "a.csv"))  # type: ignore[arg-type]


def test_files_named_in_the_stored_dataset_entry_are_the_dataset(folder, prefix, bucket):
    """Octue's `_set_metadata`: a stored entry with `files` (as a signed document has) defines the files."""
    entry = {"dataset": {"name": "chosen", "files": [f"{prefix}/sub/b.csv", str(folder / "a.csv")]}}
    (folder / ".octue").write_text(json.dumps({**json.loads((folder / ".octue").read_text()), **entry}))
    put(bucket, "measurements/.octue", json.dumps(entry).encode())

    for path in (folder, prefix):
        dataset = Dataset(path)
        assert sorted(datafile.path for datafile in dataset) == sorted(entry["dataset"]["files"]), path
        assert dataset.name == "chosen"
    assert len(Dataset(folder, ignore_stored_metadata=True)) == len(NESTED)


def test_files_argument_takes_octues_datafile_primitives(prefix, folder, proxy):
    """What a Twined service receives for each file when a manifest carries datafiles rather than paths."""
    primitives = [Datafile(f"{prefix}/a.csv").to_primitive(), Datafile(folder / "sub" / "b.csv").to_primitive()]
    proxy.reset()

    dataset = Dataset(path=prefix, files=primitives)

    assert proxy.kinds() == []  # the cloud datafile's stat rode along in its primitive
    assert [datafile.path for datafile in dataset] == [f"{prefix}/a.csv", str(folder / "sub" / "b.csv")]
    assert dataset.files.one(name="a.csv").tags == {"run": 1}
