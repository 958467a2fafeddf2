"""Dataset: the datafiles in a local folder or under a `gs://` prefix, and the dataset's own metadata.

The API is Octue 0.69's `octue.resources.Dataset`. A cloud dataset is read from one paginated
listing that carries every object's metadata, so building it costs about one request per
thousand objects, never one per file. One object or file with malformed metadata is reported
with a warning and kept with default metadata; it never makes the whole dataset unreadable
(Octue raises for the whole listing).
"""

from __future__ import annotations

import itertools
import logging
import os
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from octuefs.cloud_metadata import MAX_CONFLICT_RETRIES
from octuefs.datafile import Datafile, is_local_name
from octuefs.errors import (
    CloudLocationNotSpecified,
    InvalidInputException,
    MalformedMetadataError,
    PreconditionConflict,
    ReadOnlyResource,
)
from octuefs.filters import FilterSet
from octuefs.metadata.codec import canonical_hash, decode_local
from octuefs.metadata.dataset_entry import DATASET_KEY, cloud_document, dataset_primitive, decode_dataset_entry
from octuefs.metadata.labels import LabelSet
from octuefs.metadata.local_store import METADATA_FILENAME, LocalMetadataStore
from octuefs.metadata.merge import merge_dataset_entry
from octuefs.metadata.model import OCTUE_SDK_VERSION, new_id, normalise_id
from octuefs.metadata.tags import TagDict
from octuefs.metadata.values import decode_primitive, dumps, parse_json, to_jsonable
from octuefs.storage import signed_urls
from octuefs.storage.gcs import ObjectStat, crc32c_of_bytes, get_storage
from octuefs.storage.paths import CloudLocation, has_unsupported_scheme, is_cloud_path, is_url

logger = logging.getLogger(__name__)

# Where Octue's `generate_signed_url` puts the documents it signs; never part of a dataset's files.
SIGNED_METADATA_DIRECTORY = ".signed_metadata_files"
SIGNED_DOCUMENT = f"/{SIGNED_METADATA_DIRECTORY}/"
# Uploads and downloads of a dataset's files run in parallel, as Octue's do; requests are I/O bound.
TRANSFER_THREADS = 8


def _report_malformed(error: MalformedMetadataError) -> None:
    logger.warning("%s (its stored metadata is ignored)", error)
    warnings.warn(f"{error} (its stored metadata is ignored)", stacklevel=3)


def _resolve(path: str | os.PathLike[str] | None) -> tuple[str, CloudLocation | None]:
    """A dataset's path and cloud location: `gs://bucket/prefix` without a trailing slash, a signed URL
    (located at the prefix it was made for), or an absolute local path (the current directory by default)."""
    path = os.fspath(path) if path is not None else os.getcwd()
    if is_url(path):
        signed = signed_urls.url_location(path)
        head, found, _ = f"/{signed.name}".partition(SIGNED_DOCUMENT)
        return path, CloudLocation(signed.bucket, head.lstrip("/") if found else os.path.dirname(signed.name))
    if has_unsupported_scheme(path):
        raise InvalidInputException(f"{path!r}: a dataset is a local folder, a gs://bucket/prefix or a signed URL.")
    if not is_cloud_path(path):
        return str(Path(path).absolute()), None
    location = CloudLocation.parse(path, allow_bucket_only=True)
    location = CloudLocation(location.bucket, location.name.rstrip("/"))
    return location.path.rstrip("/"), location


def _entry_in(document: str | None) -> Any:
    """The dataset entry of a `.octue` text (None for none, or for text another writer broke)."""
    try:
        parsed = parse_json(document, METADATA_FILENAME) if document else None
    except ValueError:
        return None
    return parsed.get(DATASET_KEY) if isinstance(parsed, dict) else None


def _generation(stat: ObjectStat | None) -> int:
    """An object's generation, 0 for none: what GCS's `ifGenerationMatch` compares."""
    return stat.generation if stat else 0


def _in_parallel(function: Callable[[Any], Any], items: list[Any]) -> None:
    with ThreadPoolExecutor(max_workers=max(1, min(TRANSFER_THREADS, len(items)))) as executor:
        list(executor.map(function, items))


def _local_relative_path(relative: str) -> PurePosixPath | None:
    """`relative` as a path that stays inside a directory, or None when no local file can have that name.

    GCS allows names such as `../x`, `a//b` or a NUL; Octue joins them onto the download directory
    and writes outside it.
    """
    parts = relative.split("/")
    return PurePosixPath(*parts) if all(is_local_name(part) for part in parts) else None


