"""Dataset over a `gs://` prefix and over a local folder, against the real server.

A cloud dataset must come from one listing (the listing carries every object's metadata), so the
proxy's request log is checked after each construction; malformed metadata on one object or in
one `.octue` file must be reported with a warning while every file is still listed.
"""

from __future__ import annotations

import json
import re
import uuid
import warnings
from datetime import UTC, datetime

import pytest

from octuefs import Datafile, Dataset, MalformedMetadataError
from octuefs.errors import UnexpectedNumberOfResultsException
from octuefs.metadata.codec import encode_cloud
from octuefs.metadata.model import OctueMetadata

PREFIX = "campaign"
TAGGED = [f"tagged-{index:02}.csv" for index in range(10)]
PLAIN = [f"plain-{index:02}.dat" for index in range(12)]
DIRECT_CHILDREN = sorted([*TAGGED, *PLAIN, "unique.json"])
NESTED = ["dir/nested.txt", "sub/deeper.csv"]
TIMESTAMP = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


def tagged_id(index: int) -> str:
    return f"{index:08x}-0000-4000-8000-000000000000"


def upload(bucket, name: str, content: bytes = b"x", metadata: dict[str, str] | None = None) -> None:
    blob = bucket.blob(name)
    blob.metadata = metadata
    blob.upload_from_string(content)


def octue(**fields) -> dict[str, str]:
    return encode_cloud(OctueMetadata.build(**fields))


@pytest.fixture
def campaign(bucket, proxy):
    """25 objects under `campaign/` (plus two outside it): tagged, plain, placeholders, nested."""
    upload(bucket, f"{PREFIX}/", b"")
    for index, name in enumerate(TAGGED):
        parity = "even" if index % 2 == 0 else "odd"
        upload(
            bucket,
            f"{PREFIX}/{name}",
            f"row,{index}\n".encode(),
            octue(
                id=tagged_id(index),
                timestamp=TIMESTAMP if index == 0 else None,
                tags={"index": index, "parity": parity},
                labels={"wind", parity},
            ),
        )
    for index, name in enumerate(PLAIN):
        upload(bucket, f"{PREFIX}/{name}", bytes(index), {"owner": "someone-else"} if index % 3 == 0 else None)
    upload(bucket, f"{PREFIX}/unique.json", b"{}", octue(labels={"one-of-a-kind"}, tags={"kind": "config"}))
    upload(bucket, f"{PREFIX}/dir/", b"")
    upload(bucket, f"{PREFIX}/dir/nested.txt", b"nested", octue(labels={"nested"}))
    upload(bucket, f"{PREFIX}/sub/deeper.csv", b"deeper")
    upload(bucket, f"{PREFIX}-other/outside.txt", b"outside")
    upload(bucket, "elsewhere/outside.txt", b"outside")
    proxy.reset()
    return f"gs://{bucket.name}/{PREFIX}"


def names(dataset: Dataset) -> list[str]:
    return [datafile.path_in_bucket.removeprefix(f"{PREFIX}/") for datafile in dataset.files]


def by_name(dataset: Dataset) -> dict[str, Datafile]:
    return dict(zip(names(dataset), dataset.files, strict=True))


# Cloud listing ------------------------------------------------------------------------------


def test_cloud_dataset_is_one_list_request_of_direct_children(campaign, bucket, proxy):
    dataset = Dataset(campaign, recursive=False)

    assert proxy.kinds() == ["list"]
    assert names(dataset) == DIRECT_CHILDREN
    assert len(dataset) == 23
    assert dataset.path == campaign
    assert dataset.name == PREFIX
    assert dataset.exists_in_cloud
    # Everything the listing already told costs nothing more: no stat, no download per file.
    blobs = {blob.name: blob for blob in bucket.list_blobs(prefix=f"{PREFIX}/")}
    for datafile in dataset:
        blob = blobs[datafile.path_in_bucket]
        assert (datafile.size_bytes, datafile.hash_value, datafile.cloud_hash_value) == (
            blob.size,
            blob.crc32c,
            blob.crc32c,
        )
        assert datafile.exists_in_cloud
        assert not datafile.exists_locally
    assert proxy.kinds() == ["list"]


def test_cloud_dataset_recursive_adds_nested_objects_and_skips_placeholders(campaign, bucket, proxy):
    upload(bucket, f"{PREFIX}/sub/.octue", b"not even json")
    proxy.reset()

    dataset = Dataset(campaign, recursive=True)

    assert proxy.kinds() == ["list"]
    assert names(dataset) == sorted([*DIRECT_CHILDREN, *NESTED])
    assert by_name(dataset)["dir/nested.txt"].labels == {"nested"}


