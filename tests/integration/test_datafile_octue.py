"""Datafile's constructor, setters and metadata methods with the Octue SDK's effects, against the real server.

Each test is written from `octue/resources/datafile.py` (0.69.1): what the constructor uploads, what
the `cloud_path` and `local_path` setters do, what `exists_locally`/`exists_in_cloud` mean, `repr`,
ordering, and `update_cloud_metadata`/`update_local_metadata`. Where octuefs deliberately differs
(no eager download, no lost local changes) the test says so.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from octuefs import Datafile
from octuefs.exceptions import CloudLocationNotSpecified, FileNotFoundException
from octuefs.metadata.local_store import LocalMetadataStore
from tests.integration.datafile_objects import (
    CSV,
    CSV_NAME,
    FOREIGN,
    GOLDEN_CSV_TAGS,
    crc32c,
    gs,
    put_golden_csv,
)


@pytest.fixture
def local_csv(tmp_path) -> Path:
    path = tmp_path / "local" / "readings.csv"
    path.parent.mkdir()
    path.write_bytes(CSV)
    return path


# Constructor -----------------------------------------------------------------------------------


def test_a_local_file_with_a_cloud_path_is_uploaded_at_construction(bucket, proxy, local_csv):
    datafile = Datafile(local_csv, cloud_path=gs(bucket, "up/readings.csv"), tags={"site": "orkney"})

    assert proxy.kinds() == ["stat", "upload"]
    blob = bucket.get_blob("up/readings.csv")
    assert blob.download_as_bytes() == CSV
    assert json.loads(blob.metadata["octue__tags"]) == {"site": "orkney"}
    assert json.loads(blob.metadata["octue__id"]) == datafile.id
    assert datafile.cloud_path == gs(bucket, "up/readings.csv")
    assert datafile.local_path == str(local_csv)
    assert datafile.exists_in_cloud and datafile.exists_locally


def test_a_local_file_not_written_yet_goes_to_its_cloud_path_when_written(bucket, proxy, tmp_path):
    path = tmp_path / "new.csv"

    with Datafile(path, cloud_path=gs(bucket, "new.csv"), mode="w") as (datafile, f):
        assert proxy.kinds() == []
        f.write("a,b\n")
        datafile.labels.add("fresh")

    assert proxy.kinds() == ["stat", "upload"]
    blob = bucket.get_blob("new.csv")
    assert blob.download_as_bytes() == b"a,b\n"
    assert json.loads(blob.metadata["octue__labels"])["items"] == ["fresh"]
    assert LocalMetadataStore(tmp_path).datafile_entry("new.csv")["labels"]["items"] == ["fresh"]


def test_a_cloud_datafile_with_a_local_path_downloads_there_when_first_read(bucket, proxy, tmp_path):
    put_golden_csv(bucket)
    target = tmp_path / "copy" / "readings.csv"

    datafile = Datafile(gs(bucket, CSV_NAME), local_path=target)

    # octuefs downloads lazily (Octue downloads in the constructor): nothing until the content is asked for.
    assert proxy.kinds() == ["stat"]
    assert not target.exists()
    assert datafile.local_path == str(target)
    assert target.read_bytes() == CSV
    assert proxy.kinds() == ["stat", "media"]


def test_a_cloud_datafile_whose_local_path_already_holds_its_bytes_downloads_nothing(bucket, proxy, local_csv):
    put_golden_csv(bucket)

    datafile = Datafile(gs(bucket, CSV_NAME), local_path=local_csv)

    assert datafile.exists_locally
    assert datafile.local_path == str(local_csv)
    assert proxy.kinds() == ["stat"]


def test_other_constructor_keywords_are_passed_to_open(tmp_path, proxy):
    path = tmp_path / "text.txt"

    with Datafile(path, mode="w", encoding="utf-16") as (_, f):
        f.write("héllo")

    assert path.read_bytes() == "héllo".encode("utf-16")


def test_a_given_name_is_the_datafiles_name(local_csv, proxy):
    datafile = Datafile(local_csv, name="renamed.csv")

    assert (datafile.name, datafile.extension) == ("renamed.csv", "csv")
    assert repr(datafile) == "<Datafile('renamed.csv')>"
    assert datafile.local_path == str(local_csv)


# exists_locally / exists_in_cloud ----------------------------------------------------------------


def test_exists_locally_and_in_cloud_as_octue_defines_them(bucket, proxy, tmp_path, local_csv):
    put_golden_csv(bucket)
    cloud = Datafile(gs(bucket, CSV_NAME))
    missing_object = Datafile(gs(bucket, "missing.csv"))
    unwritten = Datafile(tmp_path / "not-yet.csv")
    local = Datafile(local_csv)

    assert (cloud.exists_in_cloud, cloud.exists_locally) == (True, False)
    assert (missing_object.exists_in_cloud, missing_object.exists_locally) == (True, False)
    assert (unwritten.exists_in_cloud, unwritten.exists_locally) == (False, True)
    assert (local.exists_in_cloud, local.exists_locally) == (False, True)
    cloud.download()
    assert (cloud.exists_in_cloud, cloud.exists_locally) == (True, True)


# cloud_path setter ------------------------------------------------------------------------------


def test_setting_the_cloud_path_of_a_local_datafile_uploads_it(bucket, proxy, local_csv):
    datafile = Datafile(local_csv, labels={"a"})

    datafile.cloud_path = gs(bucket, "set/readings.csv")

    assert proxy.kinds() == ["stat", "upload"]
    blob = bucket.get_blob("set/readings.csv")
    assert blob.download_as_bytes() == CSV
    assert json.loads(blob.metadata["octue__labels"])["items"] == ["a"]
    assert datafile.cloud_path == gs(bucket, "set/readings.csv")


def test_setting_the_cloud_path_of_a_cloud_datafile_copies_it_there(bucket, proxy):
    put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))

    datafile.cloud_path = gs(bucket, "moved/readings.csv")

    blob = bucket.get_blob("moved/readings.csv")
    assert blob.download_as_bytes() == CSV
    assert json.loads(blob.metadata["octue__tags"]) == GOLDEN_CSV_TAGS
    assert json.loads(blob.metadata["octue__id"]) == datafile.id
    assert bucket.get_blob(CSV_NAME) is not None
    assert datafile.cloud_path == gs(bucket, "moved/readings.csv")


def test_resetting_the_cloud_path_of_a_cloud_only_datafile_is_refused(bucket, proxy):
    put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))

    with pytest.raises(CloudLocationNotSpecified, match="only exists in the cloud"):
        datafile.cloud_path = None

    assert datafile.cloud_path == gs(bucket, CSV_NAME)


def test_resetting_the_cloud_path_detaches_the_datafile_from_the_cloud(bucket, proxy, local_csv):
    datafile = Datafile(local_csv, cloud_path=gs(bucket, "up/readings.csv"))
    proxy.reset()

    datafile.cloud_path = None
    datafile.tags["after"] = 1
    datafile.update_metadata()

    assert (datafile.cloud_path, datafile.exists_in_cloud) == (None, False)
    assert proxy.kinds() == []
    assert "after" not in bucket.get_blob("up/readings.csv").metadata["octue__tags"]
    assert LocalMetadataStore(local_csv.parent).datafile_entry("readings.csv")["tags"] == {"after": 1}


def test_a_downloaded_cloud_datafile_detached_from_the_cloud_is_a_local_one(bucket, proxy, tmp_path):
    put_golden_csv(bucket)
    target = tmp_path / "copy" / "readings.csv"
    datafile = Datafile(gs(bucket, CSV_NAME))
    datafile.download(target)

    datafile.cloud_path = None

    assert datafile.path == datafile.local_path == str(target)
    assert (datafile.exists_in_cloud, datafile.exists_locally) == (False, True)


# local_path setter ------------------------------------------------------------------------------


def test_setting_the_local_path_of_a_local_datafile_copies_it_there(local_csv, tmp_path, proxy):
    datafile = Datafile(local_csv)
    target = tmp_path / "elsewhere" / "copy.csv"

    datafile.local_path = target

    assert datafile.local_path == datafile.path == str(target)
    assert target.read_bytes() == CSV
    assert local_csv.read_bytes() == CSV  # Octue copies: the old file stays
    assert proxy.kinds() == []


def test_setting_the_local_path_of_a_cloud_datafile_downloads_there(bucket, proxy, tmp_path):
    put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))
    target = tmp_path / "copy.csv"

    datafile.local_path = target

    assert proxy.kinds() == ["stat", "media"]
    assert target.read_bytes() == CSV
    assert datafile.local_path == str(target)
    assert datafile.path == gs(bucket, CSV_NAME)


def test_setting_the_local_path_again_copies_the_local_copy_without_a_request(bucket, proxy, tmp_path):
    put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))
    datafile.local_path = tmp_path / "first.csv"
    proxy.reset()

    datafile.local_path = tmp_path / "second.csv"

    assert proxy.kinds() == []
    assert (tmp_path / "second.csv").read_bytes() == CSV
    assert datafile.local_path == str(tmp_path / "second.csv")
    assert datafile.hash_value == crc32c(CSV)


def test_setting_the_local_path_to_an_existing_file_is_refused(local_csv, tmp_path, proxy):
    taken = tmp_path / "taken.csv"
    taken.write_text("mine")

    with pytest.raises(FileExistsError, match=r"taken\.csv"):
        Datafile(local_csv).local_path = taken

    assert taken.read_text() == "mine"


def test_setting_the_local_path_of_a_missing_local_file_is_file_not_found(tmp_path, proxy):
    datafile = Datafile(tmp_path / "absent.csv")

    with pytest.raises(FileNotFoundException, match=r"absent\.csv"):
        datafile.local_path = tmp_path / "copy.csv"


def test_resetting_the_local_path_of_a_local_only_datafile_is_refused(local_csv, proxy):
    datafile = Datafile(local_csv)

    with pytest.raises(CloudLocationNotSpecified, match="only exists locally"):
        datafile.local_path = None

    assert datafile.exists_locally


def test_resetting_the_local_path_forgets_the_local_copy(bucket, proxy, tmp_path):
    put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))
    first = Path(datafile.local_path)

    datafile.local_path = None

    assert not datafile.exists_locally
    assert Path(datafile.local_path) != first
    assert Path(datafile.local_path).read_bytes() == CSV
    assert proxy.kinds() == ["stat", "media", "media"]


def test_resetting_the_local_path_of_an_uploaded_local_datafile_makes_it_a_cloud_one(bucket, proxy, local_csv):
    datafile = Datafile(local_csv, cloud_path=gs(bucket, "up/readings.csv"))

    datafile.local_path = None

    assert datafile.path == gs(bucket, "up/readings.csv")
    assert not datafile.exists_locally
    datafile.tags["later"] = True
    datafile.update_metadata()
    assert json.loads(bucket.get_blob("up/readings.csv").metadata["octue__tags"]) == {"later": True}


# repr and ordering ------------------------------------------------------------------------------


def test_repr_is_octues(bucket, proxy, local_csv):
    put_golden_csv(bucket)

    assert repr(Datafile(local_csv)) == "<Datafile('readings.csv')>"
    assert repr(Datafile(gs(bucket, CSV_NAME))) == "<Datafile('readings.csv')>"
    assert str(Datafile(local_csv)) == "<Datafile('readings.csv')>"


def test_datafiles_order_by_name_and_refuse_other_types(tmp_path, proxy):
    names = ["b.csv", "c.csv", "a.csv"]
    datafiles = [Datafile(tmp_path / folder / name) for folder, name in zip("zyx", names, strict=True)]

    assert [datafile.name for datafile in sorted(datafiles)] == ["a.csv", "b.csv", "c.csv"]
    assert datafiles[0] < datafiles[1] and datafiles[1] > datafiles[2]
    with pytest.raises(TypeError, match="cannot be compared"):
        assert datafiles[0] < "a.csv"
    with pytest.raises(TypeError, match="cannot be compared"):
        assert datafiles[0] > 1


# update_cloud_metadata / update_local_metadata --------------------------------------------------


def test_update_cloud_metadata_is_one_patch(bucket, proxy):
    before = put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))
    proxy.reset()

    datafile.tags["checked"] = True
    datafile.update_cloud_metadata()

    assert proxy.kinds() == ["patch"]
    after = bucket.get_blob(CSV_NAME)
    assert json.loads(after.metadata["octue__tags"]) == {**GOLDEN_CSV_TAGS, "checked": True}
    assert after.metadata["owner"] == FOREIGN["owner"]
    assert after.generation == before.generation
    assert not datafile.metadata_changed


def test_update_cloud_metadata_of_an_uploaded_local_datafile_leaves_the_octue_file_alone(bucket, proxy, local_csv):
    datafile = Datafile(local_csv, cloud_path=gs(bucket, "up/readings.csv"))
    proxy.reset()

    datafile.labels.add("cloud-only")
    datafile.update_cloud_metadata()

    assert proxy.kinds() == ["patch"]
    assert "cloud-only" in bucket.get_blob("up/readings.csv").metadata["octue__labels"]
    assert not (local_csv.parent / ".octue").exists()


def test_update_cloud_metadata_without_a_cloud_path_is_refused(local_csv, proxy):
    with pytest.raises(CloudLocationNotSpecified, match=r"readings\.csv"):
        Datafile(local_csv).update_cloud_metadata()


def test_update_cloud_metadata_of_a_missing_object_is_file_not_found(bucket, proxy):
    with pytest.raises(FileNotFoundException, match=r"missing\.csv"):
        Datafile(gs(bucket, "missing.csv")).update_cloud_metadata()


def test_update_local_metadata_writes_the_octue_entry_only(bucket, proxy, local_csv):
    datafile = Datafile(local_csv, cloud_path=gs(bucket, "up/readings.csv"))
    proxy.reset()

    datafile.tags["local"] = "yes"
    datafile.update_local_metadata()

    assert proxy.kinds() == []
    assert LocalMetadataStore(local_csv.parent).datafile_entry("readings.csv")["tags"] == {"local": "yes"}
    assert json.loads(bucket.get_blob("up/readings.csv").metadata["octue__tags"]) == {}


def test_update_local_metadata_of_a_downloaded_cloud_datafile_writes_beside_its_copy(bucket, proxy, tmp_path):
    put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))
    with pytest.raises(FileNotFoundException, match="no local copy"):
        datafile.update_local_metadata()
    datafile.download(tmp_path / "readings.csv")
    proxy.reset()

    datafile.update_local_metadata()

    assert proxy.kinds() == []
    assert LocalMetadataStore(tmp_path).datafile_entry("readings.csv")["tags"] == GOLDEN_CSV_TAGS


# Timestamps ------------------------------------------------------------------------------------


def test_epoch_seconds_are_stored_in_octues_form(bucket, proxy, local_csv):
    datafile = Datafile(local_csv, timestamp=1714979289.5)

    datafile.upload(gs(bucket, "stamped.csv"))

    stored = bucket.get_blob("stamped.csv").metadata["octue__timestamp"]
    assert stored == json.dumps({"_type": "datetime", "value": datetime.fromtimestamp(1714979289.5).isoformat()})
    assert Datafile(gs(bucket, "stamped.csv")).timestamp == datetime.fromtimestamp(1714979289.5)


@pytest.mark.parametrize("value", ["yesterday", "1714979289", "", b"2024-05-06", [2024]])
def test_a_timestamp_that_is_not_a_datetime_number_or_iso_8601_is_octues_type_error(local_csv, proxy, value):
    with pytest.raises(TypeError, match="Timestamp"):
        Datafile(local_csv, timestamp=value)
    datafile = Datafile(local_csv)
    with pytest.raises(TypeError, match="Timestamp"):
        datafile.timestamp = value
    assert datafile.timestamp is None


def test_an_iso_8601_timestamp_is_accepted(local_csv, proxy):
    datafile = Datafile(local_csv, timestamp="2024-05-06T07:08:09+02:00")

    assert datafile.timestamp == datetime.fromisoformat("2024-05-06T07:08:09+02:00")


# Serialisation ---------------------------------------------------------------------------------

OCTUE_FIELDS = {"id", "timestamp", "tags", "labels", "name", "local_path", "cloud_path", "path", "_cloud_metadata"}


def test_a_cloud_datafile_serialises_in_octues_format(bucket, proxy):
    blob = put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))
    proxy.reset()

    text = datafile.serialise()

    assert proxy.kinds() == []
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=4)
    serialised = json.loads(text)
    assert set(serialised) == OCTUE_FIELDS
    assert serialised["labels"] == ["a1", "met-mast", "wind-turbine"]
    assert serialised["timestamp"] == {"_type": "datetime", "value": "2024-05-06T07:08:09.123456"}
    assert serialised["tags"] == GOLDEN_CSV_TAGS
    assert (serialised["path"], serialised["cloud_path"], serialised["local_path"]) == (gs(bucket, CSV_NAME),) * 2 + (
        None,
    )
    cloud = serialised["_cloud_metadata"]
    assert cloud["crc32c"] == blob.crc32c and cloud["size"] == len(CSV)
    # Octue's reading of the object's custom metadata: decoded values, its own keys without the prefix.
    assert cloud["custom_metadata"]["tags"] == GOLDEN_CSV_TAGS
    assert cloud["custom_metadata"]["labels"] == {"_type": "set", "items": ["a1", "met-mast", "wind-turbine"]}
    assert cloud["custom_metadata"]["owner"] == FOREIGN["owner"]
    assert cloud["updated"]["_type"] == "datetime"


def test_to_primitive_holds_python_values_as_octues_does(bucket, proxy):
    put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))

    primitive = datafile.to_primitive()

    assert set(primitive) == OCTUE_FIELDS
    assert primitive["timestamp"] == datafile.timestamp
    assert primitive["labels"] == sorted(datafile.labels)
    assert isinstance(primitive["_cloud_metadata"]["updated"], datetime)


@pytest.mark.parametrize("form", ["text", "text-flag", "primitive", "json-of-primitive"])
def test_a_cloud_datafile_is_rebuilt_from_any_serialised_form_without_a_request(bucket, proxy, form):
    blob = put_golden_csv(bucket)
    datafile = Datafile(gs(bucket, CSV_NAME))
    datafile.tags["unsaved"] = True
    proxy.reset()
    serialised = {
        "text": datafile.serialise(),
        "text-flag": datafile.serialise(),
        "primitive": datafile.to_primitive(),
        "json-of-primitive": json.loads(datafile.serialise()),
    }[form]

    copy = Datafile.deserialise(serialised, from_string=form == "text-flag")

    assert proxy.kinds() == []
    assert (copy.id, copy.timestamp, copy.tags, copy.labels) == (
        datafile.id,
        datafile.timestamp,
        datafile.tags,
        datafile.labels,
    )
    assert copy.cloud_path == copy.path == gs(bucket, CSV_NAME)
    assert copy.cloud_stat.generation == blob.generation
    assert copy.metadata_changed  # the unsaved tag came along as a change still to save
    copy.update_metadata()
    assert proxy.kinds() == ["patch"]
    assert json.loads(bucket.get_blob(CSV_NAME).metadata["octue__tags"])["unsaved"] is True


def test_a_local_datafile_with_a_cloud_copy_round_trips(bucket, proxy, local_csv):
    datafile = Datafile(local_csv, cloud_path=gs(bucket, "up/readings.csv"), labels={"x"})
    proxy.reset()

    serialised = json.loads(datafile.serialise())
    copy = Datafile.deserialise(serialised)

    assert (serialised["path"], serialised["local_path"]) == (str(local_csv), str(local_csv))
    assert proxy.kinds() == []
    assert (copy.path, copy.cloud_path, copy.labels) == (str(local_csv), gs(bucket, "up/readings.csv"), {"x"})
    assert copy.exists_locally and copy.exists_in_cloud


def test_a_datafile_read_through_a_url_round_trips(bucket, proxy):
    put_golden_csv(bucket)
    url = f"{proxy.url}/{bucket.name}/{CSV_NAME}?X-Goog-Signature=unchecked"
    datafile = Datafile(url)
    proxy.reset()

    copy = Datafile.deserialise(datafile.serialise())

    assert proxy.kinds() == []
    assert copy.cloud_path == url
    assert copy.tags == GOLDEN_CSV_TAGS
    with copy.open() as f:
        assert f.read() == CSV.decode()
