"""Octue's filter lookups (`name__ends_with=".csv"`, `tags__height__gt=300`, ...) and the containers that use them.

Code written for Octue filters `dataset.files` with Django-like keyword lookups, so the names,
the per-type tables and the "attribute alone means equals" shortcut follow the Octue SDK 0.69
(`octue/mixins/filterable.py`, `octue/resources/filter_containers.py`). Where Octue misbehaves
this module does not copy it (each case is named where it is handled): a missing tag never
raises while another item's is being compared, several lookups at once treat missing attributes
as one lookup does, and `icontains` works on collections of strings.
"""

from __future__ import annotations

import itertools
import numbers
from collections import UserDict
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, MutableSet, Sequence
from typing import Any, TypeVar

from octuefs.errors import BrokenSequenceException, InvalidInputException, UnexpectedNumberOfResultsException

Lookup = Callable[[Any, Any], bool]
T = TypeVar("T", bound=Hashable)

_MISSING = object()


def _with_negation(name: str, lookup: Lookup) -> dict[str, Lookup]:
    """Every Octue lookup comes with its opposite: `not_<name>`, except `is`, whose opposite is `is_not`."""
    opposite = "is_not" if name == "is" else f"not_{name}"
    return {name: lookup, opposite: lambda item, value: not lookup(item, value)}


def _icontains(item: Any, value: str) -> bool:
    """Substring for text; for other collections a case-insensitive member (Octue raises AttributeError there)."""
    if hasattr(item, "casefold"):
        return value.casefold() in item.casefold()
    return any(isinstance(member, str) and member.casefold() == value.casefold() for member in item)


IS = _with_negation("is", lambda item, value: item is value)
EQUALS = _with_negation("equals", lambda item, value: value == item)
CONTAINS = _with_negation("contains", lambda item, value: value in item)
ICONTAINS = _with_negation("icontains", _icontains)
IN_RANGE = _with_negation("in_range", lambda item, value: value[0] <= item <= value[1])
COMPARISONS: dict[str, Lookup] = {
    "lt": lambda item, value: item < value,
    "lte": lambda item, value: item <= value,
    "gt": lambda item, value: item > value,
    "gte": lambda item, value: item >= value,
}


def _datetime_parts() -> dict[str, Lookup]:
    """`year_equals`, `year_in`, ... `time_in`: one pair per part of a datetime, as Octue names them."""
    parts: dict[str, Callable[[Any], Any]] = {
        "year": lambda moment: moment.year,
        "month": lambda moment: moment.month,
        "day": lambda moment: moment.day,
        "weekday": lambda moment: moment.weekday(),
        "iso_weekday": lambda moment: moment.isoweekday(),
        "time": lambda moment: moment.time(),
        "hour": lambda moment: moment.hour,
        "minute": lambda moment: moment.minute,
        "second": lambda moment: moment.second,
    }
    lookups: dict[str, Lookup] = {}
    for name, part in parts.items():
        lookups[f"{name}_equals"] = lambda item, value, part=part: part(item) == value
        lookups[f"{name}_in"] = lambda item, value, part=part: part(item) in value
    return lookups


# Chosen by the exact type name of the attribute, as Octue does (so a subclass of str is not a "str").
TYPE_LOOKUPS: dict[str, dict[str, Lookup]] = {
    "bool": {**EQUALS, **IS},
    "str": {
        **_with_negation("iequals", lambda item, value: value.casefold() == item.casefold()),
        **_with_negation("starts_with", lambda item, value: item.startswith(value)),
        **_with_negation("ends_with", lambda item, value: item.endswith(value)),
        **EQUALS,
        **IS,
        **COMPARISONS,
        **CONTAINS,
        **ICONTAINS,
        **IN_RANGE,
    },
    "NoneType": {**EQUALS, **IS},
    "LabelSet": {
        **EQUALS,
        **CONTAINS,
        **IS,
        **_with_negation("any_label_contains", lambda item, value: any(value in label for label in item)),
        **_with_negation("any_label_starts_with", lambda item, value: any(label.startswith(value) for label in item)),
        **_with_negation("any_label_ends_with", lambda item, value: any(label.endswith(value) for label in item)),
    },
    "datetime": {
        **EQUALS,
        **IS,
        **COMPARISONS,
        **IN_RANGE,
        **_datetime_parts(),
        "in_date_range": lambda item, value: value[0] <= item.date() <= value[1],
        "in_time_range": lambda item, value: value[0] <= item.time() <= value[1],
    },
}

# For any other type, the first interface it has (numbers before iterables, as in Octue).
INTERFACE_LOOKUPS: tuple[tuple[type, dict[str, Lookup]], ...] = (
    (numbers.Number, {**EQUALS, **COMPARISONS, **IS, **IN_RANGE}),
    (Iterable, {**EQUALS, **CONTAINS, **ICONTAINS, **IS}),
)