class Dataset:
    """A set of datafiles (`dataset.files`, a filterable FilterSet) plus id, name, tags and labels.

    Stored dataset metadata (the `.octue` in the folder or under the prefix) wins over arguments
    unless `ignore_stored_metadata=True`; `files=` builds a dataset from given datafiles, paths or
    serialised datafiles instead of listing `path`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        files: Iterable[Datafile | str | Mapping[str, Any]] | None = None,
        recursive: bool = True,
        ignore_stored_metadata: bool = False,
        include_octue_metadata_files: bool = False,
        id: str | None = None,
        name: str | None = None,
        tags: Mapping[str, Any] | None = None,
        labels: Iterable[str] | str | None = None,
    ) -> None:
        self._id = normalise_id(id) if id is not None else new_id()
        self._name = name
        self._tags = TagDict(tags)
        self._labels = LabelSet(labels)
        self.path = path  # type: ignore[assignment]
        self._recursive = recursive
        self._ignore_stored_metadata = ignore_stored_metadata
        self._include_octue_metadata_files = include_octue_metadata_files
        # The stored dataset entry as this dataset last read or wrote it, the base for merging another
        # writer's changes: for a cloud `.octue` its text (also so `upload` rewrites it only when it
        # changed) and its object (None: seen absent); for a local one the entry. Not read at all by a
        # dataset made from `files=` or ignoring stored metadata.
        self._stored_cloud_read = False
        self._stored_cloud_document: str | None = None
        self._stored_cloud_object: ObjectStat | None = None
        self._stored_local_read = False
        self._stored_local_entry: Any = None
        self.files: FilterSet[Datafile] = FilterSet()
        if files:
            if isinstance(files, dict | str) or not isinstance(files, Iterable):
                raise InvalidInputException(
                    "The files of a Dataset are an iterable of Datafiles, paths or serialised datafiles; "
                    f"got {files!r}."
                )
            self.files = FilterSet(self._datafile_from(file) for file in files)
            return
        if self.is_signed:
            self._load_signed(self.path)
        elif self._cloud is not None:
            self._load_cloud(self._cloud)
        else:
            self._load_local(Path(self.path))
        if not self.files:
            logger.warning("%r is empty at instantiation time (path %r).", self, self.path)

    def _datafile_from(self, file: Datafile | str | Mapping[str, Any]) -> Datafile:
        if isinstance(file, Datafile):
            return file
        if isinstance(file, str):
            return Datafile(file, ignore_stored_metadata=self._ignore_stored_metadata)
        return Datafile.deserialise(dict(file))

    # Location -------------------------------------------------------------------------------

    @property
    def path(self) -> str:
        """`gs://bucket/prefix` (no trailing slash) or an absolute local path."""
        return self._path

    @path.setter
    def path(self, path: str | os.PathLike[str] | None) -> None:
        resolved, cloud = _resolve(path)
        if resolved != getattr(self, "_path", resolved):
            # What was read at the old path is no base for merging at the new one: the entry there is replaced.
            self._stored_cloud_read = self._stored_local_read = False
            self._stored_cloud_document = None
        self._path, self._cloud = resolved, cloud

    @property
    def exists_in_cloud(self) -> bool:
        return self._cloud is not None

    @property
    def is_signed(self) -> bool:
        """Read through a signed URL (`Dataset(dataset.generate_signed_url())`): read-only."""
        return is_url(self.path)

    @property
    def exists_locally(self) -> bool:
        """Octue's meaning: the dataset's path is local (a dataset is either local or in the cloud)."""
        return not self.exists_in_cloud

    @property
    def all_files_are_in_cloud(self) -> bool:
        return all(datafile.exists_in_cloud for datafile in self.files)

    @property
    def cloud_protocol(self) -> str | None:
        return "gs" if self._cloud else None

    @property
    def bucket_name(self) -> str | None:
        return self._cloud.bucket if self._cloud else None

    @property
    def path_in_bucket(self) -> str | None:
        return self._cloud.name if self._cloud else None

    @property
    def metadata_path(self) -> str:
        return self.path if self.is_signed else f"{self.path}/{METADATA_FILENAME}"

    def _cloud_name(self, relative: str) -> str:
        assert self._cloud is not None
        return f"{self._cloud.name}/{relative}" if self._cloud.name else relative

    # Loading --------------------------------------------------------------------------------

    def _is_listed(self, relative: str) -> bool:
        """Octue's bookkeeping (`.signed_metadata_files/`, and `.octue` unless asked for) is not a datafile."""
        parts = relative.split("/")
        if SIGNED_METADATA_DIRECTORY in parts[:-1]:
            return False
        return self._include_octue_metadata_files or parts[-1] != METADATA_FILENAME

    def _load_cloud(self, cloud: CloudLocation) -> None:
        prefix = self._cloud_name("")
        listing = get_storage().list(cloud.bucket, prefix, delimiter=None if self._recursive else "/")
        files: list[Datafile] = []
        dataset_object: ObjectStat | None = None
        for stat in listing.objects:
            relative = stat.name[len(prefix) :]
            if relative == METADATA_FILENAME:
                dataset_object = stat
            if not stat.name.endswith("/") and self._is_listed(relative):
                files.append(Datafile.from_object_stat(stat, ignore_stored_metadata=self._ignore_stored_metadata))
        self._stored_cloud_read = not self._ignore_stored_metadata
        self._stored_cloud_object = dataset_object
        stored = self._read_cloud_entry(dataset_object) if dataset_object and not self._ignore_stored_metadata else None
        self.files = FilterSet(sorted(files, key=lambda datafile: datafile.path))
        if stored is not None:
            self._apply_stored(stored, self.metadata_path)

    @staticmethod
    def _read_text(stat: ObjectStat) -> str:
        return get_storage().read_range(stat, 0, stat.size).decode("utf-8", "replace")

    def _read_cloud_entry(self, stat: ObjectStat) -> Any:
        text = self._read_text(stat)
        self._stored_cloud_document = text
        try:
            document = parse_json(text, str(stat.location))
        except ValueError as error:
            _report_malformed(MalformedMetadataError(f"{stat.location}: dataset metadata is not valid ({error})."))
            return None
        return document.get(DATASET_KEY) if isinstance(document, dict) else None

    def _load_signed(self, url: str) -> None:
        """The document `generate_signed_url` uploaded: the dataset's primitive with a signed URL per file."""
        with tempfile.TemporaryDirectory(prefix="octuefs-") as directory:
            text = Path(Datafile(url).download(Path(directory) / "signed-dataset.json")).read_text()
        try:
            primitive = parse_json(text, url)
        except ValueError as error:
            raise MalformedMetadataError(f"{url}: not a signed dataset ({error}).") from None
        self._apply_stored(primitive, url)

    def _load_local(self, root: Path) -> None:
        files: list[Datafile] = []
        stored = None
        for level, (directory, subdirectories, names) in enumerate(os.walk(root)):
            subdirectories[:] = sorted(name for name in subdirectories if name != SIGNED_METADATA_DIRECTORY)
            if level > 0 and not self._recursive:
                break
            document = {} if self._ignore_stored_metadata else self._local_document(Path(directory))
            if level == 0:
                stored = document.get(DATASET_KEY)
            entries = document.get("datafiles")
            entries = entries if isinstance(entries, dict) else {}
            for name in names:
                if self._is_listed(name):
                    files.append(self._local_datafile(Path(directory, name), entries.get(name)))
        self.files = FilterSet(sorted(files, key=lambda datafile: datafile.path))
        self._stored_local_read, self._stored_local_entry = not self._ignore_stored_metadata, stored
        if stored is not None:
            self._apply_stored(stored, self.metadata_path)

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
        """Decoding reports each badly stored field with a warning and reads the rest, so it never raises."""
        fields = decode_local(entry, f"{path.parent / METADATA_FILENAME}[{path.name}]") if entry is not None else {}
        return Datafile(path, ignore_stored_metadata=True, **fields)

    def _apply_stored(self, entry: Any, source: str) -> None:
        """Take the stored dataset entry; another writer may have put any JSON there, so check it first."""
        try:
            fields = decode_dataset_entry(entry, source)
        except MalformedMetadataError as error:
            _report_malformed(error)
            return
        if "files" in fields:
            with ThreadPoolExecutor(max_workers=TRANSFER_THREADS) as executor:
                self.files = FilterSet(executor.map(Datafile, fields["files"]))
        self._id = fields.get("id", self._id)
        self._name = fields.get("name", self._name)
        self._tags = fields.get("tags", self._tags)
        self._labels = fields.get("labels", self._labels)

    # Metadata -------------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._id

    @property
    def name(self) -> str:
        """The name given or stored, else the last segment of the path."""
        return self._name or self.path.partition("?")[0].rstrip("/").rsplit("/", 1)[-1]

    @name.setter
    def name(self, name: str | None) -> None:
        self._name = name

    @property
    def tags(self) -> TagDict:
        return self._tags

    @tags.setter
    def tags(self, value: Mapping[str, Any] | None) -> None:
        self._tags = TagDict(value)

    @property
    def labels(self) -> LabelSet:
        return self._labels

    @labels.setter
    def labels(self, value: Iterable[str] | str | None) -> None:
        self._labels = LabelSet(value)

    def add_tags(self, tags: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        self.tags.update(tags or {}, **kwargs)

    def add_labels(self, *labels: str) -> None:
        self.labels.update(labels)

    def metadata(self, include_id: bool = True, include_sdk_version: bool = True, **kwargs: Any) -> dict[str, Any]:
        """Octue's `Dataset.metadata()`: id, name, tags, labels, sdk_version (extra keywords ignored, as there)."""
        metadata: dict[str, Any] = {"id": self.id, "name": self.name, "tags": self.tags, "labels": self.labels}
        if include_sdk_version:
            metadata["sdk_version"] = OCTUE_SDK_VERSION
        if not include_id:
            del metadata["id"]
        return metadata

    @property
    def metadata_hash_value(self) -> str:
        """CRC32C of name, tags and labels as canonical JSON: stable across processes, unlike Octue's."""
        return canonical_hash({"name": self.name, "tags": self.tags, "labels": self.labels})

    @property
    def hash_value(self) -> str:
        """Octue's dataset hash, exactly: CRC32C (base64) of `str(sorted(<each datafile's hash_value>))`."""
        return crc32c_of_bytes(str(sorted(datafile.hash_value for datafile in self.files)).encode())

    def update_metadata(self) -> None:
        """Save the dataset entry where the dataset is: the cloud `.octue` object or the local `.octue` file."""
        if self.exists_in_cloud:
            self.update_cloud_metadata()
        else:
            self.update_local_metadata()

    def update_cloud_metadata(self) -> None:
        """Write `<prefix>/.octue` as Octue writes it, keeping any custom metadata another tool put on it.

        It is written only over the object this dataset read or last wrote. When another writer has
        changed it since, its changes and ours are merged as a datafile's metadata is and the write is
        retried, so neither is lost (Octue overwrites blindly). A dataset that never read it (made from
        `files=`, or ignoring stored metadata) replaces what is there.
        """
        cloud = self._writable_cloud_location("have its metadata updated")
        name = self._cloud_name(METADATA_FILENAME)
        for conflicts in itertools.count():
            current = get_storage().stat(cloud.bucket, name)
            if self._stored_cloud_read and _generation(current) != _generation(self._stored_cloud_object):
                self._merge_stored_cloud_changes(current)
            text = cloud_document(self.to_primitive(include_files=False))
            try:
                written = self._put_text(name, text, current)
            except PreconditionConflict:
                if conflicts >= MAX_CONFLICT_RETRIES:
                    raise
                continue
            self._stored_cloud_read, self._stored_cloud_object, self._stored_cloud_document = True, written, text
            return

    def _merge_stored_cloud_changes(self, theirs_object: ObjectStat | None) -> None:
        theirs_document = self._read_text(theirs_object) if theirs_object else None
        self._merge_onto(_entry_in(self._stored_cloud_document), _entry_in(theirs_document))
        self._stored_cloud_object, self._stored_cloud_document = theirs_object, theirs_document

    def _merge_onto(self, base: Any, theirs: Any) -> None:
        """Re-apply our changes since the stored entry was `base` onto `theirs`, another writer's entry."""
        logger.info("%s: changed by another writer; merging our changes onto theirs", self.metadata_path)
        base, theirs = self._entry_fields(base), self._entry_fields(theirs)
        ours = {"name": self._name or base.get("name"), "tags": self._tags, "labels": self._labels}
        merged = merge_dataset_entry(base, ours, theirs)
        self._name, self._tags, self._labels = merged["name"], merged["tags"], merged["labels"]

    def _entry_fields(self, entry: Any) -> dict[str, Any]:
        """A stored dataset entry as fields; none for no entry or one that is malformed (which was reported
        when it was read)."""
        try:
            return decode_dataset_entry(entry, self.metadata_path) if entry is not None else {}
        except MalformedMetadataError:
            return {}

    def _writable_cloud_location(self, action: str) -> CloudLocation:
        if self._cloud is None:
            raise CloudLocationNotSpecified(
                f"{self!r} ({self.path}) is not in the cloud; call upload('gs://bucket/prefix') to put it there."
            )
        if self.is_signed:
            raise ReadOnlyResource(f"{self!r} is read through a signed URL, so it cannot {action}.")
        return self._cloud

    def _put_text(self, name: str, text: str, existing: ObjectStat | None) -> ObjectStat:
        """Write a small text object under the dataset's bucket as Octue does (`text/plain`), keeping any
        custom metadata another tool put on it, and only over the generation seen (0: only if new)."""
        assert self._cloud is not None
        with tempfile.TemporaryDirectory(prefix="octuefs-") as directory:
            document_path = Path(directory) / "document"
            document_path.write_text(text)
            return get_storage().upload(
                self._cloud.bucket,
                name,
                document_path,
                content_type="text/plain",
                metadata=dict(existing.metadata) if existing else {},
                if_generation_match=existing.generation if existing else 0,
            )

    def generate_signed_url(self, expiration: timedelta | datetime = signed_urls.DEFAULT_EXPIRATION) -> str:
        """A URL from which anyone can read the dataset (`Dataset(url)`) with no credentials, until `expiration`.

        As Octue does, a document holding the dataset's primitive with a signed URL for each file is
        uploaded to `<prefix>/.signed_metadata_files/<random name>` and a signed URL to it returned.
        """
        cloud = self._writable_cloud_location("be signed again (sign its gs:// dataset instead)")
        primitive = self.to_primitive(include_files=False)
        primitive["files"] = [datafile.generate_signed_url(expiration=expiration) for datafile in self.files]
        name = self._cloud_name(f"{SIGNED_METADATA_DIRECTORY}/{uuid.uuid4().hex}")
        self._put_text(name, dumps(primitive), None)
        return signed_urls.generate_signed_url(CloudLocation(cloud.bucket, name), expiration)

    def update_local_metadata(self) -> None:
        """Merge the dataset entry into the folder's `.octue` (creating the folder), keeping the datafile entries.

        Changes another writer made to the entry since this dataset read or last wrote it are merged with
        ours, as for a cloud dataset.
        """
        if self.exists_in_cloud:
            raise InvalidInputException(f"{self!r} is in the cloud ({self.path}); use update_cloud_metadata().")

        def ours_onto(current: Any) -> dict[str, Any]:
            if self._stored_local_read and current != self._stored_local_entry:
                self._merge_onto(self._stored_local_entry, current)
            return to_jsonable(self.to_primitive(include_files=False))  # type: ignore[no-any-return]

        self._stored_local_entry = LocalMetadataStore(self.path).write_dataset_entry(ours_onto)
        self._stored_local_read = True

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        """Save the metadata on a clean exit; after an exception nothing is written (Octue writes anyway)."""
        if exc_type is None:
            self.update_metadata()

    # Serialisation --------------------------------------------------------------------------

    def to_primitive(self, include_files: bool = True) -> dict[str, Any]:
        """Octue's primitive: id, name, tags, labels (sorted list), path and, if asked, the sorted file paths."""
        primitive = dataset_primitive(self.id, self.name, self.tags, self.labels, self.path)
        if include_files:
            primitive["files"] = sorted(
                datafile.cloud_path if datafile.exists_in_cloud else datafile.local_path for datafile in self.files
            )
        return primitive

    def serialise(self) -> str:
        """The primitive as Octue's JSON text (sorted keys, indent 4): what a Twined service receives."""
        return dumps(self.to_primitive(), indent=4, sort_keys=True)

    @classmethod
    def deserialise(cls, serialised_object: str | Mapping[str, Any], from_string: bool = False) -> Dataset:
        """A dataset from `serialise()`'s text or `to_primitive()`'s dict, as `Datafile.deserialise` takes them
        (`from_string` is Octue's flag; text is recognised either way)."""
        return cls(**decode_primitive(serialised_object, InvalidInputException, "A serialised Dataset"))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Dataset:
        return cls.deserialise(Path(path).read_text(), from_string=True)

    def to_file(self, path: str | os.PathLike[str]) -> None:
        Path(path).write_text(self.serialise())

    # Files ----------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Datafile]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)

    def __contains__(self, datafile: object) -> bool:
        return datafile in self.files

    def __repr__(self) -> str:
        return f"<Dataset({self.name!r})>"

    def filter(
        self,
        predicate: Callable[[Datafile], bool] | None = None,
        labels: Iterable[str] | str | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> FilterSet[Datafile]:
        """octuefs's shorthand: datafiles with every label in `labels`, every tag in `tags`, passing `predicate`.

        Octue's own lookups are `dataset.files.filter(labels__contains=..., tags__site=...)`.
        """
        wanted_labels = LabelSet(labels)
        wanted_tags = dict(tags or {})
        return FilterSet(
            datafile
            for datafile in self.files
            if wanted_labels <= datafile.labels
            and all(key in datafile.tags and datafile.tags[key] == value for key, value in wanted_tags.items())
            and (predicate is None or predicate(datafile))
        )

    def get_file_by_label(self, label: str) -> Datafile:
        """The one datafile with this label; UnexpectedNumberOfResultsException for none or several."""
        return self.files.one(labels__contains=label)  # type: ignore[no-any-return]

    def _relative_path(self, datafile: Datafile) -> str:
        """Where the datafile sits inside the dataset: by its object name in a cloud dataset (a signed one
        too), else by its local path."""
        if self._cloud is not None:
            own = datafile.path_in_bucket if datafile.bucket_name == self._cloud.bucket else None
            prefix = self._cloud_name("")
        else:
            own, prefix = datafile.local_path, f"{self.path}/"
        if own is None or not own.startswith(prefix):
            raise InvalidInputException(
                f"{datafile.path} is not inside {self!r} ({self.path}); add() it to the dataset first."
            )
        return own[len(prefix) :]

    def _contains_path(self, path: str | None) -> bool:
        return path is not None and path.startswith(f"{self.path}/")

    def add(self, datafile: Datafile, path_in_dataset: str | None = None) -> None:
        """Add a datafile, copying it into the dataset (at `path_in_dataset`, else its name) when it is outside.

        In a cloud dataset an outside datafile is uploaded under the prefix; in a local one it is
        downloaded (a cloud datafile) or copied (a local one) into the folder.
        """
        if not isinstance(datafile, Datafile):
            raise InvalidInputException(f"{datafile!r} must be a Datafile to be added to {self!r}.")
        relative = path_in_dataset or datafile.name
        if self.exists_in_cloud:
            cloud = self._writable_cloud_location("have files added")
            if not self._contains_path(datafile.cloud_path):
                datafile.upload(f"gs://{cloud.bucket}/{self._cloud_name(relative)}")
        elif datafile.exists_in_cloud and not datafile.exists_locally:
            datafile.download(local_path=os.path.join(self.path, relative))
        elif not self._contains_path(datafile.local_path):
            datafile.local_path = os.path.join(self.path, relative)
        self.files.add(datafile)

    def upload(self, cloud_path: str | None = None, update_cloud_metadata: bool = True) -> str:
        """Upload every datafile under `cloud_path` (default: where the dataset is), keeping relative paths.

        The dataset then lives at `cloud_path`; its `.octue` is written if it changed.
        """
        if cloud_path is None:
            self._writable_cloud_location("be uploaded")
        target, location = _resolve(cloud_path or self.path)
        if location is None or is_url(target):
            raise InvalidInputException(f"{self!r}: upload to a gs://bucket/prefix, not to {cloud_path!r}.")
        plan = [(datafile, f"{target}/{self._relative_path(datafile)}") for datafile in self.files]
        _in_parallel(lambda item: item[0].upload(item[1]), plan)
        self.path = target
        if update_cloud_metadata and self._stored_cloud_document != cloud_document(self.to_primitive(False)):
            self.update_cloud_metadata()
        return self.path

    def download(self, local_directory: str | os.PathLike[str] | None = None) -> str:
        """Download every file into `local_directory` (default: a new temporary one), keeping relative paths.

        An object whose name cannot be a file inside the directory (`..`, `a//b`, ...) is skipped with a warning.
        """
        if not self.exists_in_cloud:
            raise CloudLocationNotSpecified(f"Only a cloud dataset can be downloaded; {self!r} is at {self.path}.")
        directory = Path(local_directory or tempfile.mkdtemp(prefix="octuefs-dataset-")).absolute()
        plan: list[tuple[Datafile, Path]] = []
        for datafile in (datafile for datafile in self.files if datafile.exists_in_cloud):
            relative = _local_relative_path(self._relative_path(datafile))
            if relative is None:
                message = f"{datafile.cloud_path}: its name cannot be a local file inside {directory}; not downloaded."
                logger.warning(message)
                warnings.warn(message, stacklevel=2)
            else:
                plan.append((datafile, directory / relative))
        _in_parallel(lambda item: item[0].download(local_path=item[1]), plan)
        logger.info("Downloaded %r to %r.", self, str(directory))
        return str(directory)