def test_cloud_dataset_trailing_slash_is_the_same_dataset(campaign, proxy):
    assert names(Dataset(campaign + "/", recursive=False)) == DIRECT_CHILDREN
    assert Dataset(campaign + "/", recursive=False).path == campaign


def test_cloud_dataset_over_a_whole_bucket(campaign, bucket, proxy):
    upload(bucket, "top.txt", b"top")
    proxy.reset()

    dataset = Dataset(f"gs://{bucket.name}", recursive=False)

    assert proxy.kinds() == ["list"]
    assert [df.path_in_bucket for df in dataset] == ["top.txt"]
    assert dataset.name == bucket.name
    assert len(Dataset(f"gs://{bucket.name}/", recursive=True)) == 23 + 2 + 2 + 1


def test_cloud_datafiles_carry_their_octue_metadata(campaign, proxy):
    files = by_name(Dataset(campaign, recursive=False))

    for index, name in enumerate(TAGGED):
        parity = "even" if index % 2 == 0 else "odd"
        datafile = files[name]
        assert datafile.id == tagged_id(index)
        assert datafile.tags == {"index": index, "parity": parity}
        assert datafile.labels == {"wind", parity}
        assert datafile.timestamp == (TIMESTAMP if index == 0 else None)
        assert datafile.cloud_path == f"{campaign}/{name}"
    for name in PLAIN:
        assert files[name].tags == {}
        assert files[name].labels == set()
        assert files[name].timestamp is None
    assert files["unique.json"].tags == {"kind": "config"}


def test_objects_without_metadata_get_stable_distinct_ids(campaign, proxy):
    first = {name: df.id for name, df in by_name(Dataset(campaign, recursive=False)).items() if name in PLAIN}
    second = {name: df.id for name, df in by_name(Dataset(campaign, recursive=False)).items() if name in PLAIN}

    assert first == second
    assert len(set(first.values())) == len(PLAIN)
    assert all(str(uuid.UUID(value)) == value for value in first.values())
    # The same id whether the datafile comes from a listing or is constructed on its own.
    assert Datafile(f"{campaign}/{PLAIN[0]}").id == first[PLAIN[0]]


def test_filter_by_labels_tags_and_predicate(campaign, proxy):
    dataset = Dataset(campaign, recursive=False)
    proxy.reset()

    assert [df.name for df in dataset.filter(labels={"even"})] == TAGGED[0::2]
    assert [df.name for df in dataset.filter(labels=["wind", "odd"])] == TAGGED[1::2]
    assert [df.name for df in dataset.filter(tags={"parity": "odd", "index": 3})] == ["tagged-03.csv"]
    assert [df.name for df in dataset.filter(tags={"index": 0}, labels={"odd"})] == []
    assert [df.name for df in dataset.filter(lambda df: df.size_bytes == 0)] == ["plain-00.dat"]
    assert [df.name for df in dataset.filter(lambda df: df.extension == "csv", labels="even")] == TAGGED[0::2]
    assert len(dataset.filter()) == len(dataset)
    assert proxy.kinds() == []


def test_get_file_by_label(campaign):
    dataset = Dataset(campaign, recursive=False)

    assert dataset.get_file_by_label("one-of-a-kind").name == "unique.json"
    assert dataset.get_file_by_label("One-Of-A-Kind").name == "unique.json"
    with pytest.raises(
        UnexpectedNumberOfResultsException, match=re.escape("5 results found for filters {'labels__contains': 'even'}")
    ):
        dataset.get_file_by_label("even")
    with pytest.raises(UnexpectedNumberOfResultsException, match="0 results"):
        dataset.get_file_by_label("absent")


def test_malformed_object_metadata_warns_and_lists_everything(campaign, bucket, proxy):
    upload(bucket, f"{PREFIX}/bad-tags.csv", b"a", {**octue(labels={"fine"}), "octue__tags": '{"Bad Key": 1}'})
    upload(bucket, f"{PREFIX}/bad-labels.csv", b"b", {"octue__labels": '{"_type": "set", "items": ["NOT VALID!"]}'})
    proxy.reset()

    with pytest.warns(UserWarning) as record:
        dataset = Dataset(campaign, recursive=False)

    messages = [str(warning.message) for warning in record]
    assert len(messages) == 2
    assert any(f"gs://{bucket.name}/{PREFIX}/bad-tags.csv" in message and "Bad Key" in message for message in messages)
    assert any(f"gs://{bucket.name}/{PREFIX}/bad-labels.csv" in message for message in messages)
    assert names(dataset) == sorted([*DIRECT_CHILDREN, "bad-labels.csv", "bad-tags.csv"])
    assert proxy.kinds() == ["list"]
    bad = by_name(dataset)["bad-tags.csv"]
    # Only the bad tag is left out: the rest of the object's metadata is read.
    assert (bad.tags, bad.labels) == ({}, {"fine"})
    # Well-formed neighbours are unaffected.
    assert by_name(dataset)["tagged-01.csv"].labels == {"wind", "odd"}