def lookups_for(attribute: Any) -> dict[str, Lookup]:
    """The lookups Octue offers for a value of this type."""
    by_name = TYPE_LOOKUPS.get(type(attribute).__name__)
    if by_name is not None:
        return by_name
    for interface, lookups in INTERFACE_LOOKUPS:
        if isinstance(attribute, interface):
            return lookups
    raise InvalidInputException(f"Attributes of type {type(attribute).__name__} cannot be filtered.")


def _lookups_or_none(attribute: Any) -> dict[str, Lookup]:
    """No lookups for an unfilterable type: `cloud_stat__size=5` may still be the equals shortcut."""
    try:
        return lookups_for(attribute)
    except InvalidInputException:
        return {}


def _step(value: Any, name: str) -> Any:
    """One level of a nested attribute: a mapping's key, a sequence's index, or an attribute."""
    if isinstance(value, Mapping):
        return value.get(name, _MISSING)
    if isinstance(value, Sequence) and not isinstance(value, str) and name.lstrip("-").isdigit():
        index = int(name)
        return value[index] if -len(value) <= index < len(value) else _MISSING
    return getattr(value, name, _MISSING)


def get_nested_attribute(item: Any, dotted_name: str) -> Any:
    """`tags.height` of a datafile: attributes and dictionary keys in any mix, to any depth."""
    value = item
    for name in dotted_name.split("."):
        value = _step(value, name)
        if value is _MISSING:
            raise AttributeError(f"{item!r} has no attribute or key {dotted_name!r}.")
    return value


def satisfies(item: Any, raise_error_if_filter_is_invalid: bool = True, **lookup: Any) -> bool:
    """Whether `item` passes one lookup such as `name__ends_with=".csv"` (Octue's `Filterable.satisfies`).

    An item without the attribute fails the lookup, or raises AttributeError when
    `raise_error_if_filter_is_invalid`; a lookup name no type offers raises InvalidInputException.
    """
    if len(lookup) != 1:
        # Octue raises ValueError here; InvalidInputException is one, so Octue's `except` clauses still catch it.
        raise InvalidInputException(f"{item!r}: satisfies takes exactly one lookup; received {lookup!r}.")
    ((filter_name, value),) = lookup.items()
    *attribute_names, action = filter_name.split("__")
    if attribute_names:
        attribute_name = ".".join(attribute_names)
        try:
            attribute = get_nested_attribute(item, attribute_name)
        except AttributeError:
            if raise_error_if_filter_is_invalid:
                raise
            return False
        action_lookup = _lookups_or_none(attribute).get(action)
        if action_lookup is not None:
            return action_lookup(attribute, value)
    return _equals_shortcut(item, filter_name, value, raise_error_if_filter_is_invalid)


def _equals_shortcut(item: Any, filter_name: str, value: Any, raise_error: bool) -> bool:
    """`extension="csv"` or `tags__site="north"` mean `...__equals=`.

    Octue raises InvalidInputException when the item lacks the key (`tags__site` on a datafile
    without a `site` tag), so a filter fails on any dataset where one file lacks the tag; here a
    missing key inside a mapping is a missing attribute like any other.
    """
    dotted_name = filter_name.replace("__", ".")
    parent_name = dotted_name.rpartition(".")[0]
    try:
        attribute = get_nested_attribute(item, dotted_name)
    except AttributeError:
        parent = _step_or_missing(item, parent_name) if parent_name else _MISSING
        if not isinstance(parent, Mapping):
            raise InvalidInputException(
                f"{filter_name!r} is neither a lookup nor an attribute of {item!r}; lookups are named "
                "'<attribute>__<lookup>' (see octuefs.filters.TYPE_LOOKUPS)."
            ) from None
        if raise_error:
            raise
        return False
    return lookups_for(attribute)["equals"](attribute, value)


def _step_or_missing(item: Any, dotted_name: str) -> Any:
    try:
        return get_nested_attribute(item, dotted_name)
    except AttributeError:
        return _MISSING


def _passes_all(item: Any, lookups: Mapping[str, Any], raise_error: bool) -> bool:
    return all(satisfies(item, raise_error, **{name: value}) for name, value in lookups.items())


def _order(
    items: Iterable[Any],
    attribute_name: str,
    reverse: bool,
    described: Any,
    member_of: Callable[[Any], Any] = lambda item: item,
) -> list[Any]:
    dotted_name = attribute_name.replace("__", ".")
    try:
        return sorted(items, key=lambda item: get_nested_attribute(member_of(item), dotted_name), reverse=reverse)
    except AttributeError:
        raise InvalidInputException(
            f"An attribute named {dotted_name!r} does not exist on one or more members of {described!r}."
        ) from None


def _exactly_one(results: Iterable[Any], lookups: Mapping[str, Any]) -> Any:
    found = list(results)
    if len(found) != 1:
        raise UnexpectedNumberOfResultsException(
            f"{len(found)} results found for filters {dict(lookups)} where exactly one was expected."
        )
    return found[0]


