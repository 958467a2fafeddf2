"""Metadata another writer stored badly never makes a datafile unreadable, against the real server.

The objects' custom metadata and the `.octue` files are written directly (not through octuefs),
as a careless tool would: each bad field, tag or label is reported with a warning naming the
object and the field, and everything else is read.
"""

from __future__ import annotations

import json
import re
import warnings
from datetime import datetime

import pytest

from octuefs import Datafile
from octuefs.errors import MalformedMetadataError, MalformedMetadataWarning
from tests.integration.datafile_objects import CSV, FOREIGN, gs, put

BADLY_STORED = {
    "octue__id": '"not-a-uuid"',
    "octue__timestamp": '"yesterday"',
    "octue__tags": '{"Bad-Key": 1, "good": 2, "when": {"_type": "datetime", "value": "2024-01-02T03:04:05"}}',
    "octue__labels": '["Capital", "ok", "bad label!"]',
    "octue__sdk_version": '"0.1.0"',
    **FOREIGN,
}


def warning_messages(record: pytest.WarningsRecorder) -> list[str]:
    return [str(warning.message) for warning in record if issubclass(warning.category, MalformedMetadataWarning)]


def test_a_cloud_object_with_bad_fields_is_read_with_a_warning_per_field(bucket, proxy):
    put(bucket, "bad.csv", CSV, "text/csv", BADLY_STORED)
    path = gs(bucket, "bad.csv")

    with pytest.warns(MalformedMetadataWarning) as record:
        datafile = Datafile(path)

    messages = warning_messages(record)
    assert all(path in message for message in messages)
    assert any("stored id 'not-a-uuid'" in message for message in messages)
    assert any("stored timestamp 'yesterday'" in message for message in messages)
    assert any("stored tag 'Bad-Key'" in message for message in messages)
    assert any("stored label 'bad label!'" in message for message in messages)
    assert len(messages) == 4
    assert datafile.tags == {"good": 2, "when": datetime(2024, 1, 2, 3, 4, 5)}
    assert datafile.labels == {"capital", "ok"}
    assert datafile.timestamp is None
    # The id octuefs gives an object without a valid one is stable until one is written.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MalformedMetadataWarning)
        assert Datafile(path).id == datafile.id
    with datafile.open() as f:
        assert f.read() == CSV.decode()


def test_saving_a_badly_stored_object_writes_clean_metadata_and_keeps_foreign_keys(bucket, proxy):
    put(bucket, "bad.csv", CSV, "text/csv", BADLY_STORED)
    with pytest.warns(MalformedMetadataWarning):
        datafile = Datafile(gs(bucket, "bad.csv"))

    datafile.labels.add("checked")
    datafile.update_metadata()

    metadata = bucket.get_blob("bad.csv").metadata
    assert json.loads(metadata["octue__id"]) == datafile.id
    assert json.loads(metadata["octue__tags"])["good"] == 2
    assert "Bad-Key" not in metadata["octue__tags"]
    assert json.loads(metadata["octue__labels"])["items"] == ["capital", "checked", "ok"]
    assert metadata["owner"] == FOREIGN["owner"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", MalformedMetadataWarning)
        assert Datafile(gs(bucket, "bad.csv")).labels == {"capital", "checked", "ok"}


def test_tags_that_are_not_an_object_are_left_out_and_the_rest_read(bucket, proxy):
    put(bucket, "odd.csv", CSV, "text/csv", {"octue__tags": "{not json", "octue__labels": '["fine"]'})

    with pytest.warns(MalformedMetadataWarning, match=re.escape(gs(bucket, "odd.csv")) + ".*stored tags"):
        datafile = Datafile(gs(bucket, "odd.csv"))

    assert (datafile.tags, datafile.labels) == ({}, {"fine"})


def test_a_bad_local_entry_is_read_with_warnings(tmp_path, proxy):
    (tmp_path / "readings.csv").write_bytes(CSV)
    entry = {"id": "nope", "tags": {"Bad-Key": 1, "height": 3}, "labels": ["Mixed-Case", "-bad"], "timestamp": None}
    (tmp_path / ".octue").write_text(json.dumps({"datafiles": {"readings.csv": entry}}))

    with pytest.warns(MalformedMetadataWarning) as record:
        datafile = Datafile(tmp_path / "readings.csv")

    messages = warning_messages(record)
    assert len(messages) == 3
    assert all(f"{tmp_path / '.octue'}[readings.csv]" in message for message in messages)
    assert (datafile.tags, datafile.labels) == ({"height": 3}, {"mixed-case"})


def test_a_local_octue_file_that_is_not_json_reads_as_empty_and_is_never_overwritten(tmp_path, proxy):
    (tmp_path / "readings.csv").write_bytes(CSV)
    (tmp_path / ".octue").write_text("{ truncated")

    with pytest.warns(MalformedMetadataWarning, match=re.escape(str(tmp_path / ".octue"))):
        datafile = Datafile(tmp_path / "readings.csv", tags={"given": 1})

    assert datafile.tags == {"given": 1}
    with pytest.raises(MalformedMetadataError, match=re.escape(str(tmp_path / ".octue"))):
        datafile.update_metadata()
    assert (tmp_path / ".octue").read_text() == "{ truncated"
