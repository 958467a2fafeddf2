"""Labels: a set of lowercase words, validated on every way in."""

from __future__ import annotations

import re
from collections import UserString
from collections.abc import Iterable

from octuefs.errors import InvalidLabelException
from octuefs.metadata.values import load_json_of_type

LABEL_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*(?<!-)$")


def normalise_label(label: object) -> str:
    """Lowercase then validate, because Octue's own docs pass `{"Vestas"}` as a label."""
    if isinstance(label, UserString):  # an Octue `Label`
        label = str(label)
    if not isinstance(label, str):
        raise InvalidLabelException(f"Label {label!r} is not a string.")
    candidate = label.strip().lower()
    if not LABEL_PATTERN.match(candidate):
        raise InvalidLabelException(
            f"Label {label!r} is invalid: labels are lowercase letters, digits and inner hyphens (e.g. 'met-mast')."
        )
    return candidate


def split_label_text(text: str) -> list[str]:
    """Words of a label string: a JSON list, or words separated by whitespace and/or commas."""
    stripped = text.strip()
    if stripped.startswith("["):
        return load_json_of_type(stripped, list, InvalidLabelException, f"Labels {text!r}")
    return [word for word in re.split(r"[\s,]+", stripped) if word]


class Label(str):
    """One label, validated when made: Octue's `Label` (a `UserString` there, a `str` here, so it goes
    wherever a string goes), lowercased first as every label in octuefs is."""

    def __new__(cls, name: object) -> Label:
        return super().__new__(cls, normalise_label(name))


class LabelSet(set[str]):
    """A set whose members are always valid, normalised labels."""

    def __init__(self, labels: Iterable[str] | str | None = None) -> None:
        super().__init__()
        if labels is None:
            return
        if isinstance(labels, str):
            labels = split_label_text(labels)
        self.update(labels)

    def add(self, label: str) -> None:
        super().add(normalise_label(label))

    def update(self, *others: Iterable[str] | str) -> None:
        """Like `set.update` with iterables of labels, and like Octue's `update(*labels)` with single labels."""
        for other in others:
            if isinstance(other, str | UserString):
                super().add(normalise_label(other))
            else:
                super().update(normalise_label(label) for label in other)

    def __ior__(self, other: Iterable[str]) -> LabelSet:  # type: ignore[override,misc]
        self.update(other)
        return self

    def symmetric_difference_update(self, other: Iterable[str]) -> None:
        super().symmetric_difference_update({normalise_label(label) for label in other})

    def __ixor__(self, other: Iterable[str]) -> LabelSet:  # type: ignore[override,misc]
        self.symmetric_difference_update(other)
        return self

    def discard(self, label: str) -> None:
        super().discard(label.strip().lower() if isinstance(label, str) else label)

    def remove(self, label: str) -> None:
        super().remove(label.strip().lower() if isinstance(label, str) else label)

    def __contains__(self, label: object) -> bool:
        return super().__contains__(label.strip().lower() if isinstance(label, str) else label)

    def sorted(self) -> list[str]:
        return sorted(self)

    def any_label_starts_with(self, value: str) -> bool:
        return any(label.startswith(value) for label in self)

    def any_label_ends_with(self, value: str) -> bool:
        return any(label.endswith(value) for label in self)

    def any_label_contains(self, value: str) -> bool:
        return any(value in label for label in self)

    def __repr__(self) -> str:
        return f"LabelSet({self.sorted()!r})"