def test_ignore_stored_metadata_skips_decoding(campaign, bucket, proxy):
    upload(bucket, f"{PREFIX}/bad-tags.csv", b"a", {"octue__tags": '{"Bad Key": 1}'})

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dataset = Dataset(campaign, recursive=False, ignore_stored_metadata=True)

    assert len(dataset) == 24
    assert all(df.tags == {} and df.labels == set() for df in dataset)


# Cloud dataset metadata ---------------------------------------------------------------------


def test_cloud_dataset_metadata_round_trip(campaign, bucket, proxy):
    dataset = Dataset(campaign, tags={"site": "north", "height": 80}, labels={"Met-Mast"})
    proxy.reset()

    dataset.update_metadata()

    assert proxy.kinds() == ["stat", "upload"]
    blob = bucket.get_blob(f"{PREFIX}/.octue")
    assert blob.content_type == "text/plain"
    assert json.loads(blob.download_as_bytes()) == {
        "dataset": {
            "id": dataset.id,
            "name": PREFIX,
            "tags": {"site": "north", "height": 80},
            "labels": ["met-mast"],
            "path": campaign,
        }
    }
    assert dataset.metadata_path == f"{campaign}/.octue"

    proxy.reset()
    reread = Dataset(campaign, recursive=False)

    assert proxy.kinds() == ["list", "media"]
    assert (reread.id, reread.tags, reread.labels) == (dataset.id, {"site": "north", "height": 80}, {"met-mast"})
    assert ".octue" not in names(reread)
    assert len(reread) == len(DIRECT_CHILDREN)


def test_cloud_dataset_metadata_update_replaces_the_previous_one(campaign, bucket):
    first = Dataset(campaign, labels={"first"})
    first.update_metadata()
    reread = Dataset(campaign, recursive=False)
    reread.labels = {"second"}
    reread.tags = {"revision": 2}

    reread.update_metadata()

    final = Dataset(campaign, recursive=False)
    assert (final.id, final.labels, final.tags) == (first.id, {"second"}, {"revision": 2})


def test_stored_dataset_metadata_wins_unless_ignored(campaign, proxy):
    stored = Dataset(campaign, tags={"source": "stored"})
    stored.update_metadata()

    assert Dataset(campaign, tags={"source": "given"}).tags == {"source": "stored"}
    proxy.reset()
    ignored = Dataset(campaign, tags={"source": "given"}, ignore_stored_metadata=True)
    assert ignored.tags == {"source": "given"}
    assert ignored.id != stored.id
    assert proxy.kinds() == ["list"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"{not json", "not valid"),
        (b'{"dataset": ["a", "list"]}', "not a JSON object"),
        (b'{"dataset": {"tags": {"Bad Key": 1}}}', "Bad Key"),
    ],
)
def test_malformed_cloud_dataset_metadata_warns(campaign, bucket, proxy, content, reason):
    upload(bucket, f"{PREFIX}/.octue", content)
    proxy.reset()

    with pytest.warns(UserWarning, match=f"gs://{bucket.name}/{PREFIX}/.octue") as record:
        dataset = Dataset(campaign, recursive=False, labels={"given"})

    assert reason in str(record[0].message)
    assert names(dataset) == DIRECT_CHILDREN
    assert dataset.labels == {"given"}


# Local folder -------------------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path):
    """Four files (one in a subfolder); two have `.octue` entries written by Datafile.update_metadata()."""
    root = tmp_path / "measurements"
    (root / "sub").mkdir(parents=True)
    for name in ("a.csv", "b.csv", "c.txt", "sub/d.txt"):
        (root / name).write_text(name)
    a = Datafile(root / "a.csv", id=tagged_id(1), timestamp=TIMESTAMP, tags={"run": 1}, labels={"Raw"})
    a.update_metadata()
    b = Datafile(root / "b.csv", id=tagged_id(2), tags={"run": 2}, labels={"clean", "raw"})
    b.update_metadata()
    Datafile(root / "sub/d.txt", tags={"depth": 1}).update_metadata()
    return root


def local_names(dataset: Dataset, root) -> list[str]:
    return [str(df.local_path).removeprefix(f"{root}/") for df in dataset]


