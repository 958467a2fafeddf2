"""Datafile: one object for a local file or a `gs://` object, with its Octue metadata.

The API is the Octue SDK's (`octue.resources.Datafile`), with its known bugs fixed: content and
metadata always travel in one upload, an exception inside `open()` uploads nothing, content type
and foreign metadata survive edits, a failed download leaves nothing behind, metadata writes are
guarded by preconditions, and one client serves the whole process.
"""

from __future__ import annotations

import contextlib
import hashlib
import mimetypes
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from octuefs import cloud_metadata
from octuefs.errors import (
    CloudLocationNotSpecified,
    CloudObjectNotFound,
    InvalidInputException,
    LocalFileNotFound,
    OctuefsError,
)
from octuefs.metadata.codec import decode_local, encode_cloud, encode_fields, encode_local, metadata_hash
from octuefs.metadata.labels import LabelSet
from octuefs.metadata.local_store import METADATA_FILENAME, LocalMetadataStore
from octuefs.metadata.model import OctueMetadata, derived_id, new_id, normalise_id, parse_timestamp
from octuefs.metadata.tags import TagDict
from octuefs.metadata.values import to_jsonable
from octuefs.reader import RangedFile, library_reader
from octuefs.storage.gcs import get_storage
from octuefs.storage.objects import EMPTY_CRC32C, ObjectStat, crc32c_of_file
from octuefs.storage.paths import CloudLocation, is_cloud_path
from octuefs.storage.streaming import StreamingUpload

HDF5_EXTENSIONS = frozenset({"hdf5", "h5"})
HDF5_MODES = frozenset({"r", "r+", "w", "w-", "x", "a"})
LOCAL_NAME_MAX = 255  # bytes in one path segment on Linux
# Built from Python's own table only, so the guess never depends on the machine's /etc/mime.types.
_MIME_TYPES = mimetypes.MimeTypes()


def guess_content_type(name: str) -> str:
    return _MIME_TYPES.guess_type(name)[0] or "application/octet-stream"


def is_writing_mode(mode: str, hdf5: bool = False) -> bool:
    return mode != "r" if hdf5 else any(character in mode for character in "wax+")


@dataclass(frozen=True)
class UploadRequest:
    """One upload of content with its complete custom metadata, guarded by a generation precondition."""

    location: CloudLocation
    metadata: dict[str, str]
    content_type: str
    if_generation_match: int
    # The first bytes of `source` that are a hole standing for the object's own content (at generation
    # `if_generation_match`): only what follows them is sent, and joined on in the cloud.
    base_size: int = 0

    def send(self, source: Path) -> ObjectStat:
        storage, bucket, name = get_storage(), self.location.bucket, self.location.name
        content_type, metadata, generation = self.content_type, self.metadata, self.if_generation_match
        if self.base_size:
            return storage.append(bucket, name, source, self.base_size, content_type, metadata, generation)
        return storage.upload(bucket, name, source, content_type, metadata, generation)

    def stream(self) -> StreamingUpload:
        """Start sending a file that is still being written (see `octuefs.storage.streaming`)."""
        return get_storage().start_upload(self.location, self.content_type, self.metadata, self.if_generation_match)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "location": self.location.path}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UploadRequest:
        return cls(**{**data, "location": CloudLocation.parse(data["location"])})


