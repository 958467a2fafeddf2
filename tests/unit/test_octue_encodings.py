"""Every way a Datafile's sets and datetimes are written, byte-compared with what the Octue SDK 0.69.1 wrote.

`tests/data/octue-golden-encodings.json` holds the `.octue` file and the custom metadata Octue made
for the three datafiles below (run with TZ=UTC: epoch seconds become naive local time in Octue);
`tests/data/octue-golden-serialised.json` holds Octue's `Datafile.serialise()` of a local file.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from octuefs import Datafile
from octuefs.metadata.codec import encode_cloud
from tests.support.golden import GOLDEN_ENCODINGS, GOLDEN_SERIALISED

ID = "33333333-3333-4333-8333-333333333333"
CASES: dict[str, dict[str, Any]] = {
    "a.csv": {
        "timestamp": datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone(timedelta(hours=2))),
        "tags": {
            "s": {3, 1, 2},
            "words": {"b", "a"},
            "nested": {"inner": {"x", "y"}, "lst": [1, datetime(2020, 1, 1)]},
            "u": "héllo ✓",
            "f": 1.5,
            "n": None,
            "b": False,
        },
        "labels": {"z", "a1", "m-m"},
    },
    "b.csv": {"timestamp": 1714979289, "tags": {}, "labels": set()},
    "c.csv": {"timestamp": None, "tags": {"when": datetime(2023, 1, 1, tzinfo=UTC)}, "labels": {"x"}},
}


@contextlib.contextmanager
def time_zone(name: str) -> Iterator[None]:
    previous = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("TZ")
        else:
            os.environ["TZ"] = previous
        time.tzset()


@pytest.fixture
def utc() -> Iterator[None]:
    """Octue turns epoch seconds into naive local time; the golden bytes were made in UTC."""
    with time_zone("UTC"):
        yield


def written(tmp_path: Path) -> dict[str, Datafile]:
    datafiles = {}
    for name, values in CASES.items():
        (tmp_path / name).write_text("x")
        datafiles[name] = Datafile(tmp_path / name, id=ID, **values)
        datafiles[name].update_metadata()
    return datafiles


def test_the_octue_file_is_octues_bytes(tmp_path, utc):
    written(tmp_path)

    assert (tmp_path / ".octue").read_text() == GOLDEN_ENCODINGS["octue_file_text"]


def test_the_custom_metadata_is_octues_bytes(tmp_path, utc):
    datafiles = written(tmp_path)

    for name, datafile in datafiles.items():
        assert encode_cloud(datafile.octue_metadata) == GOLDEN_ENCODINGS["cloud_custom_metadata"][name], name


def test_what_octue_wrote_reads_back_as_the_same_values(tmp_path, utc):
    (tmp_path / ".octue").write_text(GOLDEN_ENCODINGS["octue_file_text"])
    for name, values in CASES.items():
        (tmp_path / name).write_text("x")

        datafile = Datafile(tmp_path / name)

        expected = values["timestamp"]
        assert datafile.timestamp == (datetime.fromtimestamp(expected) if isinstance(expected, int) else expected)
        assert (datafile.id, datafile.tags, datafile.labels) == (ID, values["tags"], values["labels"])


def test_epoch_seconds_are_written_as_naive_local_time_in_any_zone(tmp_path):
    (tmp_path / "b.csv").write_text("x")
    with time_zone("Asia/Kolkata"):
        datafile = Datafile(tmp_path / "b.csv", timestamp=1714979289)
        stored = json.loads(encode_cloud(datafile.octue_metadata)["octue__timestamp"])

    assert stored == {"_type": "datetime", "value": "2024-05-06T12:38:09"}


def test_serialise_is_octues_text(tmp_path):
    given = GOLDEN_SERIALISED["given"]
    path = tmp_path / "readings.csv"
    path.write_text("time,speed\n0,3.5\n1,4.25\n")
    datafile = Datafile(
        path,
        id=given["id"],
        timestamp=datetime.fromisoformat(given["timestamp"]),
        tags={**given["tags"], "heights": set(given["tags"]["heights"]), "when": datetime(2023, 1, 1)},
        labels=set(given["labels"]),
    )

    text = datafile.serialise().replace(str(tmp_path), GOLDEN_SERIALISED["directory"])

    assert text == GOLDEN_SERIALISED["serialised"]


def test_what_octue_serialised_deserialises(tmp_path):
    directory = GOLDEN_SERIALISED["directory"]
    text = GOLDEN_SERIALISED["serialised"].replace(directory, str(tmp_path))
    (tmp_path / "readings.csv").write_text("time,speed\n0,3.5\n1,4.25\n")

    datafile = Datafile.deserialise(text, from_string=True)

    assert datafile.id == GOLDEN_SERIALISED["given"]["id"]
    assert datafile.timestamp == datetime(2024, 5, 6, 7, 8, 9, 123456)
    assert datafile.tags == {"manufacturer": "Vestas", "heights": {10, 30}, "when": datetime(2023, 1, 1)}
    assert datafile.labels == {"a1", "met-mast"}
    assert datafile.local_path == str(tmp_path / "readings.csv")
    assert json.loads(datafile.serialise()) == json.loads(text)
