"""Octue's filter lookups and containers (octuefs.filters), on plain objects.

Expectations come from Octue 0.69's docs (`docs/core_concepts/data_containers/available_filters.md`,
`datasets.md`) and its `octue/mixins/filterable.py` / `octue/resources/filter_containers.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

import pytest

from octuefs.errors import BrokenSequenceException, InvalidInputException, UnexpectedNumberOfResultsException
from octuefs.filters import FilterDict, FilterList, FilterSet, lookups_for, satisfies
from octuefs.metadata.labels import LabelSet
from octuefs.metadata.tags import TagDict


@dataclass(eq=False)
class Item:
    name: str
    tags: TagDict = field(default_factory=TagDict)
    labels: LabelSet = field(default_factory=LabelSet)
    timestamp: datetime | None = None
    size_bytes: int = 0
    extension: str = ""


MY = Item("my_file.csv", TagDict(cluster=0, manufacturer="Vestas"), LabelSet(["one", "a", "b", "all"]), extension="csv")
YOUR = Item(
    "your_file.txt", TagDict(cluster=1, manufacturer="Vergnet"), LabelSet(["two", "a", "b", "all"]), extension="txt"
)
ANOTHER = Item(
    "another_file.csv", TagDict(cluster=2, manufacturer="Enercon"), LabelSet(["three", "all"]), extension="csv"
)


def files() -> FilterSet[Item]:
    return FilterSet([MY, YOUR, ANOTHER])


def with_negations(*names: str) -> set[str]:
    return {*names, *("is_not" if name == "is" else f"not_{name}" for name in names)}


# The lookup tables, as Octue's docs list them --------------------------------------------------


@pytest.mark.parametrize(
    ("value", "names"),
    [
        (3, with_negations("is", "equals", "in_range") | {"lt", "lte", "gt", "gte"}),
        (2.5, with_negations("is", "equals", "in_range") | {"lt", "lte", "gt", "gte"}),
        ([1], with_negations("is", "equals", "contains", "icontains")),
        ({"a": 1}, with_negations("is", "equals", "contains", "icontains")),
        (True, with_negations("is", "equals")),
        (None, with_negations("is", "equals")),
        (
            "text",
            with_negations("is", "equals", "iequals", "contains", "icontains", "starts_with", "ends_with", "in_range")
            | {"lt", "lte", "gt", "gte"},
        ),
        (
            LabelSet(),
            with_negations(
                "is", "equals", "contains", "any_label_contains", "any_label_starts_with", "any_label_ends_with"
            ),
        ),
        (
            datetime(2024, 1, 1),
            with_negations("is", "equals", "in_range")
            | {"lt", "lte", "gt", "gte", "in_date_range", "in_time_range"}
            | {
                f"{part}_{kind}"
                for part in ("year", "month", "day", "weekday", "iso_weekday", "time", "hour", "minute", "second")
                for kind in ("equals", "in")
            },
        ),
    ],
)
def test_each_type_offers_octues_lookups(value, names):
    assert set(lookups_for(value)) == names


def test_a_type_without_lookups_is_refused():
    with pytest.raises(InvalidInputException, match="object cannot be filtered"):
        lookups_for(object())


@pytest.mark.parametrize(
    ("lookup", "expected"),
    [
        ({"name__equals": "my_file.csv"}, True),
        ({"name__not_equals": "my_file.csv"}, False),
        ({"name__iequals": "MY_FILE.CSV"}, True),
        ({"name__not_iequals": "MY_FILE.CSV"}, False),
        ({"name__starts_with": "my"}, True),
        ({"name__not_starts_with": "my"}, False),
        ({"name__ends_with": ".csv"}, True),
        ({"name__not_ends_with": ".csv"}, False),
        ({"name__contains": "_file"}, True),
        ({"name__not_contains": "_file"}, False),
        ({"name__icontains": "FILE"}, True),
        ({"name__not_icontains": "FILE"}, False),
        ({"name__lt": "n"}, True),
        ({"name__lte": "my_file.csv"}, True),
        ({"name__gt": "n"}, False),
        ({"name__gte": "my_file.csv"}, True),
        ({"name__in_range": ("m", "n")}, True),
        ({"name__not_in_range": ("m", "n")}, False),
        ({"name__is": "my_file.csv"}, True),  # interned: `is`, as in Octue
        ({"name": "my_file.csv"}, True),
        ({"extension": "txt"}, False),
        ({"size_bytes__lt": 1}, True),
        ({"size_bytes__in_range": (0, 0)}, True),
        ({"size_bytes__gte": 1}, False),
        ({"tags__cluster__gt": -1}, True),
        ({"tags__manufacturer__starts_with": "V"}, True),
        ({"tags__manufacturer": "Vestas"}, True),
        ({"tags__contains": "cluster"}, True),
        ({"labels__contains": "a"}, True),
        ({"labels__contains": "A"}, True),  # labels are lowercase words; a label is looked up as one
        ({"labels__not_contains": "a"}, False),
        ({"labels__equals": {"one", "a", "b", "all"}}, True),
        ({"labels__any_label_contains": "hre"}, False),
        ({"labels__any_label_starts_with": "on"}, True),
        ({"labels__any_label_ends_with": "ll"}, True),
        ({"labels__not_any_label_ends_with": "ll"}, False),
        ({"timestamp__is": None}, True),
        ({"timestamp__is_not": None}, False),
        ({"timestamp": None}, True),
    ],
)
def test_lookups_on_one_item(lookup, expected):
    assert satisfies(MY, **lookup) is expected


def test_datetime_lookups():
    moment = Item("t", timestamp=datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC))  # a Monday

    for lookup in (
        {"timestamp__year_equals": 2024},
        {"timestamp__year_in": {2023, 2024}},
        {"timestamp__month_equals": 5},
        {"timestamp__day_in": range(1, 10)},
        {"timestamp__weekday_equals": 0},
        {"timestamp__iso_weekday_equals": 1},
        {"timestamp__time_equals": time(7, 8, 9)},
        {"timestamp__hour_in": [7]},
        {"timestamp__minute_equals": 8},
        {"timestamp__second_equals": 9},
        {"timestamp__gt": datetime(2024, 1, 1, tzinfo=UTC)},
        {"timestamp__in_date_range": (date(2024, 5, 1), date(2024, 5, 31))},
        {"timestamp__in_time_range": (time(7), time(8))},
        {"timestamp__not_in_range": (datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))},
    ):
        assert satisfies(moment, **lookup), lookup
    assert not satisfies(moment, timestamp__month_in=[1, 2])


def test_icontains_on_a_collection_is_a_case_insensitive_member():
    """Octue raises AttributeError (no `casefold` on a list); a collection of words is what users mean."""
    item = Item("x", tags=TagDict(models=["V90", "E-126"]))

    assert satisfies(item, tags__models__icontains="v90")
    assert not satisfies(item, tags__models__icontains="v9")
    assert satisfies(item, tags__models__not_icontains="v9")


def test_unknown_lookup_or_attribute_raises():
    with pytest.raises(InvalidInputException, match="'name__sounds_like'"):
        satisfies(MY, name__sounds_like="x")
    with pytest.raises(InvalidInputException, match="'colour'"):
        satisfies(MY, colour="red")
    with pytest.raises(ValueError, match="exactly one lookup"):
        satisfies(MY, name="a", extension="b")


def test_a_missing_attribute_fails_or_raises_as_asked():
    assert not satisfies(MY, tags__height__gt=1, raise_error_if_filter_is_invalid=False)
    with pytest.raises(AttributeError, match=r"tags\.height"):
        satisfies(MY, tags__height__gt=1)
    # The shortcut for a missing tag too (Octue raises InvalidInputException there, whatever is asked).
    assert not satisfies(MY, tags__height=1, raise_error_if_filter_is_invalid=False)


def test_comparing_values_that_cannot_be_compared_raises_as_in_octue():
    with pytest.raises(TypeError):
        files().filter(tags__manufacturer__gt=3)


# Containers ---------------------------------------------------------------------------------


def test_octues_documented_examples():
    assert files().filter(name__starts_with="my") == {MY}
    assert files().filter(extension="csv") == {MY, ANOTHER}
    assert files().filter(labels__contains="a") == {MY, YOUR}
    assert files().filter(extension="csv").filter(labels__contains="a") == {MY}
    assert files().filter(extension="csv", labels__contains="a") == {MY}
    assert files().filter(name__ends_with=".csv", tags__cluster__gt=1) == {ANOTHER}
    assert files().filter(tags__manufacturer__starts_with="V") == {MY, YOUR}
    assert files().filter(name__starts_with="my").one() is MY
    assert files().order_by("name") == [ANOTHER, MY, YOUR]
    assert files().order_by("name", reverse=True) == [YOUR, MY, ANOTHER]


def test_several_lookups_ignore_items_without_an_attribute_like_one_does():
    """Octue applies the first of several lookups as if told not to ignore, raising AttributeError."""
    tagged = Item("tagged.csv", TagDict(height=5))

    assert FilterSet([MY, tagged]).filter(tags__height__gt=1, name__ends_with=".csv") == {tagged}
    with pytest.raises(AttributeError):
        FilterSet([MY, tagged]).filter(ignore_items_without_attribute=False, tags__height__gt=1)


def test_filter_returns_the_same_kind_of_container_and_keeps_order():
    result = files().filter(labels__contains="all")

    assert type(result) is FilterSet
    assert list(result) == [MY, YOUR, ANOTHER]
    assert type(FilterList([MY, YOUR]).filter(name__contains="y")) is FilterList
    assert list(files().filter()) == [MY, YOUR, ANOTHER]


def test_one_raises_octues_error_for_none_or_several():
    with pytest.raises(
        UnexpectedNumberOfResultsException, match=re.escape("0 results found for filters {'name': 'nope'}")
    ):
        files().one(name="nope")
    with pytest.raises(UnexpectedNumberOfResultsException, match="2 results"):
        files().one(extension="csv")
    with pytest.raises(UnexpectedNumberOfResultsException, match="3 results"):
        files().one()
    assert FilterSet([YOUR]).one() is YOUR
    assert FilterList([MY, YOUR]).one(name__starts_with="y") is YOUR


def test_order_by_nested_attributes_and_checks():
    assert files().order_by("tags__cluster") == [MY, YOUR, ANOTHER]
    assert files().order_by("tags.cluster", check_start_value=0, check_constant_increment=1) == [MY, YOUR, ANOTHER]
    assert isinstance(files().order_by("name"), FilterList)
    with pytest.raises(BrokenSequenceException, match="start"):
        files().order_by("tags__cluster", check_start_value=1)
    with pytest.raises(BrokenSequenceException, match="constant increment of 2"):
        files().order_by("tags__cluster", check_constant_increment=2)
    with pytest.raises(InvalidInputException, match=r"'tags\.height' does not exist"):
        files().order_by("tags__height")


def test_filter_set_is_a_set():
    result = files()

    assert len(result) == 3 and MY in result and Item("my_file.csv") not in result
    result.add(MY)
    assert len(result) == 3
    assert result - {MY} == {YOUR, ANOTHER} and type(result - {MY}) is FilterSet
    assert (result & {MY}) == {MY}
    assert (FilterSet([MY]) | FilterSet([YOUR])) == {MY, YOUR}
    result.discard(MY)
    assert list(result) == [YOUR, ANOTHER]
    copy = result.copy()
    copy.update([MY])
    assert len(copy) == 3 and len(result) == 2
    assert repr(FilterSet()) == "FilterSet()"
    assert repr(FilterSet([1, 2])) == "FilterSet({1, 2})"


def test_filter_dict_filters_values():
    by_key: FilterDict = FilterDict({"my": MY, "your": YOUR, "another": ANOTHER})

    assert dict(by_key.filter(extension="csv")) == {"my": MY, "another": ANOTHER}
    assert by_key.one(name__starts_with="your") == ("your", YOUR)
    assert by_key.order_by("name") == [("another", ANOTHER), ("my", MY), ("your", YOUR)]
    with pytest.raises(UnexpectedNumberOfResultsException):
        by_key.one(extension="csv")


def test_any_object_with_attributes_can_be_filtered():
    """Octue requires members to be `Filterable`; here attributes and mapping keys are enough."""
    records: list[Any] = [{"kind": "a", "n": 1}, {"kind": "b", "n": 2}]

    assert FilterList(records).filter(kind="b") == [records[1]]
    assert FilterList(records).filter(n__gte=1) == records
