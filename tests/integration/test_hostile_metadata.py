"""Custom metadata a hostile bucket writer stored, read through the library and the CLI against the
real server: out-of-range POSIX values and Octue tags nested far too deep never crash a reader; the
bad field is reported with a warning naming the object and read as absent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from octuefs import Datafile, Dataset
from octuefs.errors import MalformedMetadataWarning
from tests.integration.datafile_objects import CSV, gs, put

OCTUEFS = Path(sys.executable).parent / "octuefs"
DEEP_TAGS = '{"deep": ' + "[" * 990 + "]" * 990 + "}"
OUT_OF_RANGE_POSIX = {
    "goog-reserved-posix-uid": "-1",
    "goog-reserved-posix-gid": "99999999999999999999",
    "goog-reserved-posix-mode": "777777777777777777777",
    "goog-reserved-file-mtime": "99999999999999999999999",
}


def run_cli(proxy, *arguments: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "STORAGE_EMULATOR_HOST": proxy.url}
    return subprocess.run([str(OCTUEFS), *arguments], capture_output=True, text=True, env=environment, timeout=60)


@pytest.fixture
def hostile(bucket) -> None:
    put(bucket, "data/deep.csv", CSV, "text/csv", {"octue__tags": DEEP_TAGS, "octue__labels": '["kept"]'})
    put(bucket, "data/posix.csv", CSV, "text/csv", {**OUT_OF_RANGE_POSIX, "octue__labels": '["kept"]'})
    put(bucket, "data/fine.csv", CSV, "text/csv", {"octue__labels": '["kept"]'})


def test_the_library_reads_an_object_with_tags_nested_too_deep_as_without_tags(hostile, bucket):
    path = gs(bucket, "data/deep.csv")
    with pytest.warns(MalformedMetadataWarning) as record:
        datafile = Datafile(path)
    messages = [str(warning.message) for warning in record if issubclass(warning.category, MalformedMetadataWarning)]
    assert len(messages) == 1 and path in messages[0] and "stored tags" in messages[0], messages
    assert "991 levels deep, more than the 100 allowed" in messages[0]
    assert datafile.tags == {} and datafile.labels == {"kept"}


def test_a_dataset_with_a_too_deep_object_and_dot_octue_lists_everything(hostile, bucket):
    deep_document = '{"dataset": {"tags": {"deep": ' + "[" * 990 + "]" * 990 + "}}}"
    put(bucket, "data/.octue", deep_document.encode(), "application/json", {})
    with pytest.warns(UserWarning) as record:
        dataset = Dataset(gs(bucket, "data"))
    messages = [str(warning.message) for warning in record]
    assert any(message.startswith(gs(bucket, "data/.octue")) and "levels deep" in message for message in messages)
    assert any(message.startswith(gs(bucket, "data/deep.csv: stored tags")) for message in messages), messages
    assert sorted(datafile.name for datafile in dataset.files) == ["deep.csv", "fine.csv", "posix.csv"]
    assert dataset.tags == {}
    assert {datafile.name: datafile.labels for datafile in dataset.files}["deep.csv"] == {"kept"}


def test_cli_ls_and_info_show_an_object_with_tags_nested_too_deep_without_a_traceback(hostile, bucket, proxy):
    listing = run_cli(proxy, "ls", gs(bucket, "data"), "--json")
    assert listing.returncode == 0 and "Traceback" not in listing.stderr, listing.stderr[-2000:]
    shown = {entry["path"]: entry for entry in json.loads(listing.stdout)}
    assert shown[gs(bucket, "data/deep.csv")]["tags"] == {}
    assert shown[gs(bucket, "data/deep.csv")]["labels"] == ["kept"]
    assert len(shown) == 3
    info = run_cli(proxy, "info", gs(bucket, "data/deep.csv"))
    assert info.returncode == 0 and "Traceback" not in info.stderr, info.stderr[-2000:]
    assert "labels:    kept" in info.stdout and "tags:      {}" in info.stdout
    assert f"{gs(bucket, 'data/deep.csv')}: stored tags" in info.stderr
    assert "levels deep" in info.stderr