class Datafile:
    """A local file or cloud object plus its Octue metadata (id, timestamp, tags, labels).

    Cloud content is downloaded only by `open()`, `download()` or `local_path`; constructing a
    cloud datafile costs one metadata GET, and one built from a listing costs none.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        local_path: str | os.PathLike[str] | None = None,
        cloud_path: str | None = None,
        timestamp: datetime | str | float | None = None,
        mode: str = "r",
        update_metadata: bool = True,
        ignore_stored_metadata: bool = False,
        id: str | None = None,
        tags: dict[str, Any] | None = None,
        labels: Any = None,
        **kwargs: Any,
    ) -> None:
        update_metadata = kwargs.pop("update_cloud_metadata", update_metadata)
        if kwargs:
            raise InvalidInputException(f"{path}: unexpected Datafile arguments {sorted(kwargs)}.")
        self._init_open_defaults(mode, update_metadata)
        given = {
            "id": normalise_id(id) if id is not None else None,
            "timestamp": parse_timestamp(timestamp),
            "tags": TagDict(tags),
            "labels": LabelSet(labels),
        }
        path = os.fspath(path)
        if is_cloud_path(path):
            location = CloudLocation.parse(path)
            self._init_cloud(location, get_storage().stat(location.bucket, location.name), local_path)
            stored = cloud_metadata.stored_fields(self._stat) if self._stat and not ignore_stored_metadata else {}
        else:
            self._init_local(Path(path).absolute(), cloud_path)
            stored = {} if ignore_stored_metadata else self._stored_local_fields()
        self._set_metadata({**{key: value for key, value in given.items() if value is not None}, **stored})

    def _init_open_defaults(self, mode: str, update_metadata: bool) -> None:
        """What `with Datafile(path, mode=...) as (datafile, f):` opens with."""
        self._open_mode = mode
        self._update_metadata_on_exit = update_metadata
        self._open_context: _OpenContext | None = None

    def _init_cloud(self, location: CloudLocation, stat: ObjectStat | None, local_path: Any = None) -> None:
        self._origin_is_cloud = True
        self._location: CloudLocation | None = location
        self._stat: ObjectStat | None = stat
        self._stat_known = True
        self._local_file: Path | None = None
        self._local_copy_target = Path(local_path).absolute() if local_path else None

    def _init_local(self, path: Path, cloud_path: str | None) -> None:
        self._origin_is_cloud = False
        self._location = CloudLocation.parse(cloud_path) if cloud_path else None
        self._stat = None
        self._stat_known = False
        self._local_file = path
        self._local_copy_target = None

    def _set_metadata(self, fields: dict[str, Any]) -> None:
        if "id" not in fields:
            stat = self._stat
            fields["id"] = derived_id(stat.bucket, stat.name, stat.generation) if stat else new_id()
        self._metadata = OctueMetadata(**fields)
        self._mark_saved()

    def _mark_saved(self) -> None:
        """Remember the metadata as stored, to detect changes and to merge on a lost race."""
        self._saved = self._metadata.copy()

    @classmethod
    def from_object_stat(cls, stat: ObjectStat, ignore_stored_metadata: bool = False) -> Datafile:
        """A cloud datafile from what a listing already returned: no request."""
        datafile = cls.__new__(cls)
        datafile._init_open_defaults("r", True)
        datafile._init_cloud(stat.location, stat)
        datafile._set_metadata({} if ignore_stored_metadata else cloud_metadata.stored_fields(stat))
        return datafile

    @classmethod
    def for_new_object(cls, bucket: str, name: str) -> Datafile:
        """A cloud datafile for an object about to be created: a fresh id and no request."""
        datafile = cls.__new__(cls)
        datafile._init_open_defaults("r", True)
        datafile._init_cloud(CloudLocation(bucket, name), None)
        datafile._set_metadata({})
        return datafile

    def _stored_local_fields(self) -> dict[str, Any]:
        assert self._local_file is not None
        entry = LocalMetadataStore(self._local_file.parent).datafile_entry(self._local_file.name)
        return decode_local(entry, f"{self._local_file.parent / METADATA_FILENAME}[{self.name}]") if entry else {}

    # Identity and location ------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._metadata.id

    @property
    def path(self) -> str:
        return self._location.path if self._origin_is_cloud else str(self._local_file)  # type: ignore[union-attr]

    @property
    def name(self) -> str:
        return os.path.basename(self._location.name if self._origin_is_cloud else self._local_file)  # type: ignore[union-attr,arg-type]

    @property
    def extension(self) -> str:
        return os.path.splitext(self.name)[1].lstrip(".")

    @property
    def cloud_path(self) -> str | None:
        return self._location.path if self._location else None

    @property
    def bucket_name(self) -> str | None:
        return self._location.bucket if self._location else None

    @property
    def path_in_bucket(self) -> str | None:
        return self._location.name if self._location else None

    @property
    def metadata_path(self) -> str | None:
        """Where the metadata lives: the cloud object itself, or the `.octue` file beside a local file."""
        if self._origin_is_cloud:
            return self.cloud_path
        return str(self._local_file.parent / METADATA_FILENAME)  # type: ignore[union-attr]

    @property
    def cloud_stat(self) -> ObjectStat | None:
        """The object as last seen (generation, crc32c, size...), or None if it is not in the cloud."""
        return self._current_stat()

    def _current_stat(self) -> ObjectStat | None:
        if not self._stat_known and self._location is not None:
            self._stat = get_storage().stat(self._location.bucket, self._location.name)
            self._stat_known = True
        return self._stat

    @property
    def exists_in_cloud(self) -> bool:
        return self._current_stat() is not None

    @property
    def exists_locally(self) -> bool:
        return self._local_content() is not None

    def _local_content(self) -> Path | None:
        """The local file holding this datafile's content, if there is one (never downloads)."""
        if not self._origin_is_cloud:
            return self._local_file if self._local_file and self._local_file.is_file() else None
        if self._local_file is None and self._local_copy_target is not None:
            self._adopt_existing_copy(self._local_copy_target)
        return self._local_file if self._local_file and self._local_file.is_file() else None

    def _adopt_existing_copy(self, target: Path) -> None:
        """Use a file already at the requested local path when it holds the object's exact bytes."""
        if self._stat and target.is_file() and crc32c_of_file(target) == self._stat.crc32c:
            self._local_file = target

    @property
    def local_path(self) -> str:
        """The local file; for a cloud datafile this downloads it first if needed."""
        existing = self._local_content()
        if existing is not None:
            return str(existing)
        if not self._origin_is_cloud:
            return str(self._local_file)
        return self.download()

    @local_path.setter
    def local_path(self, path: str | os.PathLike[str]) -> None:
        target = Path(path).absolute()
        if target.exists():
            raise FileExistsError(f"{target}: already exists; give a new path to download {self.path} to.")
        self.download(target)

    # Metadata -------------------------------------------------------------------------------

    @property
    def timestamp(self) -> datetime | None:
        return self._metadata.timestamp

    @timestamp.setter
    def timestamp(self, value: datetime | str | float | None) -> None:
        self._metadata.timestamp = parse_timestamp(value)

    @property
    def posix_timestamp(self) -> float | None:
        return self.timestamp.timestamp() if self.timestamp else None

    @property
    def tags(self) -> TagDict:
        return self._metadata.tags

    @tags.setter
    def tags(self, value: dict[str, Any] | None) -> None:
        self._metadata.tags = TagDict(value)

    @property
    def labels(self) -> LabelSet:
        return self._metadata.labels

    @labels.setter
    def labels(self, value: Any) -> None:
        self._metadata.labels = LabelSet(value)

    def add_tags(self, tags: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.tags.update(tags or {}, **kwargs)

    def add_labels(self, *labels: str) -> None:
        self.labels.update(labels)

    @property
    def octue_metadata(self) -> OctueMetadata:
        return self._metadata

    def metadata(
        self, include_id: bool = True, include_sdk_version: bool = True, use_octue_namespace: bool = True
    ) -> dict[str, Any]:
        fields = encode_fields(self._metadata)
        if not include_id:
            del fields["id"]
        if not include_sdk_version:
            del fields["sdk_version"]
        return {(f"octue__{key}" if use_octue_namespace else key): value for key, value in fields.items()}

    @property
    def metadata_changed(self) -> bool:
        return encode_cloud(self._metadata) != encode_cloud(self._saved)

    # Hashes and size ------------------------------------------------------------------------

    @property
    def hash_value(self) -> str:
        """Base64 big-endian CRC32C of the content; from the object's record when not held locally."""
        local = self._local_content()
        if local is not None:
            return crc32c_of_file(local)
        stat = self._current_stat() if self._origin_is_cloud else None
        return (stat.crc32c if stat else None) or EMPTY_CRC32C

    @property
    def cloud_hash_value(self) -> str | None:
        stat = self._current_stat()
        return stat.crc32c if stat else None

    @property
    def metadata_hash_value(self) -> str:
        return metadata_hash(self._metadata)

    @property
    def size_bytes(self) -> int | None:
        local = self._local_content()
        if local is not None:
            return local.stat().st_size
        stat = self._current_stat() if self._origin_is_cloud else None
        return stat.size if stat else None

    # Content --------------------------------------------------------------------------------

    def open(self, mode: str = "r", **kwargs: Any) -> _OpenContext:
        """Like built-in `open` (an `h5py.File` for `.hdf5`/`.h5`); changes are saved when the block exits."""
        return _OpenContext(self, mode, kwargs)

    def __enter__(self) -> tuple[Datafile, Any]:
        self._open_context = self.open(self._open_mode)
        return self, self._open_context.__enter__()

    def __exit__(self, *exc_info: Any) -> None:
        context, self._open_context = self._open_context, None
        if context is not None:
            context.__exit__(*exc_info)

    def _default_copy_target(self) -> Path:
        if self._local_copy_target is None:
            self._local_copy_target = Path(tempfile.mkdtemp(prefix="octuefs-")) / self._local_file_name()
        return self._local_copy_target

    def _local_file_name(self) -> str:
        """The object's base name, unless no local file can have it.

        GCS names may end in `/`, `/.` or `/..`, hold a NUL, or end in a segment over Linux's 255-byte
        NAME_MAX; joined to a directory such a base name means the directory itself, its parent, or an
        error, so a stable name derived from the whole object name stands in.
        """
        name = self.name
        representable = name not in ("", ".", "..") and "\0" not in name
        if representable and len(name.encode("utf-8", "surrogateescape")) <= LOCAL_NAME_MAX:
            return name
        digest = hashlib.sha256(self.path.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        return f"object-{digest}"

    def download(self, local_path: str | os.PathLike[str] | None = None) -> str:
        """Fetch the cloud content (verified against its crc32c) and return the local path."""
        if self._location is None:
            raise CloudLocationNotSpecified(f"{self.path}: has no cloud path to download from.")
        stat = self._current_stat()
        if stat is None:
            raise CloudObjectNotFound(f"{self.cloud_path}: no such object to download.")
        if not self._origin_is_cloud and local_path is None:
            return self.local_path
        target = Path(local_path).absolute() if local_path else self._default_copy_target()
        if self._local_content() == target:
            return str(target)
        get_storage().download(stat, target)
        if self._origin_is_cloud:
            self._local_file = target
            self._local_copy_target = target
        return str(target)

    def upload(
        self, cloud_path: str | None = None, update_metadata: bool = True, update_cloud_metadata: bool | None = None
    ) -> str:
        """Put content and metadata in the cloud: one upload if the bytes differ, else at most one PATCH."""
        if update_cloud_metadata is not None:
            update_metadata = update_cloud_metadata
        target = CloudLocation.parse(cloud_path) if cloud_path else self._location
        if target is None:
            raise CloudLocationNotSpecified(
                f"{self.path}: no cloud path to upload to; call upload('gs://bucket/name')."
            )
        if target == self._location:
            target_stat = self._current_stat()
        else:
            target_stat = get_storage().stat(target.bucket, target.name)
        source = self._upload_source(target)
        if source is not None and (target_stat is None or crc32c_of_file(source) != target_stat.crc32c):
            self._stat = self._upload_content(target, source, target_stat, update_metadata)
        elif update_metadata and target_stat is not None and not cloud_metadata.is_stored(target_stat, self._metadata):
            base = self._saved if target == self._location else cloud_metadata.metadata_of(target_stat)
            self._stat, self._metadata = cloud_metadata.write_metadata(get_storage(), target_stat, base, self._metadata)
        else:
            self._stat = target_stat
        self._location = target
        self._stat_known = True
        self._mark_saved()
        return target.path

    def _upload_source(self, target: CloudLocation) -> Path | None:
        """The local bytes to upload, or None when the target already is this datafile's content."""
        local = self._local_content()
        if local is not None:
            return local
        if self._origin_is_cloud:
            return None if target == self._location else Path(self.download())
        raise LocalFileNotFound(f"{self._local_file}: no such file to upload.")

    def _upload_content(
        self, target: CloudLocation, source: Path, target_stat: ObjectStat | None, update_metadata: bool
    ) -> ObjectStat:
        return self._upload_request(target, target_stat, update_metadata).send(source)

    def _upload_request(
        self,
        target: CloudLocation,
        target_stat: ObjectStat | None,
        update_metadata: bool,
        custom_changes: Mapping[str, str] | None = None,
    ) -> UploadRequest:
        """Everything an upload over `target_stat` carries: the complete metadata, the content type kept
        from the object (Octue bug 3), and the generation precondition (0 for a new object)."""
        existing = {**(target_stat.metadata if target_stat else {}), **(custom_changes or {})}
        if update_metadata or target_stat is None:
            custom = cloud_metadata.cloud_custom_metadata(self._metadata, existing, target.path)
        else:
            custom = existing
        return UploadRequest(
            target,
            custom,
            (target_stat.content_type if target_stat else None) or guess_content_type(target.name),
            target_stat.generation if target_stat else 0,
        )

    def content_upload_request(self, custom_changes: Mapping[str, str] | None = None) -> UploadRequest:
        """The upload that would replace this cloud object's content, without sending it.

        The mount records it beside a staged file (so a crash can finish it) and then sends it.
        """
        if self._location is None:
            raise CloudLocationNotSpecified(f"{self.path}: has no cloud path to upload to.")
        return self._upload_request(self._location, self._current_stat(), True, custom_changes)

    def adopt_uploaded(self, stat: ObjectStat) -> None:
        """Take the object's new state after a content upload this datafile's request made."""
        self._stat = stat
        self._stat_known = True
        self._mark_saved()

    def update_custom_metadata(self, changes: Mapping[str, str]) -> None:
        """Set non-Octue custom metadata keys (e.g. a file's mtime) with one guarded PATCH."""
        stat = self._current_stat()
        if stat is None:
            raise CloudObjectNotFound(f"{self.cloud_path}: no such object to update.")
        self._stat, self._metadata = cloud_metadata.write_metadata(
            get_storage(), stat, self._saved, self._metadata, custom_changes=changes
        )
        self._mark_saved()

    def update_metadata(self) -> None:
        """Save the metadata: one guarded PATCH for a cloud object, the `.octue` entry for a local file."""
        if not self._origin_is_cloud:
            self._write_local_metadata()
        stat = self._current_stat()
        if self._origin_is_cloud and stat is None:
            raise CloudObjectNotFound(f"{self.cloud_path}: no such object; upload it before updating its metadata.")
        if stat is not None:
            self._stat, self._metadata = cloud_metadata.write_metadata(get_storage(), stat, self._saved, self._metadata)
        self._mark_saved()

    def save_metadata(self, metadata: OctueMetadata) -> None:
        """Write `metadata` as this datafile's metadata, adopting it only once the write has succeeded.

        The mount uses this for xattr changes: a refused or failed write leaves the datafile as it was.
        A cloud object not created yet takes the metadata with its first upload.
        """
        if self._origin_is_cloud and self._current_stat() is None:
            cloud_metadata.cloud_custom_metadata(metadata, {}, str(self.cloud_path))  # the size check, now
            self._metadata = metadata
            return
        previous = self._metadata
        self._metadata = metadata
        try:
            self.update_metadata()
        except BaseException:
            self._metadata = previous
            raise

    def _write_local_metadata(self) -> None:
        assert self._local_file is not None
        store = LocalMetadataStore(self._local_file.parent)
        store.write_datafile_entry(self._local_file.name, encode_local(self._metadata))

    # Serialisation --------------------------------------------------------------------------

    def serialise(self) -> dict[str, Any]:
        local = self._local_content()
        return {
            "id": self.id,
            "name": self.name,
            "path": self.path,
            "cloud_path": self.cloud_path,
            "local_path": str(local) if local else None,
            **{key: to_jsonable(value) for key, value in self.metadata(use_octue_namespace=False).items()},
            "cloud_stat": self._stat.to_dict() if self._stat_known and self._stat else None,
        }

    @classmethod
    def deserialise(cls, data: dict[str, Any]) -> Datafile:
        """Rebuild a serialised datafile; a cloud one whose stat was serialised costs no request."""
        metadata = {key: data.get(key) for key in ("id", "timestamp", "tags", "labels")}
        if data.get("cloud_stat") and is_cloud_path(data["path"]):
            datafile = cls.from_object_stat(ObjectStat.from_dict(data["cloud_stat"]), ignore_stored_metadata=True)
            datafile._set_metadata(decode_local(metadata, data["path"]))
            if data.get("local_path"):
                datafile._local_copy_target = Path(data["local_path"])
            return datafile
        fields = decode_local(metadata, data["path"])
        return cls(data["path"], cloud_path=data.get("cloud_path"), ignore_stored_metadata=True, **fields)

    def __repr__(self) -> str:
        return f"<Datafile({self.path!r})>"

    def __lt__(self, other: Datafile) -> bool:
        return self.path < other.path


class _OpenContext:
    """`with datafile.open(mode) as f:`; on a clean exit saves what changed, on an exception nothing.

    A cloud datafile opened for writing is edited in a staging copy, so an exception inside the
    block leaves both the cloud object and the downloaded copy exactly as they were.
    """

    def __init__(self, datafile: Datafile, mode: str, kwargs: dict[str, Any]) -> None:
        self.datafile = datafile
        self.mode = mode
        self.kwargs = kwargs
        self.hdf5 = datafile.extension.lower() in HDF5_EXTENSIONS
        self.writing = is_writing_mode(mode, self.hdf5)
        self.staging: Path | None = None
        self.file: IO[Any] | Any = None

    def __enter__(self) -> IO[Any] | Any:
        datafile = self.datafile
        if self.hdf5 and self.mode not in HDF5_MODES:
            raise InvalidInputException(f"{datafile.path}: HDF5 files open in modes {sorted(HDF5_MODES)}.")
        if not datafile._origin_is_cloud:
            path = Path(datafile.local_path)
            if self.writing:
                path.parent.mkdir(parents=True, exist_ok=True)
        elif self.writing:
            path = self.staging = self._prepare_staging()
        elif self.hdf5 and datafile._local_content() is None:
            self.file = self._open(self._ranged_file())
            return self.file
        else:
            path = Path(datafile.local_path)
        self.file = self._open(path)
        return self.file

    def _ranged_file(self) -> RangedFile:
        """Reading HDF5 touches a few chunks of a large file: fetch those ranges, never the whole object."""
        stat = self.datafile._current_stat()
        if stat is None:
            raise CloudObjectNotFound(f"{self.datafile.cloud_path}: no such object to open with mode 'r'.")
        return RangedFile(library_reader(stat))

    def _open(self, target: Path | RangedFile) -> IO[Any] | Any:
        if not self.hdf5:
            return open(target, self.mode, **self.kwargs)  # type: ignore[arg-type]
        try:
            import h5py
        except ImportError:
            raise ImportError(f"{self.datafile.path}: HDF5 datafiles need h5py: pip install 'octuefs[hdf5]'.") from None
        return h5py.File(target, self.mode, **self.kwargs)

    def _prepare_staging(self) -> Path:
        datafile = self.datafile
        stat = datafile._current_stat()
        exclusive = "x" in self.mode or self.mode == "w-"
        if exclusive and stat is not None:
            raise FileExistsError(f"{datafile.cloud_path}: already exists (opened with mode {self.mode!r}).")
        keeps_content = self.mode.startswith(("a", "r"))
        if self.mode.startswith("r") and stat is None:
            raise CloudObjectNotFound(f"{datafile.cloud_path}: no such object to open with mode {self.mode!r}.")
        target = datafile._default_copy_target()
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".staging-")) / target.name
        if keeps_content and stat is not None:
            shutil.copyfile(datafile.local_path, staging)
        return staging

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        if self.file is not None:
            self.file.close()
        try:
            if exc_type is None:
                self._save()
        finally:
            self._discard_staging()

    def _save(self) -> None:
        datafile = self.datafile
        if not datafile._update_metadata_on_exit and not self.writing:
            return
        if datafile._origin_is_cloud:
            if self.writing:
                self._commit_staging()
            elif datafile.metadata_changed:
                datafile.update_metadata()
            return
        if self.writing or datafile.metadata_changed:
            if datafile._update_metadata_on_exit:
                datafile._write_local_metadata()
                datafile._mark_saved()
            if self.writing and datafile._stat_known and datafile._stat is not None:
                datafile.upload(update_metadata=datafile._update_metadata_on_exit)

    def _commit_staging(self) -> None:
        """Make the staged bytes the local copy, then upload; a failed upload keeps them on disk."""
        datafile = self.datafile
        assert self.staging is not None
        target = datafile._default_copy_target()
        os.replace(self.staging, target)
        datafile._local_file = target
        try:
            datafile.upload(update_metadata=datafile._update_metadata_on_exit)
        except (OctuefsError, OSError) as error:
            error.add_note(f"The new content of {datafile.path} is kept at {target}; call upload() to retry.")
            raise

    def _discard_staging(self) -> None:
        if self.staging is not None:
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(self.staging.parent)
