"""Dataset: the datafiles in a local folder or under a `gs://` prefix, and the dataset's own metadata.

A cloud dataset is read from one paginated listing that carries every object's metadata, so
building it costs about one request per thousand objects, never one per file. One object or
file with malformed metadata is reported with a warning and kept with default metadata; it
never makes the whole dataset unreadable (Octue raises for the whole listing).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from octuefs.datafile import Datafile
from octuefs.errors import MalformedMetadataError
from octuefs.metadata.codec import decode_local
from octuefs.metadata.labels import LabelSet
from octuefs.metadata.local_store import METADATA_FILENAME, LocalMetadataStore
from octuefs.metadata.model import OctueMetadata
from octuefs.metadata.tags import TagDict
from octuefs.metadata.values import to_jsonable
from octuefs.storage.gcs import ObjectStat, get_storage
from octuefs.storage.paths import CloudLocation, is_cloud_path

logger = logging.getLogger(__name__)


def _report_malformed(error: MalformedMetadataError) -> None:
    logger.warning("%s (its stored metadata is ignored)", error)
    warnings.warn(f"{error} (its stored metadata is ignored)", stacklevel=3)


class Dataset:
    def __init__(
        self,
        path: str | os.PathLike[str],
        recursive: bool = False,
        ignore_stored_metadata: bool = False,
        id: str | None = None,
        name: str | None = None,
        tags: Mapping[str, Any] | None = None,
        labels: Iterable[str] | str | None = None,
    ) -> None:
        path = os.fspath(path)
        self._cloud = CloudLocation.parse(path, allow_bucket_only=True) if is_cloud_path(path) else None
        if self._cloud is not None:
            self._cloud = CloudLocation(self._cloud.bucket, self._cloud.name.rstrip("/"))
        self.path = self._cloud.path.rstrip("/") if self._cloud else str(Path(path).absolute())
        self.name = name or os.path.basename(self.path.rstrip("/"))
        self._metadata = OctueMetadata.build(id=id, tags=tags, labels=labels)
        if self._cloud:
            self.files, stored = self._load_cloud(recursive, ignore_stored_metadata)
        else:
            self.files, stored = self._load_local(recursive, ignore_stored_metadata)
        if stored and not ignore_stored_metadata:
            self._apply_stored(stored)

    # Loading --------------------------------------------------------------------------------

    def _load_cloud(self, recursive: bool, ignore_stored: bool) -> tuple[list[Datafile], dict[str, Any] | None]:
        assert self._cloud is not None
        storage = get_storage()
        prefix = f"{self._cloud.name}/" if self._cloud.name else ""
        listing = storage.list(self._cloud.bucket, prefix, delimiter=None if recursive else "/")
        files: list[Datafile] = []
        dataset_object: ObjectStat | None = None
        for stat in listing.objects:
            if stat.name == f"{prefix}{METADATA_FILENAME}":
                dataset_object = stat
            elif not stat.name.endswith("/") and os.path.basename(stat.name) != METADATA_FILENAME:
                files.append(self._cloud_datafile(stat, ignore_stored))
        stored = self._read_cloud_dataset_entry(dataset_object) if dataset_object and not ignore_stored else None
        return sorted(files, key=lambda datafile: datafile.path), stored

    @staticmethod
    def _cloud_datafile(stat: ObjectStat, ignore_stored: bool) -> Datafile:
        try:
            return Datafile.from_object_stat(stat, ignore_stored_metadata=ignore_stored)
        except MalformedMetadataError as error:
            _report_malformed(error)
            return Datafile.from_object_stat(stat, ignore_stored_metadata=True)

    def _read_cloud_dataset_entry(self, stat: ObjectStat) -> dict[str, Any] | None:
        try:
            document = json.loads(get_storage().read_range(stat, 0, stat.size))
            entry = document.get("dataset") if isinstance(document, dict) else None
            if entry is not None and not isinstance(entry, dict):
                raise ValueError("'dataset' is not a JSON object")
        except ValueError as error:
            _report_malformed(MalformedMetadataError(f"{stat.location}: dataset metadata is not valid ({error})."))
            return None
        return entry

    def _load_local(self, recursive: bool, ignore_stored: bool) -> tuple[list[Datafile], dict[str, Any] | None]:
        root = Path(self.path)
        directories = [root, *(path for path in root.rglob("*") if path.is_dir())] if recursive else [root]
        files: list[Datafile] = []
        stored: dict[str, Any] | None = None
        for directory in directories:
            document = {} if ignore_stored else self._local_document(directory)
            if directory == root:
                stored = document.get("dataset")
            entries = document.get("datafiles")
            entries = entries if isinstance(entries, dict) else {}
            for path in sorted(directory.iterdir()):
                if path.is_file() and path.name != METADATA_FILENAME:
                    files.append(self._local_datafile(path, entries.get(path.name)))
        return sorted(files, key=lambda datafile: datafile.path), stored

    @staticmethod
    def _local_document(directory: Path) -> dict[str, Any]:
        """The folder's `.octue` document, read once so that a malformed file is reported once, not per use."""
        try:
            return LocalMetadataStore(directory).read()
        except MalformedMetadataError as error:
            _report_malformed(error)
            return {}

    @staticmethod
    def _local_datafile(path: Path, entry: Mapping[str, Any] | None) -> Datafile:
        fields: dict[str, Any] = {}
        if entry is not None:
            try:
                fields = decode_local(entry, f"{path.parent / METADATA_FILENAME}[{path.name}]")
            except MalformedMetadataError as error:
                _report_malformed(error)
        return Datafile(path, ignore_stored_metadata=True, **fields)

    def _apply_stored(self, entry: Any) -> None:
        """Take the stored dataset entry; a hand-edited `.octue` may hold any JSON there, so check before use."""
        try:
            if not isinstance(entry, Mapping):
                raise MalformedMetadataError(f"{self.metadata_path}: 'dataset' is not a JSON object.")
            fields = decode_local(entry, self.metadata_path)
        except MalformedMetadataError as error:
            _report_malformed(error)
            return
        for key, value in fields.items():
            setattr(self._metadata, key, value)
        if isinstance(entry.get("name"), str):
            self.name = entry["name"]

    # Metadata -------------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._metadata.id

    @property
    def tags(self) -> TagDict:
        return self._metadata.tags

    @tags.setter
    def tags(self, value: Mapping[str, Any] | None) -> None:
        self._metadata.tags = TagDict(value)

    @property
    def labels(self) -> LabelSet:
        return self._metadata.labels

    @labels.setter
    def labels(self, value: Iterable[str] | str | None) -> None:
        self._metadata.labels = LabelSet(value)

    @property
    def exists_in_cloud(self) -> bool:
        return self._cloud is not None

    @property
    def metadata_path(self) -> str:
        return f"{self.path}/{METADATA_FILENAME}"

    def metadata(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "tags": to_jsonable(self.tags),
            "labels": to_jsonable(self.labels),
        }

    def update_metadata(self) -> None:
        """Write the dataset entry: merged into the local `.octue`, or as the object `<prefix>/.octue`."""
        if self._cloud is None:
            LocalMetadataStore(self.path).write_dataset_entry(self.metadata())
            return
        name = f"{self._cloud.name}/{METADATA_FILENAME}" if self._cloud.name else METADATA_FILENAME
        storage = get_storage()
        existing = storage.stat(self._cloud.bucket, name)
        with tempfile.TemporaryDirectory(prefix="octuefs-") as directory:
            document_path = Path(directory) / METADATA_FILENAME
            document_path.write_text(json.dumps({"dataset": self.metadata()}, indent=4) + "\n")
            storage.upload(
                self._cloud.bucket,
                name,
                document_path,
                content_type="application/json",
                metadata=dict(existing.metadata) if existing else {},
                if_generation_match=existing.generation if existing else 0,
            )

    # Access ---------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Datafile]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return f"<Dataset({self.path!r}, {len(self.files)} files)>"

    def filter(
        self,
        predicate: Callable[[Datafile], bool] | None = None,
        labels: Iterable[str] | str | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> list[Datafile]:
        """Datafiles with every label in `labels`, every tag in `tags` (equal value), passing `predicate`."""
        wanted_labels = LabelSet(labels)
        wanted_tags = dict(tags or {})
        return [
            datafile
            for datafile in self.files
            if wanted_labels <= datafile.labels
            and all(key in datafile.tags and datafile.tags[key] == value for key, value in wanted_tags.items())
            and (predicate is None or predicate(datafile))
        ]

    def get_file_by_label(self, label: str) -> Datafile:
        matches = self.filter(labels=[label])
        if len(matches) != 1:
            raise LookupError(f"{self.path}: {len(matches)} datafiles have the label {label!r}; expected exactly one.")
        return matches[0]
