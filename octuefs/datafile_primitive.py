"""A Datafile as Octue's serialisation protocol has it: `to_primitive()`, `serialise()`, `deserialise()`.

Octue 0.69.1 serialises a datafile as its fields `id`, `timestamp`, `tags`, `labels`, `name`,
`local_path`, `cloud_path`, `path` and `_cloud_metadata` (the object's record: `custom_metadata`
decoded and without the `octue__` prefix, `crc32c`, `size`, `updated`, ...), dumped with sorted keys
and an indent of 4, datetimes and nested sets tagged. Its `deserialise` passes every field but
`_cloud_metadata` to the constructor and keeps `_cloud_metadata` as it is, reading only the keys it
knows; so octuefs keeps the object's full stat (generation, raw custom metadata) inside
`_cloud_metadata` under one key of its own, and a datafile it rebuilds from it costs no request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from octuefs.metadata.codec import NAMESPACE
from octuefs.metadata.values import loads
from octuefs.storage.gcs import ObjectStat

OCTUEFS_KEY = "octuefs"
SERIALISED_FIELDS = ("id", "timestamp", "tags", "labels", "name", "local_path", "cloud_path", "_cloud_metadata")


def custom_metadata_as_octue_reads_it(custom: Mapping[str, str]) -> dict[str, Any]:
    """Each value JSON-decoded (raw when not JSON), Octue's own keys without their namespace prefix."""
    return {key.replace(f"{NAMESPACE}__", ""): loads(value) for key, value in custom.items()}


def cloud_metadata_primitive(stat: ObjectStat | None, origin_is_cloud: bool) -> dict[str, Any]:
    """Octue's `_cloud_metadata` for an object as last seen (empty when it was never looked up)."""
    if stat is None:
        return {}
    return {
        "custom_metadata": custom_metadata_as_octue_reads_it(stat.metadata),
        "crc32c": stat.crc32c,
        "size": stat.size,
        "updated": stat.updated,
        "time_created": None,
        "time_deleted": None,
        "custom_time": None,
        OCTUEFS_KEY: {"object": stat.to_dict(), "origin_is_cloud": origin_is_cloud},
    }


def known_object(cloud_metadata: Mapping[str, Any] | None) -> tuple[ObjectStat | None, bool]:
    """The object's stat octuefs kept in `_cloud_metadata`, and whether the datafile came from the cloud."""
    ours = (cloud_metadata or {}).get(OCTUEFS_KEY)
    if not isinstance(ours, Mapping) or not isinstance(ours.get("object"), Mapping):
        return None, False
    return ObjectStat.from_dict(ours["object"]), bool(ours.get("origin_is_cloud"))
