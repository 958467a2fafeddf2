"""Octue's JSON value encoding: default separators, ASCII only, tagged datetimes and sets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from octuefs.metadata import codec
from octuefs.metadata.model import OctueMetadata
from octuefs.metadata.tags import TagDict
from octuefs.metadata.values import dumps, from_jsonable, loads, to_jsonable


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({"a": 1, "b": [1, 2]}, '{"a": 1, "b": [1, 2]}'),
        ("é ☃", '"\\u00e9 \\u2603"'),
        (datetime(2024, 5, 6, 7, 8, 9), '{"_type": "datetime", "value": "2024-05-06T07:08:09"}'),
        (datetime(2024, 5, 6, tzinfo=UTC), '{"_type": "datetime", "value": "2024-05-06T00:00:00+00:00"}'),
        ({"c", "a", "b"}, '{"_type": "set", "items": ["a", "b", "c"]}'),
        (frozenset({2, 1}), '{"_type": "set", "items": [1, 2]}'),
        (set(), '{"_type": "set", "items": []}'),
        (None, "null"),
        (3.0, "3.0"),
        (True, "true"),
    ],
)
def test_dumps_writes_octue_bytes(value: Any, text: str) -> None:
    assert dumps(value) == text
    assert loads(text) == value


def test_dumps_keeps_insertion_order() -> None:
    assert dumps({"z": 1, "a": 2}) == '{"z": 1, "a": 2}'


def test_dumps_refuses_unencodable_values() -> None:
    with pytest.raises(TypeError):
        dumps(object())


@pytest.mark.parametrize("text", ["not json", "a1 met-mast", "", "{", "2024-01-01", "'single'"])
def test_loads_falls_back_to_the_raw_string(text: str) -> None:
    assert loads(text) == text


@pytest.mark.parametrize(
    "text",
    [
        '{"_type": "datetime", "value": "not a date"}',
        '{"_type": "set", "items": [{"a": 1}]}',
    ],
)
def test_loads_of_undecodable_tagged_value_is_the_raw_string(text: str) -> None:
    assert loads(text) == text


@pytest.mark.parametrize(
    "obj",
    [
        {"_type": "set", "items": ["a"], "extra": 1},
        {"_type": "datetime", "value": "2024-01-01", "extra": 1},
        {"_type": "set", "items": "a"},
        {"_type": "datetime", "value": 5},
        {"_type": "other", "value": "x"},
    ],
)
def test_objects_that_only_look_tagged_stay_plain(obj: dict[str, Any]) -> None:
    assert loads(dumps(obj)) == obj
    assert from_jsonable(obj) == obj


def test_to_and_from_jsonable_round_trip() -> None:
    value = {"when": datetime(2024, 1, 1), "kinds": {"b", "a"}, "list": [{"x"}, None]}
    jsonable = to_jsonable(value)
    assert jsonable == {
        "when": {"_type": "datetime", "value": "2024-01-01T00:00:00"},
        "kinds": {"_type": "set", "items": ["a", "b"]},
        "list": [{"_type": "set", "items": ["x"]}, None],
    }
    assert from_jsonable(jsonable) == value


@pytest.mark.parametrize(
    "members",
    [
        {frozenset({"x", "y"}), frozenset()},
        {(1, (2, 3)), (4,)},
        {datetime(2024, 1, 1), datetime(2025, 1, 1)},
        {("a", frozenset({"b"}))},
    ],
)
def test_set_tags_with_nested_members_round_trip(members: set[Any]) -> None:
    """A tag TagDict accepts must also be readable back: nested set members become hashable again."""
    metadata = OctueMetadata(tags=TagDict(members=members))
    assert codec.decode_cloud(codec.encode_cloud(metadata), "obj")["tags"] == {"members": members}
    assert codec.decode_local(codec.encode_local(metadata), "src")["tags"] == {"members": members}
