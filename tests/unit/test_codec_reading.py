"""Reading stored metadata leniently, as Octue does; what cannot be read is reported by name and left out."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from octuefs.datafile import Datafile
from octuefs.errors import MalformedMetadataWarning
from octuefs.metadata import codec
from octuefs.metadata.labels import LabelSet
from octuefs.metadata.tags import TagDict
from octuefs.storage.gcs import ObjectStat

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
        ("1714979289", datetime.fromtimestamp(1714979289)),
        ("1714979289.5", datetime.fromtimestamp(1714979289.5)),
        ('"1714979289"', datetime.fromtimestamp(1714979289)),
        ("0", datetime.fromtimestamp(0)),
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


# Each case: a stored value Octue's rules refuse, and what the field reads as (None: left out).
BADLY_STORED = [
    ("octue__id", '"not-a-uuid"', None),
    ("octue__id", "42", None),
    ("octue__id", '{"a": 1}', None),
    ("octue__timestamp", '"yesterday"', None),
    ("octue__timestamp", "true", None),
    ("octue__timestamp", "[2024, 5, 6]", None),
    ("octue__timestamp", "1e20", None),
    ("octue__timestamp", '"inf"', None),
    ("octue__timestamp", '{"_type": "datetime", "value": "not a date"}', None),
    ("octue__tags", "[1, 2]", None),
    ("octue__tags", "not json", None),
    ("octue__tags", '"a string"', None),
    ("octue__tags", '{"Bad": 1, "good": 2}', {"good": 2}),
    ("octue__tags", '{"Bad-Key": 1}', {}),
    ("octue__tags", '{"when": {"_type": "datetime", "value": "not a date"}}', None),
    ("octue__labels", '{"a": 1}', None),
    ("octue__labels", "-bad", set()),
    ("octue__labels", "good bad-", {"good"}),
    ("octue__labels", "[1, 2]", set()),
    ("octue__labels", '["a b", "fine"]', {"fine"}),
    ("octue__labels", "[unterminated", None),
    ("octue__labels", '{"_type": "set", "items": [{"a": 1}]}', set()),
    ("tags", "[]", None),
]


@pytest.mark.parametrize(("key", "stored", "expected"), BADLY_STORED)
def test_badly_stored_values_warn_naming_the_object_and_field_and_the_rest_is_read(
    key: str, stored: str, expected: Any
) -> None:
    field = key.removeprefix("octue__")
    other = {"octue__tags": '{"kept": true}'} if field == "id" else {"octue__id": json.dumps(ID)}

    with pytest.warns(MalformedMetadataWarning) as record:
        decoded = decode({key: stored, **other})

    assert all(SOURCE in str(warning.message) for warning in record)
    assert any(f"stored {field.removesuffix('s')}" in str(warning.message) for warning in record)
    assert decoded.get(field) == expected
    assert decoded["tags" if field == "id" else "id"] == ({"kept": True} if field == "id" else ID)


def test_a_bad_tag_key_is_named_in_the_warning() -> None:
    with pytest.warns(MalformedMetadataWarning, match=r"stored tag 'Bad-Key'") as record:
        decode({"octue__tags": '{"Bad-Key": 1, "fine": 2}'})
    assert len(record) == 1


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
        "timestamp": datetime.fromtimestamp(0),
    }


def test_decode_local_of_empty_entry_is_empty() -> None:
    assert codec.decode_local({}, "src") == {}


def test_decode_local_does_not_change_its_argument() -> None:
    entry = {"tags": {"a": {"_type": "set", "items": ["x"]}}, "labels": ["b"]}
    snapshot = json.loads(json.dumps(entry))
    codec.decode_local(entry, "src")
    assert entry == snapshot


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("oops", {}),
        (["id", ID], {}),
        (42, {}),
        ({"id": "not-a-uuid", "labels": ["ok"]}, {"labels": {"ok"}}),
        ({"timestamp": {"_type": "datetime", "value": "not a date"}}, {}),
        ({"timestamp": "yesterday", "tags": {"a": 1}}, {"tags": {"a": 1}}),
        ({"tags": ["a"]}, {}),
        ({"tags": {"Bad": 1}}, {"tags": {}}),
        ({"labels": {"_type": "set", "items": [{"a": 1}]}}, {}),
        ({"labels": {"a": 1}}, {}),
        ({"labels": ["-bad", "good"]}, {"labels": {"good"}}),
    ],
)
def test_decode_local_bad_entry_warns_naming_the_source_and_reads_the_rest(entry: Any, expected: Any) -> None:
    with pytest.warns(MalformedMetadataWarning, match=r"dir/\.octue\[readings\.csv\]"):
        assert codec.decode_local(entry, "dir/.octue[readings.csv]") == expected


def test_is_octue_key_accepts_both_spellings_only() -> None:
    for field in codec.FIELDS:
        assert codec.is_octue_key(field)
        assert codec.is_octue_key(f"octue__{field}")
    for key in ("owner", "octue__other", "octue_tags", "Tags", ""):
        assert not codec.is_octue_key(key)


def test_foreign_metadata_keeps_only_non_octue_keys() -> None:
    custom = {"octue__tags": "{}", "labels": "a", "owner": "me", "gone": None}
    assert codec.foreign_metadata(custom) == {"owner": "me", "gone": None}


# Anything another writer may have stored: JSON of any shape, Octue's tagged forms with any contents, raw text.
_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
_tagged_kinds = st.sampled_from(["set", "datetime", "other"])
_stored_json = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=6), children, max_size=3)
        | st.fixed_dictionaries({"_type": _tagged_kinds}, optional={"items": children, "value": children})
    ),
    max_leaves=8,
)
_stored_text = _stored_json.map(json.dumps) | st.text(max_size=20)
_field_names = st.sampled_from([*codec.FIELDS, *(codec.cloud_key(field) for field in codec.FIELDS), "other"])


@settings(max_examples=300, deadline=None)
@given(custom=st.dictionaries(_field_names, _stored_text, max_size=6))
def test_no_stored_cloud_metadata_makes_an_object_unreadable(custom: dict[str, str]) -> None:
    """What the mount and a dataset listing rely on to show every object: reading never raises."""
    stat = ObjectStat("bucket", "tables/readings.csv", 3, 7, 1, None, None, None, custom)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MalformedMetadataWarning)
        datafile = Datafile.from_object_stat(stat)
    assert isinstance(datafile.tags, TagDict) and isinstance(datafile.labels, LabelSet)


@settings(max_examples=300, deadline=None)
@given(entry=st.dictionaries(_field_names, _stored_json, max_size=6) | _stored_json)
def test_no_stored_local_entry_fails_to_decode(entry: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MalformedMetadataWarning)
        decoded = codec.decode_local(entry, SOURCE)
    assert set(decoded) <= {"id", "timestamp", "tags", "labels"}
