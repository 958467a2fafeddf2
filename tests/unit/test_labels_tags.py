"""LabelSet and TagDict: sets and dicts that only ever hold what Octue can store."""

from __future__ import annotations

import copy
import pickle
from datetime import UTC, datetime
from typing import Any

import pytest

from octuefs.errors import InvalidInputException, InvalidLabelException, InvalidTagException
from octuefs.metadata.labels import LabelSet, normalise_label, split_label_text
from octuefs.metadata.tags import TagDict, validate_tag_key

INVALID_LABELS: list[Any] = ["-a", "a-", "a b", "", "   ", "a_b", "a.b", "ä", "a--", "a\nb", None, 1, b"ab", ["a"]]


# ---- labels


def test_labels_are_lowercased() -> None:
    assert LabelSet({"Vestas"}) == {"vestas"}
    assert normalise_label("Met-Mast") == "met-mast"


def test_labels_are_stripped() -> None:
    assert normalise_label("  a1\n") == "a1"


@pytest.mark.parametrize("label", ["a", "0", "a1", "met-mast", "a--b", "wind-turbine-3", "x" * 200])
def test_valid_labels_are_kept(label: str) -> None:
    assert normalise_label(label) == label
    assert label in LabelSet([label])


@pytest.mark.parametrize("label", INVALID_LABELS)
def test_invalid_labels_are_rejected(label: Any) -> None:
    with pytest.raises(InvalidLabelException):
        normalise_label(label)


@pytest.mark.parametrize("label", INVALID_LABELS)
def test_label_set_rejects_invalid_labels_on_every_way_in(label: Any) -> None:
    labels = LabelSet(["ok"])
    with pytest.raises(InvalidLabelException):
        labels.add(label)
    with pytest.raises(InvalidLabelException):
        labels.update([label])
    with pytest.raises(InvalidLabelException):
        labels |= [label]
    with pytest.raises(InvalidLabelException):
        LabelSet(["fine", label])
    assert labels == {"ok"}


def test_invalid_label_exception_is_a_value_error_naming_the_label() -> None:
    with pytest.raises(ValueError, match="'Bad Label'") as raised:
        LabelSet(["Bad Label"])
    assert isinstance(raised.value, InvalidInputException)


def test_label_set_from_string_splits_words() -> None:
    assert LabelSet("a1 Met-Mast  wind-turbine") == {"a1", "met-mast", "wind-turbine"}
    assert LabelSet("a1,b2") == {"a1", "b2"}
    assert LabelSet('["a1", "b2"]') == {"a1", "b2"}
    assert LabelSet("") == set()
    assert LabelSet(None) == set()
    assert LabelSet() == set()


def test_split_label_text_rejects_bad_json_lists() -> None:
    with pytest.raises(InvalidLabelException):
        split_label_text("[not json")
    assert split_label_text(" [] ") == []


def test_label_set_behaves_like_a_set() -> None:
    labels = LabelSet()
    labels.add("A1")
    labels.add("a1")
    assert labels == {"a1"}
    assert len(labels) == 1
    labels.update(["b2"], ("C3",), {"d4"})
    assert labels == {"a1", "b2", "c3", "d4"}
    result = labels.__ior__(["e5"])
    assert result is labels
    labels |= {"F6"}
    assert isinstance(labels, LabelSet)
    assert labels == {"a1", "b2", "c3", "d4", "e5", "f6"}
    assert "a1" in labels
    assert "A1" in labels
    assert " a1 " in labels
    assert "zz" not in labels
    assert 1 not in labels
    assert None not in labels
    labels.discard("B2")
    labels.discard("missing")
    labels.discard(3)
    labels.remove("C3")
    with pytest.raises(KeyError):
        labels.remove("c3")
    assert labels == {"a1", "d4", "e5", "f6"}
    assert labels - {"a1"} == {"d4", "e5", "f6"}
    assert labels & {"a1", "zz"} == {"a1"}
    assert sorted(labels) == labels.sorted() == ["a1", "d4", "e5", "f6"]


def test_label_set_symmetric_difference_validates_what_it_adds() -> None:
    labels = LabelSet(["a1", "b2"])
    labels ^= {"B2", "C3"}
    assert isinstance(labels, LabelSet)
    assert labels == {"a1", "c3"}
    labels.symmetric_difference_update(["A1"])
    assert labels == {"c3"}
    with pytest.raises(InvalidLabelException):
        labels ^= {"Bad Label"}
    with pytest.raises(InvalidLabelException):
        labels.symmetric_difference_update(["-x"])
    assert labels == {"c3"}


