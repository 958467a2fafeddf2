"""`octuefs.resources` and `octuefs.exceptions` behave as Octue's `Label`, `LabelSet`, `TagDict` and exceptions do."""

from __future__ import annotations

import json
from collections import UserString

import pytest

from octuefs import errors
from octuefs.exceptions import (
    BrokenSequenceException,
    CloudLocationNotSpecified,
    FileNotFoundException,
    InvalidInputException,
    InvalidLabelException,
    InvalidTagException,
    InvalidTimestampException,
    OctueSDKException,
    ReadOnlyResource,
    UnexpectedNumberOfResultsException,
)
from octuefs.resources import Label, LabelSet, Tag, TagDict, filter_containers
from octuefs.resources.filter_containers import FilterDict, FilterList, FilterSet
from octuefs.resources.label import LABEL_PATTERN
from octuefs.resources.tag import TAG_NAME_PATTERN


def test_a_label_is_a_validated_string():
    label = Label(" met-mast ")

    assert label == "met-mast"
    assert isinstance(label, str)
    assert hash(label) == hash("met-mast")
    assert json.dumps([label]) == '["met-mast"]'
    assert LABEL_PATTERN.match(label)


@pytest.mark.parametrize("name", ["-x", "x-", "a b", "", "é", 3, None])
def test_an_invalid_label_is_octues_exception(name):
    with pytest.raises(InvalidLabelException):
        Label(name)


def test_labels_are_lowercased_as_everywhere_in_octuefs():
    assert Label("Vestas") == "vestas"


def test_a_label_set_takes_label_objects_and_octues_user_strings():
    class OctueLabel(UserString):
        """What `octue.resources.label.Label` is: a UserString."""

    labels = LabelSet([Label("a"), "b", OctueLabel("c")])

    assert labels == {"a", "b", "c"}
    assert all(type(label) is str for label in labels)


def test_label_set_update_takes_single_labels_as_octue_and_iterables_as_a_set():
    labels = LabelSet()

    labels.update("met-mast", Label("a1"))
    labels.update(["x", "y"], {"z"})

    assert labels == {"met-mast", "a1", "x", "y", "z"}
    with pytest.raises(InvalidLabelException):
        labels.update("not valid!")


@pytest.mark.parametrize("text", ["a1 met-mast", '["a1", "met-mast"]'])
def test_a_label_set_from_words_or_a_json_list(text):
    assert LabelSet(text) == {"a1", "met-mast"}


def test_label_set_queries():
    labels = LabelSet({"wind-turbine", "met-mast"})

    assert labels.any_label_starts_with("wind")
    assert labels.any_label_ends_with("mast")
    assert labels.any_label_contains("d-t")
    assert not labels.any_label_ends_with("wind")
    assert not labels.any_label_contains("solar")


def test_tag_dict_primitive_and_serialise():
    tags = TagDict({"b": {2, 1}, "a": 1})

    assert tags.to_primitive() == {"b": {1, 2}, "a": 1}
    assert json.loads(tags.serialise()) == {"a": 1, "b": {"_type": "set", "items": [1, 2]}}
    assert tags.serialise() == json.dumps(json.loads(tags.serialise()), sort_keys=True, indent=4)
    assert TAG_NAME_PATTERN.match("wind_speed")
    with pytest.raises(InvalidTagException, match="Bad-Key"):
        tags["Bad-Key"] = 1


@pytest.mark.parametrize(
    ("raised", "caught_as"),
    [
        (errors.CloudObjectNotFound("gs://b/x: gone"), (FileNotFoundException, FileNotFoundError)),
        (errors.LocalFileNotFound("/x: gone"), (FileNotFoundException, FileNotFoundError)),
        (errors.InvalidLabelException("bad"), (InvalidLabelException, ValueError)),
        (errors.InvalidTagException("bad"), (InvalidTagException, ValueError)),
        (errors.InvalidTimestampException("bad"), (InvalidInputException, ValueError, TypeError)),
        (errors.CloudLocationNotSpecified("none"), (CloudLocationNotSpecified,)),
        (errors.ReadOnlyResource("url"), (ReadOnlyResource,)),
    ],
)
def test_octuefs_errors_are_caught_by_octues_names(raised, caught_as):
    for octue_name in (*caught_as, OctueSDKException):
        with pytest.raises(octue_name):
            raise raised


def test_the_exceptions_module_names_the_same_classes():
    assert InvalidTimestampException is errors.InvalidTimestampException
    assert OctueSDKException is errors.OctuefsError


def test_a_tag_is_a_validated_tag_name():
    tag = Tag("wind_speed")

    assert tag == "wind_speed" and isinstance(tag, str)
    assert TagDict({tag: 3}) == {"wind_speed": 3}
    assert json.dumps({tag: 1}) == '{"wind_speed": 1}'


@pytest.mark.parametrize("name", ["Wind_speed", "_x", "x_", "a-b", " x", "", "é", 3, None])
def test_an_invalid_tag_name_is_octues_tag_exception_as_a_tag_dict_key_would_be(name):
    with pytest.raises(InvalidTagException):
        Tag(name)
    with pytest.raises(InvalidTagException):
        TagDict({name: 1})


def test_octues_filter_container_module_and_lookup_exceptions():
    turbines = FilterList([{"height": 135}, {"height": 80}])

    assert filter_containers.FilterSet is FilterSet
    assert turbines.order_by("height") == [{"height": 80}, {"height": 135}]
    assert turbines.one(height__gt=100) == {"height": 135}
    assert FilterDict({"a": {"height": 1}, "b": {"height": 3}}).one(height__gt=2) == ("b", {"height": 3})
    with pytest.raises(UnexpectedNumberOfResultsException):
        turbines.one(height__gt=1)
    with pytest.raises(BrokenSequenceException):
        turbines.order_by("height", check_start_value=135)
    with pytest.raises(BrokenSequenceException):
        FilterList([{"height": 1}, {"height": 3}]).order_by("height", check_constant_increment=1)
