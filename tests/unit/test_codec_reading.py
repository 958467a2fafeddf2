"""Reading stored metadata leniently, as Octue does, and refusing what cannot be read with a named error."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from octuefs.errors import InvalidInputException, MalformedMetadataError
from octuefs.metadata import codec
from octuefs.metadata.labels import LabelSet
from octuefs.metadata.tags import TagDict

SOURCE = "gs://bucket/tables/readings.csv"
ID = "11111111-1111-4111-8111-111111111111"


def decode(custom: dict[str, Any]) -> dict[str, Any]:
    return codec.decode_cloud(custom, SOURCE)


def test_bare_keys_without_prefix_are_read() -> None:
    decoded = decode(
        {
            "id": json.dumps(ID),
            "timestamp": json.dumps({"_type": "datetime", "value": "2024-05-06T07:08:09"}),
            "tags": json.dumps({"height": 350}),
            "labels": json.dumps({"_type": "set", "items": ["met-mast"]}),
            "sdk_version": '"0.50.0"',
        }
    )
    assert decoded == {
        "id": ID,
        "timestamp": datetime(2024, 5, 6, 7, 8, 9),
        "tags": {"height": 350},
        "labels": {"met-mast"},
    }


def test_prefixed_key_wins_over_bare_key() -> None:
    decoded = decode({"tags": '{"old": 1}', "octue__tags": '{"new": 2}', "labels": "old", "octue__labels": '["new"]'})
    assert decoded == {"tags": {"new": 2}, "labels": {"new"}}


def test_bare_key_is_used_when_prefixed_key_is_empty() -> None:
    assert decode({"octue__tags": "", "tags": '{"a": 1}'}) == {"tags": {"a": 1}}


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ('["a1", "met-mast"]', {"a1", "met-mast"}),
        ("a1 met-mast\twind-turbine\n", {"a1", "met-mast", "wind-turbine"}),
        ("  a1   met-mast  ", {"a1", "met-mast"}),
        ("a1, met-mast,wind-turbine", {"a1", "met-mast", "wind-turbine"}),
        ('"a1 met-mast"', {"a1", "met-mast"}),
        ("Vestas MET-MAST", {"vestas", "met-mast"}),
        ('["Vestas"]', {"vestas"}),
        ('{"_type": "set", "items": []}', set()),
        ("[]", set()),
        ("a1", {"a1"}),
        ("2024", {"2024"}),
        ("1e5", {"1e5"}),
        ("true", {"true"}),
    ],
)
def test_labels_in_every_form_octue_accepts(stored: str, expected: set[str]) -> None:
    labels = decode({"octue__labels": stored})["labels"]
    assert isinstance(labels, LabelSet)
    assert labels == expected


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ("1714979289", datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)),
        ("1714979289.5", datetime(2024, 5, 6, 7, 8, 9, 500000, tzinfo=UTC)),
        ('"1714979289"', datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)),
        ("0", datetime(1970, 1, 1, tzinfo=UTC)),
        ('"2024-05-06T07:08:09+02:00"', datetime.fromisoformat("2024-05-06T07:08:09+02:00")),
        ("2024-05-06T07:08:09", datetime(2024, 5, 6, 7, 8, 9)),
        (
            '{"_type": "datetime", "value": "2024-05-06T07:08:09.123456+00:00"}',
            datetime(2024, 5, 6, 7, 8, 9, 123456, UTC),
        ),
    ],
)
def test_timestamp_as_epoch_number_iso_text_or_tagged(stored: str, expected: datetime) -> None:
    timestamp = decode({"octue__timestamp": stored})["timestamp"]
    assert timestamp == expected
    assert timestamp.utcoffset() == expected.utcoffset()


def test_null_timestamp_reads_as_none() -> None:
    assert decode({"octue__timestamp": "null"}) == {"timestamp": None}


def test_non_json_raw_id_is_read_and_normalised() -> None:
    assert decode({"octue__id": ID.upper()}) == {"id": ID}
    assert decode({"octue__id": f"{{{ID}}}"}) == {"id": ID}
    assert decode({"octue__id": json.dumps(ID.replace("-", ""))}) == {"id": ID}


def test_non_json_raw_string_values_are_kept_as_strings() -> None:
    decoded = decode({"octue__labels": "not json at all", "octue__timestamp": "2024-01-01"})
    assert decoded == {"labels": {"not", "json", "at", "all"}, "timestamp": datetime(2024, 1, 1)}


@pytest.mark.parametrize(
    "custom",
    [{}, {"owner": "someone", "content-language": "en"}, {"octue__tags": None, "octue__labels": ""}],
)
def test_object_without_octue_metadata_decodes_to_nothing(custom: dict[str, Any]) -> None:
    assert decode(custom) == {}


def test_only_fields_present_are_returned() -> None:
    assert decode({"octue__tags": '{"a": 1}'}) == {"tags": {"a": 1}}
    assert decode({"octue__labels": '["x"]', "owner": "me"}) == {"labels": {"x"}}


def test_foreign_keys_and_sdk_version_are_not_decoded() -> None:
    decoded = decode({"octue__sdk_version": '"0.69.1"', "owner": '"me"', "tagsx": "{}"})
    assert decoded == {}


def test_decoded_tags_are_a_validated_tag_dict() -> None:
    tags = decode(
        {
            "octue__tags": '{"when": {"_type": "datetime", "value": "2024-01-01T00:00:00"}, "kinds": '
            '{"_type": "set", "items": ["a", "b"]}}'
        }
    )["tags"]
    assert isinstance(tags, TagDict)
    assert tags == {"when": datetime(2024, 1, 1), "kinds": {"a", "b"}}


@pytest.mark.parametrize(
    ("key", "stored"),
    [
        ("octue__id", '"not-a-uuid"'),
        ("octue__id", "42"),
        ("octue__id", '{"a": 1}'),
        ("octue__timestamp", '"yesterday"'),
        ("octue__timestamp", "true"),
        ("octue__timestamp", "[2024, 5, 6]"),
        ("octue__timestamp", "1e20"),
        ("octue__timestamp", '"inf"'),
        ("octue__timestamp", '{"_type": "datetime", "value": "not a date"}'),
        ("octue__tags", "[1, 2]"),
        ("octue__tags", "not json"),
        ("octue__tags", '"a string"'),
        ("octue__tags", '{"Bad": 1}'),
        ("octue__tags", '{"a-b": 1}'),
        ("octue__tags", '{"when": {"_type": "datetime", "value": "not a date"}}'),
        ("octue__labels", '{"a": 1}'),
        ("octue__labels", "-bad"),
        ("octue__labels", "good bad-"),
        ("octue__labels", "[1, 2]"),
        ("octue__labels", '["a b"]'),
        ("octue__labels", "[unterminated"),
        ("octue__labels", '{"_type": "set", "items": [{"a": 1}]}'),
        ("tags", "[]"),
    ],
)
def test_invalid_stored_values_raise_malformed_metadata_naming_the_source(key: str, stored: str) -> None:
    with pytest.raises(MalformedMetadataError, match=re.escape(SOURCE)):
        decode({key: stored})


def test_malformed_metadata_is_an_invalid_input_and_a_value_error() -> None:
    with pytest.raises(MalformedMetadataError) as raised:
        decode({"octue__id": '"nope"'})
    assert isinstance(raised.value, InvalidInputException)
    assert isinstance(raised.value, ValueError)
    assert "nope" in str(raised.value)


def test_decode_local_reads_octue_entry() -> None:
    entry = {
        "id": ID.upper(),
        "timestamp": {"_type": "datetime", "value": "2024-05-06T07:08:09+00:00"},
        "tags": {"kinds": {"_type": "set", "items": ["x"]}},
        "labels": ["Vestas", "met-mast"],
        "sdk_version": "0.69.1",
    }
    assert codec.decode_local(entry, "dir/.octue[readings.csv]") == {
        "id": ID,
        "timestamp": datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
        "tags": {"kinds": {"x"}},
        "labels": {"vestas", "met-mast"},
    }


def test_decode_local_reads_labels_as_a_string_and_epoch_timestamp() -> None:
    entry = {"labels": "a1 met-mast", "timestamp": 0}
    assert codec.decode_local(entry, "src") == {
        "labels": {"a1", "met-mast"},
        "timestamp": datetime(1970, 1, 1, tzinfo=UTC),
    }


def test_decode_local_of_empty_entry_is_empty() -> None:
    assert codec.decode_local({}, "src") == {}


def test_decode_local_does_not_change_its_argument() -> None:
    entry = {"tags": {"a": {"_type": "set", "items": ["x"]}}, "labels": ["b"]}
    snapshot = json.loads(json.dumps(entry))
    codec.decode_local(entry, "src")
    assert entry == snapshot


@pytest.mark.parametrize(
    "entry",
    [
        "oops",
        ["id", ID],
        42,
        {"id": "not-a-uuid"},
        {"timestamp": {"_type": "datetime", "value": "not a date"}},
        {"timestamp": "yesterday"},
        {"tags": ["a"]},
        {"tags": {"Bad": 1}},
        {"labels": {"_type": "set", "items": [{"a": 1}]}},
        {"labels": {"a": 1}},
        {"labels": ["-bad"]},
    ],
)
def test_decode_local_invalid_entry_raises_malformed_metadata_naming_the_source(entry: Any) -> None:
    with pytest.raises(MalformedMetadataError, match=r"dir/\.octue\[readings\.csv\]"):
        codec.decode_local(entry, "dir/.octue[readings.csv]")


def test_is_octue_key_accepts_both_spellings_only() -> None:
    for field in codec.FIELDS:
        assert codec.is_octue_key(field)
        assert codec.is_octue_key(f"octue__{field}")
    for key in ("owner", "octue__other", "octue_tags", "Tags", ""):
        assert not codec.is_octue_key(key)


def test_foreign_metadata_keeps_only_non_octue_keys() -> None:
    custom = {"octue__tags": "{}", "labels": "a", "owner": "me", "gone": None}
    assert codec.foreign_metadata(custom) == {"owner": "me", "gone": None}
