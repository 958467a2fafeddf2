"""The one Octue metadata codec: cloud custom metadata and `.octue` entries, both ways.

Cloud objects hold five custom-metadata keys (`octue__id`, `octue__timestamp`, `octue__tags`,
`octue__labels`, `octue__sdk_version`), each value `json.dumps`ed Octue's way. `.octue` entries
hold the same values un-stringified. Readers are lenient like Octue (prefix optional, labels as
a list or words, timestamps as epoch numbers); writers always produce the exact 0.69.1 bytes.
"""

from __future__ import annotations

import base64
import json
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import google_crc32c

from octuefs.errors import (
    InvalidInputException,
    InvalidLabelException,
    InvalidTagException,
    MalformedMetadataError,
    MalformedMetadataWarning,
    MetadataTooDeepError,
    MetadataTooLargeError,
)
from octuefs.metadata.labels import LabelSet, split_label_text
from octuefs.metadata.model import OCTUE_SDK_VERSION, OctueMetadata, normalise_id, parse_timestamp_text
from octuefs.metadata.tags import TagDict
from octuefs.metadata.values import dumps, from_jsonable, loads, to_jsonable

NAMESPACE = "octue"
FIELDS = ("id", "timestamp", "tags", "labels", "sdk_version")
GCS_CUSTOM_METADATA_LIMIT = 8 * 1024


def cloud_key(field: str) -> str:
    return f"{NAMESPACE}__{field}"


OCTUE_CLOUD_KEYS = frozenset(cloud_key(field) for field in FIELDS)


def is_octue_key(key: str) -> bool:
    """Octue reads its fields with or without the namespace prefix, so both spellings are Octue's."""
    return key in OCTUE_CLOUD_KEYS or key in FIELDS


def foreign_metadata(custom: Mapping[str, str | None]) -> dict[str, str | None]:
    """Custom metadata that is not Octue's, which every update must carry through untouched."""
    return {key: value for key, value in custom.items() if not is_octue_key(key)}


def encode_fields(metadata: OctueMetadata) -> dict[str, Any]:
    """The five Octue fields as Python values, in Octue's order."""
    return {
        "id": metadata.id,
        "timestamp": metadata.timestamp,
        "tags": metadata.tags,
        "labels": metadata.labels,
        "sdk_version": OCTUE_SDK_VERSION,
    }


def encode_cloud(metadata: OctueMetadata) -> dict[str, str]:
    return {cloud_key(field): dumps(value) for field, value in encode_fields(metadata).items()}


def encode_local(metadata: OctueMetadata) -> dict[str, Any]:
    """A `.octue` `datafiles` entry: the same values as JSON structures rather than strings."""
    return {field: to_jsonable(value) for field, value in encode_fields(metadata).items()}


def _warn(source: str, what: str, value: Any, reason: object) -> None:
    """Another writer stored something Octue's rules refuse: say where and what, and read the rest."""
    warnings.warn(
        f"{source}: stored {what} {value!r} is not valid ({reason}); it is read without it.",
        MalformedMetadataWarning,
        stacklevel=5,
    )


def _decode_labels(value: Any, source: str) -> LabelSet:
    """Every valid label; each invalid one is reported and left out."""
    if isinstance(value, str):
        value = split_label_text(value)
    if not isinstance(value, set | list | tuple):
        raise MalformedMetadataError(f"labels {value!r} are not a set, list or string of words")
    labels = LabelSet()
    for label in value:
        try:
            labels.add(label)
        except InvalidLabelException as error:
            _warn(source, "label", label, error)
    return labels


def _decode_tags(value: Any, source: str) -> TagDict:
    """Every valid tag; each tag with an invalid key is reported and left out."""
    if not isinstance(value, dict):
        raise MalformedMetadataError(f"tags {value!r} are not a JSON object")
    tags = TagDict()
    for key, tag_value in value.items():
        try:
            tags[key] = tag_value
        except InvalidTagException as error:
            _warn(source, "tag", key, error)
    return tags


_FIELD_DECODERS: dict[str, Callable[[Any, str], Any]] = {
    "id": lambda value, _: normalise_id(value),
    "timestamp": lambda value, _: parse_timestamp_text(value),
    "tags": _decode_tags,
    "labels": _decode_labels,
}


def decode_fields(stored: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Validate decoded field values; only fields present and valid are returned, so callers can fall back
    per field. What another writer stored badly never makes the whole unreadable: each bad field (or tag,
    or label) is reported with a MalformedMetadataWarning naming `source` and left out.
    """
    if not isinstance(stored, Mapping):
        _warn(source, "Octue metadata", stored, "not a JSON object")
        return {}
    decoded: dict[str, Any] = {}
    for field, decode in _FIELD_DECODERS.items():
        if field not in stored or (stored[field] is None and field != "timestamp"):
            continue
        try:
            decoded[field] = decode(stored[field], source)
        except InvalidInputException as error:
            _warn(source, field, stored[field], error)
    return decoded


def decode_cloud(custom: Mapping[str, str | None], source: str) -> dict[str, Any]:
    stored: dict[str, Any] = {}
    for field in FIELDS:
        for key in (cloud_key(field), field):
            raw = custom.get(key)
            if raw is not None and raw != "":
                try:
                    value = loads(raw, field)
                except MetadataTooDeepError as error:
                    _warn(source, field, f"{raw[:40]}...", error)
                    break
                # A single label such as "2024" or "true" parses as a JSON scalar; it is still a word.
                if field == "labels" and isinstance(value, bool | int | float):
                    value = raw
                stored[field] = value
                break
    return decode_fields(stored, source)


def decode_local(entry: Mapping[str, Any], source: str) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        _warn(source, "Octue metadata", entry, "not a JSON object")
        return {}
    stored: dict[str, Any] = {}
    for field, value in entry.items():
        try:
            stored[field] = from_jsonable(value)
        except (TypeError, ValueError) as error:
            _warn(source, field, value, error)
    return decode_fields(stored, source)


def cloud_custom_metadata(metadata: OctueMetadata, existing: Mapping[str, str | None], name: str) -> dict[str, str]:
    """The complete custom map to write: foreign keys kept, Octue keys replaced; size checked first.

    Sending the whole map is right whether the server merges (real GCS) or replaces (some emulators).
    """
    custom = {key: value for key, value in foreign_metadata(existing).items() if value is not None}
    custom.update(encode_cloud(metadata))
    check_size(custom, name)
    return custom


def check_size(custom: Mapping[str, str], name: str) -> None:
    size = sum(len(key.encode()) + len(value.encode()) for key, value in custom.items())
    if size > GCS_CUSTOM_METADATA_LIMIT:
        raise MetadataTooLargeError(
            f"{name}: custom metadata would be {size} bytes, over GCS's {GCS_CUSTOM_METADATA_LIMIT}-byte limit; "
            "nothing was sent."
        )


def metadata_hash(metadata: OctueMetadata) -> str:
    """CRC32C (base64) of canonical JSON of timestamp, tags and sorted labels; the same in every process."""
    return canonical_hash({"labels": metadata.labels, "tags": metadata.tags, "timestamp": metadata.timestamp})


def canonical_hash(fields: Mapping[str, Any]) -> str:
    """CRC32C (base64) of `fields` as canonical JSON (sorted keys, sets as sorted lists, no spaces).

    Octue hashes a Python repr, which changes with PYTHONHASHSEED; this is stable everywhere.
    """
    plain = {key: sorted(value) if isinstance(value, set) else to_jsonable(value) for key, value in fields.items()}
    canonical = json.dumps(
        plain,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return base64.b64encode(google_crc32c.Checksum(canonical.encode()).digest()).decode()
