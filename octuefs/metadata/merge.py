"""Three-way merge of Octue metadata, for retrying a write that lost a precondition race.

When another writer changed an object's metadata after we read it, our change (base → ours) is
re-applied on top of theirs field by field and tag by tag, so two clients setting different tags
both keep theirs; where both changed the same thing, ours wins because it is the later write.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from octuefs.metadata.labels import LabelSet
from octuefs.metadata.model import OctueMetadata
from octuefs.metadata.tags import TagDict
from octuefs.metadata.values import to_jsonable


def _stored_form(value: Any) -> str:
    """Compare values as Octue writes them: Python's == calls 1 and True (or one instant in two offsets) equal."""
    return json.dumps(to_jsonable(value), sort_keys=True)


def merge_metadata(base: OctueMetadata, ours: OctueMetadata, theirs: OctueMetadata) -> OctueMetadata:
    tags = TagDict(theirs.tags)
    for key, value in ours.tags.items():
        if key not in base.tags or _stored_form(base.tags[key]) != _stored_form(value):
            tags[key] = value
    for key in base.tags.keys() - ours.tags.keys():
        tags.pop(key, None)
    labels = LabelSet((theirs.labels | (ours.labels - base.labels)) - (base.labels - ours.labels))
    return OctueMetadata(
        id=ours.id if ours.id != base.id else theirs.id,
        timestamp=ours.timestamp if _stored_form(ours.timestamp) != _stored_form(base.timestamp) else theirs.timestamp,
        tags=tags,
        labels=labels,
    )


def merge_dataset_entry(base: Mapping[str, Any], ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> dict[str, Any]:
    """The same merge for a dataset's own entry (its name, tags and labels; its id never changes)."""

    def as_metadata(fields: Mapping[str, Any]) -> OctueMetadata:
        return OctueMetadata(tags=TagDict(fields.get("tags")), labels=LabelSet(fields.get("labels")))

    merged = merge_metadata(as_metadata(base), as_metadata(ours), as_metadata(theirs))
    name = ours.get("name") if ours.get("name") != base.get("name") else theirs.get("name")
    return {"name": name, "tags": merged.tags, "labels": merged.labels}
