"""The `user.octue.*` extended attributes: their names, and how each reads and changes metadata.

Writable: `tags` (a JSON object; setting replaces all tags), `tag.<key>` (one tag's value as JSON,
or a plain string when not JSON), `labels` (sorted, space-separated; set from words separated by
spaces or commas, or a JSON list), `timestamp` (ISO 8601; set from ISO 8601 or epoch seconds).
Read-only, derived from the object: `id`, `hash` (crc32c, base64), `cloud_path`.
Changes are computed on a copy, so a bad value is refused before anything is sent or changed.
"""

from __future__ import annotations

from typing import Any

from octuefs.datafile import Datafile
from octuefs.errors import (
    InvalidInputException,
    InvalidTagException,
    NoSuchAttribute,
    ReadOnlyAttribute,
    UnsupportedAttribute,
)
from octuefs.metadata.labels import LabelSet, split_label_text
from octuefs.metadata.model import OctueMetadata, parse_timestamp_text
from octuefs.metadata.tags import TagDict, validate_tag_key
from octuefs.metadata.values import dumps, loads

PREFIX = "user.octue."
PREFIX_BYTES = PREFIX.encode()
USER_NAMESPACE = b"user."
ID = PREFIX + "id"
HASH = PREFIX + "hash"
CLOUD_PATH = PREFIX + "cloud_path"
TAGS = PREFIX + "tags"
TAG_PREFIX = PREFIX + "tag."
LABELS = PREFIX + "labels"
TIMESTAMP = PREFIX + "timestamp"
READ_ONLY = frozenset({ID, HASH, CLOUD_PATH})
# On the mount's root directory: the daemon's counters as JSON (what `octuefs stats` prints).
STATS = b"user.octuefs.stats"


def names(datafile: Datafile) -> list[str]:
    """The attributes the file has now (labels and timestamp only when set)."""
    metadata = datafile.octue_metadata
    present = [ID, HASH, CLOUD_PATH, TAGS]
    if metadata.labels:
        present.append(LABELS)
    if metadata.timestamp is not None:
        present.append(TIMESTAMP)
    present.extend(TAG_PREFIX + key for key in metadata.tags)
    return present


def get(datafile: Datafile, name: str) -> bytes:
    metadata = datafile.octue_metadata
    if name == ID:
        text = metadata.id
    elif name == HASH:
        text = datafile.hash_value
    elif name == CLOUD_PATH:
        text = datafile.cloud_path or ""
    elif name == TAGS:
        text = dumps(metadata.tags)
    elif name == LABELS and metadata.labels:
        text = " ".join(sorted(metadata.labels))
    elif name == TIMESTAMP and metadata.timestamp is not None:
        text = metadata.timestamp.isoformat()
    elif name.startswith(TAG_PREFIX) and name[len(TAG_PREFIX) :] in metadata.tags:
        text = dumps(metadata.tags[name[len(TAG_PREFIX) :]])
    else:
        raise NoSuchAttribute(f"{datafile.cloud_path}: no attribute {name}.")
    return text.encode()


def _text(datafile: Datafile, name: str, value: bytes) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise InvalidInputException(f"{datafile.cloud_path}: {name} must be UTF-8 text.") from None


def _check_writable(datafile: Datafile, name: str) -> None:
    if name in READ_ONLY:
        raise ReadOnlyAttribute(f"{datafile.cloud_path}: {name} is derived from the object and cannot be changed.")
    if not (name in (TAGS, LABELS, TIMESTAMP) or name.startswith(TAG_PREFIX)):
        raise UnsupportedAttribute(f"{datafile.cloud_path}: {name} is not an octuefs attribute.")


def with_set(datafile: Datafile, name: str, value: bytes) -> OctueMetadata:
    """The metadata after setting `name` to `value` (the datafile itself is untouched)."""
    _check_writable(datafile, name)
    text = _text(datafile, name, value)
    changed = datafile.octue_metadata.copy()
    if name == TAGS:
        tags = _tag_json(datafile, name, text)
        if not isinstance(tags, dict):
            raise InvalidTagException(f"{datafile.cloud_path}: {name} must be a JSON object, got {text!r}.")
        changed.tags = TagDict(tags)
    elif name.startswith(TAG_PREFIX):
        key = validate_tag_key(name[len(TAG_PREFIX) :])
        changed.tags[key] = _tag_json(datafile, name, text)
    elif name == LABELS:
        changed.labels = LabelSet(split_label_text(text))
    else:
        changed.timestamp = parse_timestamp_text(text) if text.strip() else None
    return changed


def _tag_json(datafile: Datafile, name: str, text: str) -> Any:
    """A tag value from its text. JSON nested deeper than readers can parse is refused by `loads`;
    NaN and Infinity are refused here: Python's json reads and writes them, but they are not JSON, so
    the Octue SDK's other readers (and any JSON parser but Python's) would fail on the object."""
    value = loads(text, f"{datafile.cloud_path}: {name}")
    try:
        dumps(value, allow_nan=False)
    except ValueError:
        raise InvalidTagException(f"{datafile.cloud_path}: {name} holds NaN or Infinity, which JSON has not.") from None
    return value


def with_removed(datafile: Datafile, name: str) -> OctueMetadata:
    """The metadata after removing `name`; removing what is absent is NoSuchAttribute (ENODATA)."""
    _check_writable(datafile, name)
    changed = datafile.octue_metadata.copy()
    key = name[len(TAG_PREFIX) :] if name.startswith(TAG_PREFIX) else None
    if name == TAGS:
        changed.tags = TagDict()
    elif key is not None and key in changed.tags:
        del changed.tags[key]
    elif name == LABELS and changed.labels:
        changed.labels = LabelSet()
    elif name == TIMESTAMP and changed.timestamp is not None:
        changed.timestamp = None
    else:
        raise NoSuchAttribute(f"{datafile.cloud_path}: no attribute {name} to remove.")
    return changed
