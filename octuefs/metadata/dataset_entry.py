"""A dataset's own metadata as Octue 0.69 stores it: the `"dataset"` entry of a `.octue` document.

Octue writes the entry with `Serialisable.to_primitive`, which turns every set into a sorted
list, so the labels of a dataset are a plain JSON list, unlike a datafile's labels, which are a
tagged set (`{"_type": "set", ...}`). Octue reads a cloud `.octue` with plain `json.loads`: a
tagged set there reaches `LabelSet` as a dict and fails with `Invalid label '_type'`, so only
the list form may be written. Both forms are read.

Key order is `id, name, tags, labels, path` (Octue's `_SERIALISE_FIELDS`); the cloud object is
`json.dumps({"dataset": entry})` with default separators and no newline, a local `.octue` file
is the whole document at indent 4 plus a newline (`LocalMetadataStore`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from octuefs.errors import MalformedMetadataError
from octuefs.metadata.codec import decode_local
from octuefs.metadata.labels import LabelSet
from octuefs.metadata.tags import TagDict
from octuefs.metadata.values import dumps

DATASET_KEY = "dataset"


def dataset_primitive(id: str, name: str, tags: TagDict, labels: LabelSet, path: str) -> dict[str, Any]:
    """Octue's `Dataset.to_primitive(include_files=False)`: tags keep their Python values until encoded."""
    return {"id": id, "name": name, "tags": TagDict(tags), "labels": sorted(labels), "path": path}


def cloud_document(primitive: Mapping[str, Any]) -> str:
    """The exact text of a cloud dataset's `<prefix>/.octue` object."""
    return dumps({DATASET_KEY: primitive})


def decode_dataset_entry(entry: Any, source: str) -> dict[str, Any]:
    """The stored fields a Dataset takes: id, tags, labels, name and (signed datasets) files.

    Only fields present are returned; anything malformed raises MalformedMetadataError naming `source`.
    """
    if not isinstance(entry, Mapping):
        raise MalformedMetadataError(f"{source}: {DATASET_KEY!r} is not a JSON object.")
    fields = decode_local({key: entry[key] for key in ("id", "tags", "labels") if key in entry}, source)
    name = entry.get("name")
    if name is not None:
        if not isinstance(name, str):
            raise MalformedMetadataError(f"{source}: the dataset name {name!r} is not a string.")
        fields["name"] = name
    files = entry.get("files")
    if files is not None:
        if not isinstance(files, list) or not all(isinstance(path, str) for path in files):
            raise MalformedMetadataError(f"{source}: the dataset's files {files!r} are not a list of paths.")
        fields["files"] = files
    return fields
