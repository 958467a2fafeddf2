"""Octue metadata on cloud objects: read it from an object's stat, write it with one guarded PATCH."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from octuefs.errors import PreconditionConflict
from octuefs.metadata.codec import OCTUE_CLOUD_KEYS, cloud_custom_metadata, decode_cloud, encode_cloud
from octuefs.metadata.merge import merge_metadata
from octuefs.metadata.model import OctueMetadata, derived_id
from octuefs.storage.interface import Storage
from octuefs.storage.objects import ObjectStat

logger = logging.getLogger(__name__)

MAX_CONFLICT_RETRIES = 5


def stored_fields(stat: ObjectStat) -> dict[str, Any]:
    """The Octue fields present on the object (raises MalformedMetadataError naming it)."""
    return decode_cloud(stat.metadata, str(stat.location))


def metadata_of(stat: ObjectStat) -> OctueMetadata:
    """The object's Octue metadata, with a stable derived id when it has none yet."""
    fields = stored_fields(stat)
    fields.setdefault("id", derived_id(stat.bucket, stat.name, stat.generation))
    return OctueMetadata(**fields)


def octue_part(stat: ObjectStat) -> dict[str, str]:
    return {key: value for key, value in stat.metadata.items() if key in OCTUE_CLOUD_KEYS}


def is_stored(stat: ObjectStat, metadata: OctueMetadata) -> bool:
    """True when the object already holds exactly these Octue bytes, so no request is needed."""
    return octue_part(stat) == encode_cloud(metadata)


def write_metadata(
    storage: Storage,
    stat: ObjectStat,
    base: OctueMetadata,
    ours: OctueMetadata,
    custom_changes: Mapping[str, str] | None = None,
) -> tuple[ObjectStat, OctueMetadata]:
    """PATCH `ours` (and `custom_changes` to non-Octue keys) guarded by the metageneration in `stat`;
    on a lost race, re-read, merge and retry.

    Returns the object's new stat and the metadata actually written (ours merged onto theirs
    when there was a race). Raises PreconditionConflict after MAX_CONFLICT_RETRIES lost races.
    """
    conflicts = 0
    while True:
        custom = cloud_custom_metadata(ours, {**stat.metadata, **(custom_changes or {})}, str(stat.location))
        try:
            return storage.patch_metadata(stat, custom), ours
        except PreconditionConflict:
            conflicts += 1
            if conflicts > MAX_CONFLICT_RETRIES:
                raise
            logger.info("%s: metadata changed by another writer; merging and retrying", stat.location)
            stat = storage.require_stat(stat.bucket, stat.name)
            theirs = metadata_of(stat)
            ours = merge_metadata(base, ours, theirs)
            base = theirs
