"""Tags: a dict with validated keys and Octue-encodable values."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from octuefs.errors import InvalidTagException
from octuefs.metadata.values import dumps

TAG_KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_]*(?<!_)$")


def validate_tag_key(key: object) -> str:
    # fullmatch: with `match`, the pattern's `$` would also accept a key ending in a newline.
    if not isinstance(key, str) or not TAG_KEY_PATTERN.fullmatch(key):
        raise InvalidTagException(
            f"Tag key {key!r} is invalid: keys are lowercase letters, digits and inner underscores (e.g. 'wind_speed')."
        )
    return key


def validate_tag_value(key: str, value: Any) -> Any:
    """Refuse now what could not be written later, so a bad value never reaches the cloud."""
    try:
        dumps(value)
    except (TypeError, ValueError) as error:
        raise InvalidTagException(f"Tag {key!r} has a value that cannot be stored as JSON: {error}.") from None
    return value


class Tag(str):
    """A tag name (a key of a `TagDict`), validated when made, so it can be checked once before use.

    Octue 0.69 has no `Tag` class: its tags are the key-value pairs of a `TagDict`, and the string
    `Tag` of Octue 0.1.18 and earlier became today's `Label`. octuefs offers this one because its
    drop-in promise names `Tag` among `octuefs.resources`; it mirrors `Label` (a `str`, so it goes
    wherever a tag key goes) but, like `TagDict`'s keys, is neither stripped nor lowercased.
    """

    def __new__(cls, name: object) -> Tag:
        return super().__new__(cls, validate_tag_key(name))


class TagDict(dict[str, Any]):
    """A dict whose keys are valid tag names and whose values are always encodable."""

    def __init__(self, tags: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.update(tags or {}, **kwargs)

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(validate_tag_key(key), validate_tag_value(key, value))

    def update(self, other: Any = (), /, **kwargs: Any) -> None:  # type: ignore[override]
        items = other.items() if isinstance(other, Mapping) else other
        for key, value in [*items, *kwargs.items()]:
            self[key] = value

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def __ior__(self, other: Any) -> TagDict:  # type: ignore[override,misc]
        self.update(other)
        return self

    def to_primitive(self) -> dict[str, Any]:
        """Octue's serialisation protocol: the plain dict (datetimes and sets are tagged when dumped)."""
        return dict(self)

    def serialise(self, **kwargs: Any) -> str:
        """JSON text as Octue's `Serialisable.serialise` writes it (sorted keys, indent 4)."""
        return dumps(self.to_primitive(), **{"sort_keys": True, "indent": 4, **kwargs})