def test_local_dataset_reads_datafile_entries(folder, proxy):
    dataset = Dataset(folder, recursive=False)

    assert local_names(dataset, folder) == ["a.csv", "b.csv", "c.txt"]
    files = {df.name: df for df in dataset}
    assert (files["a.csv"].id, files["a.csv"].tags, files["a.csv"].labels) == (tagged_id(1), {"run": 1}, {"raw"})
    assert files["a.csv"].timestamp == TIMESTAMP
    assert (files["b.csv"].id, files["b.csv"].labels) == (tagged_id(2), {"clean", "raw"})
    assert (files["c.txt"].tags, files["c.txt"].labels, files["c.txt"].timestamp) == ({}, set(), None)
    assert [df.name for df in dataset.filter(labels={"raw"}, tags={"run": 2})] == ["b.csv"]
    assert dataset.get_file_by_label("clean").name == "b.csv"
    assert dataset.path == str(folder)
    assert not dataset.exists_in_cloud
    assert proxy.kinds() == []


def test_local_dataset_recursive(folder):
    dataset = Dataset(folder, recursive=True)

    assert local_names(dataset, folder) == ["a.csv", "b.csv", "c.txt", "sub/d.txt"]
    assert {df.name: df.tags for df in dataset}["d.txt"] == {"depth": 1}


def test_local_dataset_metadata_merges_into_the_same_octue_file(folder):
    before = json.loads((folder / ".octue").read_text())["datafiles"]
    dataset = Dataset(folder, tags={"site": "north"}, labels={"Campaign"})

    dataset.update_metadata()

    document = json.loads((folder / ".octue").read_text())
    assert document["datafiles"] == before
    assert set(document["datafiles"]) == {"a.csv", "b.csv"}
    assert document["dataset"] == {
        "id": dataset.id,
        "name": "measurements",
        "tags": {"site": "north"},
        "labels": ["campaign"],
        "path": str(folder),
    }
    reread = Dataset(folder, recursive=False)
    assert (reread.id, reread.tags, reread.labels) == (dataset.id, {"site": "north"}, {"campaign"})
    assert {df.name: df.id for df in reread}["a.csv"] == tagged_id(1)

    # A datafile written after the dataset entry keeps the dataset entry too.
    Datafile(folder / "c.txt", labels={"late"}).update_metadata()
    document = json.loads((folder / ".octue").read_text())
    assert document["dataset"]["id"] == dataset.id
    assert set(document["datafiles"]) == {"a.csv", "b.csv", "c.txt"}


def test_malformed_local_octue_file_warns_once_and_lists_everything(folder):
    (folder / ".octue").write_text("{ truncated")

    with pytest.warns(UserWarning, match=str(folder / ".octue")) as record:
        dataset = Dataset(folder, recursive=True, labels={"given"})

    assert len(record) == 1
    assert local_names(dataset, folder) == ["a.csv", "b.csv", "c.txt", "sub/d.txt"]
    assert all(df.tags == {} for df in dataset if df.name != "d.txt")
    assert dataset.labels == {"given"}
    # Writing the dataset entry would destroy what is there: refused, the file left as it was.
    with pytest.raises(MalformedMetadataError):
        dataset.update_metadata()
    assert (folder / ".octue").read_text() == "{ truncated"


def test_malformed_local_entry_warns_naming_the_file(folder):
    document = json.loads((folder / ".octue").read_text())
    document["datafiles"]["b.csv"]["labels"] = {"_type": "set", "items": ["NOT VALID!"]}
    (folder / ".octue").write_text(json.dumps(document))

    with pytest.warns(UserWarning, match=r"b\.csv") as record:
        dataset = Dataset(folder, recursive=False)

    assert len(record) == 1
    files = {df.name: df for df in dataset}
    assert set(files) == {"a.csv", "b.csv", "c.txt"}
    assert files["b.csv"].labels == set()
    assert files["a.csv"].labels == {"raw"}


@pytest.mark.parametrize("entry", [["a", "list"], {"labels": ["NOT VALID!"]}, {"id": "not-a-uuid"}])
def test_malformed_local_dataset_entry_warns_and_keeps_datafile_entries(folder, entry):
    document = json.loads((folder / ".octue").read_text())
    (folder / ".octue").write_text(json.dumps({**document, "dataset": entry}))

    with pytest.warns(UserWarning, match=str(folder / ".octue")) as record:
        dataset = Dataset(folder, tags={"given": True})

    assert len(record) == 1
    assert dataset.tags == {"given": True}
    assert {df.name: df.id for df in dataset}["a.csv"] == tagged_id(1)
