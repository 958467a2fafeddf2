"""The metadata model: ids, timestamps and building validated metadata from user values."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from octuefs.errors import (
    InvalidInputException,
    InvalidLabelException,
    InvalidTagException,
    InvalidTimestampException,
)
from octuefs.metadata.labels import LabelSet
from octuefs.metadata.model import (
    OctueMetadata,
    derived_id,
    new_id,
    normalise_id,
    parse_timestamp,
    parse_timestamp_text,
)
from octuefs.metadata.tags import TagDict

ID = "11111111-1111-4111-8111-111111111111"


# ---- timestamps


def test_datetime_is_returned_unchanged() -> None:
    naive = datetime(2024, 5, 6, 7, 8, 9, 123456)
    aware = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2)))
    assert parse_timestamp(naive) is naive
    assert parse_timestamp(aware) is aware


def test_none_is_no_timestamp() -> None:
    assert parse_timestamp(None) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-06T07:08:09", datetime(2024, 5, 6, 7, 8, 9)),
        ("2024-05-06T07:08:09.123456", datetime(2024, 5, 6, 7, 8, 9, 123456)),
        ("2024-05-06 07:08:09", datetime(2024, 5, 6, 7, 8, 9)),
        ("2024-05-06", datetime(2024, 5, 6)),
        ("  2024-05-06T07:08:09  ", datetime(2024, 5, 6, 7, 8, 9)),
        ("2024-05-06T07:08:09+00:00", datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)),
        ("2024-05-06T07:08:09Z", datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)),
        ("2024-05-06T07:08:09-05:30", datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone(-timedelta(hours=5, minutes=30)))),
    ],
)
def test_iso_8601_with_and_without_offset(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed is not None
    assert parsed.utcoffset() == expected.utcoffset()
    assert (parsed.tzinfo is None) == (expected.tzinfo is None)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(0, 0), (1714979289, 1714979289), (1714979289.25, 1714979289.25), (-86400, -86400)],
)
def test_epoch_seconds_are_naive_local_time_as_octue_makes_them(value: Any, seconds: float) -> None:
    """Octue's timestamp setter is `datetime.fromtimestamp(value)`: local wall time, no offset."""
    parsed = parse_timestamp(value)
    assert parsed == datetime.fromtimestamp(seconds)
    assert parsed is not None
    assert parsed.tzinfo is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1714979289", 1714979289), (" 1714979289.5 ", 1714979289.5), ("0", 0)],
)
def test_epoch_seconds_as_text_are_read_from_stored_metadata_and_xattrs(text: str, seconds: float) -> None:
    assert parse_timestamp_text(text) == datetime.fromtimestamp(seconds)
    assert parse_timestamp_text("2024-05-06T07:08:09") == datetime(2024, 5, 6, 7, 8, 9)


@pytest.mark.parametrize("text", ["1714979289", "yesterday", "", "2024-13-01"])
def test_a_string_given_through_the_api_that_is_not_iso_8601_is_octues_type_error(text: str) -> None:
    with pytest.raises(TypeError, match=re.escape(repr(text))) as raised:
        parse_timestamp(text)
    assert isinstance(raised.value, InvalidTimestampException)
    assert isinstance(raised.value, InvalidInputException)


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "",
        "2024-13-01",
        "2024-05-06T25:00:00",
        True,
        False,
        [2024, 5, 6],
        {"value": "2024-05-06"},
        b"2024-05-06",
        object(),
        float("nan"),
        float("inf"),
        -float("inf"),
        1e20,
        10**20,
        "nan",
        "inf",
        "1e20",
    ],
)
def test_bad_timestamps_raise_invalid_input(value: Any) -> None:
    with pytest.raises(InvalidTimestampException):
        parse_timestamp(value)
    with pytest.raises(InvalidTimestampException):
        parse_timestamp_text(value)


def test_bad_timestamp_message_names_the_value() -> None:
    with pytest.raises(InvalidInputException, match="'yesterday'"):
        parse_timestamp("yesterday")


# ---- ids


def test_normalise_id_lowercases_uppercase_uuids() -> None:
    assert normalise_id(ID.upper()) == ID
    assert normalise_id("ABCDEF01-2345-4789-ABCD-EF0123456789") == "abcdef01-2345-4789-abcd-ef0123456789"


@pytest.mark.parametrize(
    "value", [ID, ID.replace("-", ""), f"{{{ID}}}", f"urn:uuid:{ID}", uuid.UUID(ID), f"{{{ID.upper()}}}"]
)
def test_normalise_id_accepts_what_uuid_accepts(value: Any) -> None:
    assert normalise_id(value) == ID


@pytest.mark.parametrize("value", ["", "junk", "1234", ID[:-1], ID + "0", ID.replace("1", "g"), 42, None, [ID]])
def test_normalise_id_rejects_junk(value: Any) -> None:
    with pytest.raises(InvalidInputException, match="not a UUID"):
        normalise_id(value)


def test_new_ids_are_random_lowercase_uuid4() -> None:
    first, second = new_id(), new_id()
    assert first != second
    assert uuid.UUID(first).version == 4
    assert normalise_id(first) == first


def test_derived_id_is_stable_and_distinct() -> None:
    one = derived_id("bucket", "a/b.csv", 1)
    assert one == derived_id("bucket", "a/b.csv", 1)
    assert normalise_id(one) == one
    assert uuid.UUID(one).version == 5
    others = {
        derived_id("bucket", "a/b.csv", 2),
        derived_id("bucket", "a/c.csv", 1),
        derived_id("other", "a/b.csv", 1),
        derived_id("bucket", "a/b.csv", None),
    }
    assert one not in others
    assert len(others) == 4


# ---- the model


def test_default_metadata_is_empty_with_a_fresh_id() -> None:
    first, second = OctueMetadata(), OctueMetadata()
    assert first.id != second.id
    assert first.timestamp is None
    assert first.tags == {}
    assert first.labels == set()
    assert isinstance(first.tags, TagDict)
    assert isinstance(first.labels, LabelSet)
    first.tags["a"] = 1
    assert second.tags == {}


def test_build_validates_user_values() -> None:
    metadata = OctueMetadata.build(id=ID.upper(), timestamp="2024-05-06T07:08:09", tags={"a": 1}, labels={"Vestas"})
    assert metadata == OctueMetadata(ID, datetime(2024, 5, 6, 7, 8, 9), TagDict(a=1), LabelSet(["vestas"]))


def test_build_without_values_gives_a_fresh_id() -> None:
    metadata = OctueMetadata.build()
    assert uuid.UUID(metadata.id).version == 4
    assert metadata.timestamp is None
    assert metadata.tags == {}
    assert metadata.labels == set()


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"id": "junk"}, InvalidInputException),
        ({"timestamp": "junk"}, InvalidInputException),
        ({"tags": {"Bad": 1}}, InvalidTagException),
        ({"labels": ["-bad"]}, InvalidLabelException),
    ],
)
def test_build_rejects_invalid_values(arguments: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        OctueMetadata.build(**arguments)


def test_copy_is_independent() -> None:
    original = OctueMetadata(ID, None, TagDict(a=[1]), LabelSet(["x"]))
    duplicate = original.copy()
    assert duplicate == original
    duplicate.tags["b"] = 2
    duplicate.labels.add("y")
    assert original.tags == {"a": [1]}
    assert original.labels == {"x"}
    assert isinstance(duplicate.tags, TagDict)
    assert isinstance(duplicate.labels, LabelSet)