def test_label_set_helpers() -> None:
    labels = LabelSet(["met-mast", "wind-turbine"])
    assert labels.any_label_starts_with("met")
    assert not labels.any_label_starts_with("x")
    assert repr(labels) == "LabelSet(['met-mast', 'wind-turbine'])"


def test_label_set_copies_stay_label_sets() -> None:
    labels = LabelSet(["a1", "b2"])
    for duplicate in (copy.copy(labels), copy.deepcopy(labels), pickle.loads(pickle.dumps(labels)), LabelSet(labels)):
        assert isinstance(duplicate, LabelSet)
        assert duplicate == labels
        assert duplicate is not labels


# ---- tags


@pytest.mark.parametrize("key", ["a", "0", "wind_speed", "a__b", "x1_2", "a" * 100])
def test_valid_tag_keys(key: str) -> None:
    assert validate_tag_key(key) == key
    assert TagDict({key: 1}) == {key: 1}


INVALID_TAG_KEYS: list[Any] = ["Bad", "a-b", "_a", "a_", "", "a b", "a.b", "é", "a\n", " a", 1, None, ("a",)]


@pytest.mark.parametrize("key", INVALID_TAG_KEYS)
def test_invalid_tag_keys_are_rejected_on_every_way_in(key: Any) -> None:
    tags = TagDict(ok=1)
    with pytest.raises(InvalidTagException):
        validate_tag_key(key)
    with pytest.raises(InvalidTagException):
        tags[key] = 1
    with pytest.raises(InvalidTagException):
        tags.update({key: 1})
    with pytest.raises(InvalidTagException):
        tags.update([(key, 1)])
    with pytest.raises(InvalidTagException):
        tags.setdefault(key, 1)
    with pytest.raises(InvalidTagException):
        tags |= {key: 1}
    with pytest.raises(InvalidTagException):
        TagDict({key: 1})
    assert tags == {"ok": 1}


def test_invalid_tag_key_message_names_the_key() -> None:
    with pytest.raises(InvalidTagException, match="'Bad'"):
        TagDict(Bad=1)


class Unencodable:
    pass


@pytest.mark.parametrize(
    "value",
    [object(), Unencodable(), {"nested": object()}, [1, object()], {1, "a"}, {("a", object())}, b"bytes", 1j],
)
def test_unencodable_tag_values_are_rejected(value: Any) -> None:
    tags = TagDict()
    with pytest.raises(InvalidTagException, match="'key'"):
        tags["key"] = value
    with pytest.raises(InvalidTagException):
        tags.update(key=value)
    with pytest.raises(InvalidTagException):
        tags.setdefault("key", value)
    with pytest.raises(InvalidTagException):
        TagDict(key=value)
    assert tags == {}


def test_circular_tag_value_is_rejected() -> None:
    value: list[Any] = []
    value.append(value)
    with pytest.raises(InvalidTagException):
        TagDict(loop=value)


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -3.5,
        "text",
        [1, "two", 3.0],
        {"nested": {"list": [1, None]}},
        datetime(2024, 1, 1),
        datetime(2024, 1, 1, tzinfo=UTC),
        {"a", "b"},
        frozenset({"a"}),
        set(),
        [datetime(2024, 1, 1), {"x"}],
        (1, 2),
    ],
)
def test_encodable_tag_values_are_accepted(value: Any) -> None:
    tags = TagDict(key=value)
    assert tags["key"] == value


def test_tag_dict_behaves_like_a_dict() -> None:
    tags = TagDict({"a": 1}, b=2)
    assert tags == {"a": 1, "b": 2}
    assert TagDict([("a", 1)]) == {"a": 1}
    assert TagDict(None) == {}
    tags.update({"c": 3}, d=4)
    tags.update([("e", 5)])
    assert list(tags) == ["a", "b", "c", "d", "e"]
    assert tags.setdefault("a", 100) == 1
    assert tags.setdefault("f") is None
    assert tags.setdefault("g", [1]) == [1]
    tags |= {"h": 8}
    assert isinstance(tags, TagDict)
    assert tags["h"] == 8
    del tags["h"]
    assert tags.pop("g") == [1]
    assert "h" not in tags
    assert repr(TagDict(a=1)) == repr({"a": 1})  # as Octue's UserDict prints it


def test_tag_dict_copies_stay_valid() -> None:
    tags = TagDict(a={"x"}, b=datetime(2024, 1, 1))
    for duplicate in (copy.copy(tags), copy.deepcopy(tags), TagDict(tags)):
        assert isinstance(duplicate, TagDict)
        assert duplicate == tags