class _Filterable:
    """`filter`, `one` and `order_by` over the members of a container."""

    def _members(self) -> Iterable[Any]:
        return self  # type: ignore[return-value]

    def _keep(self, predicate: Callable[[Any], bool]) -> Any:
        return type(self)(member for member in self._members() if predicate(member))  # type: ignore[call-arg]

    def filter(self, ignore_items_without_attribute: bool = True, **lookups: Any) -> Any:
        """A new container of the members passing every lookup (all of them when none is given).

        Octue applies the first of several lookups as if `ignore_items_without_attribute` were
        False; here it applies to every lookup.
        """
        raise_error = not ignore_items_without_attribute
        return self._keep(lambda member: _passes_all(member, lookups, raise_error))

    def one(self, **lookups: Any) -> Any:
        """The only member passing the lookups; UnexpectedNumberOfResultsException for none or several."""
        return _exactly_one(self.filter(**lookups)._members(), lookups)

    def order_by(
        self,
        attribute_name: str,
        check_start_value: Any = None,
        check_constant_increment: Any = None,
        reverse: bool = False,
    ) -> FilterList[Any]:
        """The members sorted by a (nested: `tags__height` or `tags.height`) attribute, as a FilterList."""
        results = FilterList(_order(self._members(), attribute_name, reverse, self))
        dotted_name = attribute_name.replace("__", ".")
        values = [get_nested_attribute(member, dotted_name) for member in results]
        if check_start_value is not None and (not values or values[0] != check_start_value):
            raise BrokenSequenceException(
                f"The attribute {dotted_name!r} of the first item of {results!r} does not equal the given start "
                f"value {check_start_value!r}."
            )
        if check_constant_increment is not None and any(
            after - before != check_constant_increment for before, after in itertools.pairwise(values)
        ):
            raise BrokenSequenceException(
                f"The attributes {dotted_name!r} of the items of {results!r} do not increase by a constant "
                f"increment of {check_constant_increment}."
            )
        return results


class FilterSet(_Filterable, MutableSet[T]):
    """Octue's FilterSet, iterating in a stable order (the order members were added) rather than hash order."""

    def __init__(self, members: Iterable[T] = ()) -> None:
        self._items: dict[T, None] = dict.fromkeys(members)

    def __contains__(self, member: object) -> bool:
        return member in self._items

    def __iter__(self) -> Iterator[T]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, member: T) -> None:
        self._items[member] = None

    def discard(self, member: T) -> None:
        self._items.pop(member, None)

    def update(self, *others: Iterable[T]) -> None:
        for other in others:
            self._items.update(dict.fromkeys(other))

    def copy(self) -> FilterSet[T]:
        return type(self)(self)

    # `set`'s named methods: Octue's FilterSet is a `set`, so Octue code calls them on `dataset.files`. Unlike
    # the operators they take any iterables; the results are FilterSets, so they can be filtered further.

    def union(self, *others: Iterable[T]) -> FilterSet[T]:
        return type(self)(itertools.chain(self, *others))

    def intersection(self, *others: Iterable[T]) -> FilterSet[T]:
        kept = [set(other) for other in others]
        return type(self)(member for member in self if all(member in other for other in kept))

    def difference(self, *others: Iterable[T]) -> FilterSet[T]:
        removed = set(itertools.chain(*others))
        return type(self)(member for member in self if member not in removed)

    def symmetric_difference(self, other: Iterable[T]) -> FilterSet[T]:
        other_members = type(self)(other)
        return self.difference(other_members).union(other_members.difference(self))

    def issubset(self, other: Iterable[T]) -> bool:
        return self <= type(self)(other)

    def issuperset(self, other: Iterable[T]) -> bool:
        return self >= type(self)(other)

    def intersection_update(self, *others: Iterable[T]) -> None:
        self._items = self.intersection(*others)._items

    def difference_update(self, *others: Iterable[T]) -> None:
        self._items = self.difference(*others)._items

    def symmetric_difference_update(self, other: Iterable[T]) -> None:
        self._items = self.symmetric_difference(other)._items

    def __repr__(self) -> str:
        return f"{type(self).__name__}({{{', '.join(map(repr, self))}}})" if self else f"{type(self).__name__}()"


class FilterList(_Filterable, list[T]):
    """Octue's FilterList: what `order_by` returns."""


class FilterDict(_Filterable, UserDict[Any, Any]):
    """Octue's FilterDict: lookups apply to the values; `one()` returns a `(key, value)` pair."""

    def _members(self) -> Iterable[Any]:
        return self.values()

    def _keep(self, predicate: Callable[[Any], bool]) -> FilterDict:
        return type(self)({key: value for key, value in self.items() if predicate(value)})

    def one(self, **lookups: Any) -> tuple[Any, Any]:
        return _exactly_one(self.filter(**lookups).items(), lookups)  # type: ignore[no-any-return]

    def order_by(  # type: ignore[override]
        self, attribute_name: str, reverse: bool = False
    ) -> FilterList[tuple[Any, Any]]:
        """The `(key, value)` pairs sorted by an attribute of the values."""
        return FilterList(_order(self.items(), attribute_name, reverse, self, member_of=lambda pair: pair[1]))
