"""Octue's JSON value encoding: plain JSON plus tagged datetimes and sets.

Octue 0.69.1 writes `{"_type": "datetime", "value": isoformat()}` and
`{"_type": "set", "items": sorted(...)}` and dumps with Python's default separators and
`ensure_ascii=True`; matching that exactly is what makes our bytes readable by the Octue SDK.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from octuefs.errors import MetadataTooDeepError

DATETIME_TYPE = "datetime"
SET_TYPE = "set"

# Python's JSON parser, encoder and our own walks over values recurse once per level: a tag a few
# KB long nested ~1000 deep exhausts the stack (RecursionError) wherever it is read or shown. No
# real metadata comes near this; anything deeper is refused as malformed before it is parsed.
MAX_JSON_DEPTH = 100
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def _encode_special(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"_type": DATETIME_TYPE, "value": value.isoformat()}
    if isinstance(value, set | frozenset):
        return {"_type": SET_TYPE, "items": sorted(value)}
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(value: Any, **options: Any) -> str:
    """Encode like Octue's `OctueJSONEncoder` (so the bytes match the SDK's); `options` go to `json.dumps`."""
    return json.dumps(value, default=_encode_special, **options)


def to_jsonable(value: Any) -> Any:
    """The plain-JSON form of a value (datetimes and sets tagged), for embedding in bigger documents."""
    return json.loads(dumps(value))


def _decode_special(obj: dict[str, Any]) -> Any:
    kind = obj.get("_type")
    if kind == DATETIME_TYPE and isinstance(obj.get("value"), str) and len(obj) == 2:
        return datetime.fromisoformat(obj["value"])
    if kind == SET_TYPE and isinstance(obj.get("items"), list) and len(obj) == 2:
        return set(_hashable(item) for item in obj["items"])
    return obj


def _hashable(item: Any) -> Any:
    """Set members come back from JSON as lists and sets; make them hashable again, nested ones too."""
    if isinstance(item, list):
        return tuple(_hashable(member) for member in item)
    if isinstance(item, set):
        return frozenset(item)
    return item


def from_jsonable(value: Any) -> Any:
    """Undo `to_jsonable`: tagged datetimes and sets become Python objects again."""
    return json.loads(json.dumps(value), object_hook=_decode_special)


def json_depth(text: str) -> int:
    """How deeply arrays and objects nest in JSON text (brackets inside strings do not count)."""
    depth = deepest = 0
    for bracket in _JSON_BRACKET.findall(_JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def check_depth(text: str | bytes, what: str) -> None:
    """Refuse JSON text nested deeper than MAX_JSON_DEPTH, before anything recurses into it."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return  # fewer brackets than the limit: nothing to measure (the common case, at C speed)
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise MetadataTooDeepError(f"{what} nests {depth} levels deep, more than the {MAX_JSON_DEPTH} allowed.")


def parse_json(text: str | bytes, what: str, **options: Any) -> Any:
    """`json.loads` for text another writer stored: too deep raises MetadataTooDeepError (a ValueError)."""
    check_depth(text, what)
    return json.loads(text, **options)


def load_json_of_type(text: str | bytes, kind: type, error: type[Exception], what: str) -> Any:
    """Parse JSON text that must be a `kind` (dict, list): anything else raises `error` naming `what`."""
    try:
        parsed = parse_json(text, what)
    except json.JSONDecodeError as problem:
        raise error(f"{what} is not valid JSON ({problem}).") from None
    except MetadataTooDeepError as problem:
        raise error(str(problem)) from None
    if not isinstance(parsed, kind):
        raise error(f"{what} must be a JSON {'object' if kind is dict else kind.__name__}, not {parsed!r:.60}.")
    return parsed


def decode_primitive(serialised: Any, error: type[Exception], what: str) -> dict[str, Any]:
    """An object in Octue's serialisation protocol as Python values, from any of the forms it travels in:
    `serialise()`'s text, or a primitive whose datetimes and sets are still tagged (parsed with plain
    `json.loads`, as a service receiving it may) or already decoded. Anything else raises `error`."""
    if isinstance(serialised, str | bytes):
        serialised = load_json_of_type(serialised, dict, error, what)
    if not isinstance(serialised, Mapping):
        raise error(f"{what} must be a mapping or JSON text, not {type(serialised).__name__}.")
    return from_jsonable(to_jsonable(dict(serialised)))  # type: ignore[no-any-return]


def loads(text: str, what: str = "stored value") -> Any:
    """Decode one stored value; text that is not JSON is kept as the raw string, as Octue does, but
    JSON nested too deep raises MetadataTooDeepError (as a string it would pass for a valid label)."""
    check_depth(text, what)
    try:
        return json.loads(text, object_hook=_decode_special)
    except (ValueError, TypeError):
        # TypeError: a tagged set whose items cannot be set members (e.g. JSON objects).
        return text
