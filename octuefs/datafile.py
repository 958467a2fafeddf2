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
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from octuefs import cloud_metadata, datafile_primitive, filters
from octuefs.errors import (
    CloudLocationNotSpecified,
    CloudObjectNotFound,
    InvalidInputException,
    LocalFileNotFound,
    MalformedMetadataError,
    MalformedMetadataWarning,
    OctuefsError,
    ReadOnlyResource,
)
from octuefs.metadata.codec import decode_fields, decode_local, encode_fields, encode_local, metadata_hash
from octuefs.metadata.labels import LabelSet
from octuefs.metadata.local_store import METADATA_FILENAME, LocalMetadataStore
from octuefs.metadata.model import OctueMetadata, derived_id, new_id, normalise_id, parse_timestamp
from octuefs.metadata.tags import TagDict
from octuefs.metadata.values import decode_primitive, dumps
from octuefs.reader import RangedFile, library_reader
from octuefs.storage import signed_urls
from octuefs.storage.gcs import get_storage
from octuefs.storage.objects import EMPTY_CRC32C, ObjectStat, crc32c_of_file
from octuefs.storage.paths import CloudLocation, has_unsupported_scheme, is_cloud_path, is_url

HDF5_EXTENSIONS = frozenset({"hdf5", "h5"})
HDF5_MODES = frozenset({"r", "r+", "w", "w-", "x", "a"})
LOCAL_NAME_MAX = 255  # bytes in one path segment on Linux
# Built from Python's own table only, so the guess never depends on the machine's /etc/mime.types.
_MIME_TYPES = mimetypes.MimeTypes()


def guess_content_type(name: str) -> str:
    return _MIME_TYPES.guess_type(name)[0] or "application/octet-stream"


def is_local_name(segment: str) -> bool:
    """Whether a segment of an object name can name a file inside a local directory.

    GCS names may hold empty segments (`a//b`, a trailing `/`), `.` and `..`, a NUL, or segments over
    Linux's 255-byte NAME_MAX; joined to a directory such a segment means the directory itself, its
    parent, or an error.
    """
    fits = len(segment.encode("utf-8", "surrogateescape")) <= LOCAL_NAME_MAX
    return segment not in ("", ".", "..") and "\0" not in segment and fits


def is_writing_mode(mode: str, hdf5: bool = False) -> bool:
    return mode != "r" if hdf5 else any(character in mode for character in "wax+")


@dataclass(frozen=True)
class UploadRequest:
    """One upload of content with its complete custom metadata, guarded by a generation precondition."""

    location: CloudLocation
    metadata: dict[str, str]
    content_type: str
    if_generation_match: int
    # The first bytes of a staged file that are a hole standing for the object's own content (at generation
    # `if_generation_match`): only what follows them is sent, and joined on in the cloud (see octuefs.uploads).
    base_size: int = 0

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
        self._name: str | None = kwargs.pop("name", None)
        self._init_open_defaults(mode, update_metadata, kwargs)
        given = {
            "id": normalise_id(id) if id is not None else None,
            "timestamp": parse_timestamp(timestamp),
            "tags": TagDict(tags),
            "labels": LabelSet(labels),
        }
        path = os.fspath(path)
        if has_unsupported_scheme(path):
            raise InvalidInputException(f"{path!r}: only gs://bucket/name, http(s) URLs and local paths are supported.")
        if is_url(path):
            self._init_cloud(signed_urls.url_location(path), signed_urls.stat_url(path), local_path)
            self._url = path
        elif is_cloud_path(path):
            location = CloudLocation.parse(path)
            self._init_cloud(location, get_storage().stat(location.bucket, location.name), local_path)
        else:
            self._init_local(Path(path).absolute(), CloudLocation.parse(cloud_path) if cloud_path else None)
        if ignore_stored_metadata:
            stored = {}
        elif self._origin_is_cloud:
            stored = cloud_metadata.stored_fields(self._stat) if self._stat else {}
        else:
            stored = self._stored_local_fields()
        self._set_metadata({**{key: value for key, value in given.items() if value is not None}, **stored})
        if cloud_path and self._local_content() is not None:
            # As Octue's constructor does (through its `cloud_path` setter); a file not written yet goes up
            # when a write block closes.
            self.upload()

    def _init_open_defaults(self, mode: str, update_metadata: bool, open_kwargs: dict[str, Any] | None = None) -> None:
        """What `with Datafile(path, mode=..., encoding=...) as (datafile, f):` opens with: Octue passes any
        other constructor keyword on to `open`."""
        self._open_mode = mode
        self._open_kwargs = open_kwargs or {}
        self._update_metadata_on_exit = update_metadata
        self._open_context: _OpenContext | None = None

    def _init_cloud(self, location: CloudLocation, stat: ObjectStat | None, local_path: Any = None) -> None:
        self._origin_is_cloud = True
        self._url: str | None = None
        self._location: CloudLocation | None = location
        self._stat: ObjectStat | None = stat
        self._stat_known = True
        self._local_file: Path | None = None
        self._local_copy_target = Path(local_path).absolute() if local_path else None

    def _init_local(self, path: Path, location: CloudLocation | None) -> None:
        self._origin_is_cloud = False
        self._url = None
        self._location = location
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
    def _unnamed_for_reading(cls) -> Datafile:
        """A datafile to be filled in by one of the constructors below, with `Datafile()`'s defaults."""
        datafile = cls.__new__(cls)
        datafile._name = None
        datafile._init_open_defaults("r", True)
        return datafile

    @classmethod
    def from_object_stat(cls, stat: ObjectStat, ignore_stored_metadata: bool = False) -> Datafile:
        """A cloud datafile from what a listing already returned: no request."""
        datafile = cls._unnamed_for_reading()
        datafile._init_cloud(stat.location, stat)
        datafile._set_metadata({} if ignore_stored_metadata else cloud_metadata.stored_fields(stat))
        return datafile

    @classmethod
    def for_new_object(cls, bucket: str, name: str, heir_to: Datafile | None = None) -> Datafile:
        """A cloud datafile for an object about to be created: a fresh id and no request, or the Octue
        metadata of `heir_to`, the file it takes the place of (an editor's save)."""
        datafile = cls._unnamed_for_reading()
        datafile._init_cloud(CloudLocation(bucket, name), None)
        datafile._set_metadata({} if heir_to is None else vars(heir_to.octue_metadata.copy()))
        return datafile

    def _stored_local_fields(self) -> dict[str, Any]:
        """The file's `.octue` entry; a `.octue` that is not JSON is reported and read as empty (writing
        metadata then refuses to replace it, so nothing in it is lost)."""
        assert self._local_file is not None
        try:
            entry = LocalMetadataStore(self._local_file.parent).datafile_entry(self._local_file.name)
        except MalformedMetadataError as error:
            warnings.warn(f"{error} Its metadata is read as empty.", MalformedMetadataWarning, stacklevel=3)
            return {}
        return decode_local(entry, f"{self._local_file.parent / METADATA_FILENAME}[{self.name}]") if entry else {}

    # Identity and location ------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._metadata.id

    @property
    def path(self) -> str:
        return self.cloud_path if self._origin_is_cloud else str(self._local_file)  # type: ignore[return-value]

    @property
    def name(self) -> str:
        """The file's base name, unless one was given (Octue's `name=`, e.g. from a serialised datafile)."""
        if self._name:
            return self._name
        return os.path.basename(self._location.name if self._origin_is_cloud else self._local_file)  # type: ignore[union-attr,arg-type]

    @property
    def extension(self) -> str:
        return os.path.splitext(self.name)[1].lstrip(".")

    @property
    def cloud_path(self) -> str | None:
        """`gs://bucket/name`, or the URL for a datafile read through one."""
        return self._url or (self._location.path if self._location else None)

    @cloud_path.setter
    def cloud_path(self, path: str | None) -> None:
        """A new cloud path uploads there (as Octue does); None detaches the datafile from the cloud."""
        if path is not None:
            self.upload(cloud_path=path)
            return
        if self._local_content() is None:
            raise CloudLocationNotSpecified(
                f"{self.path}: the cloud path cannot be reset because this datafile only exists in the cloud."
            )
        self._origin_is_cloud = False
        self._url = self._location = self._stat = self._local_copy_target = None
        self._stat_known = False

    @property
    def cloud_protocol(self) -> str | None:
        """`gs`, or the URL's scheme, for a datafile in the cloud (Octue's `CloudPathable.cloud_protocol`)."""
        if self._location is None:
            return None
        return self._url.partition("://")[0] if self._url else "gs"

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
        """True when the datafile has a cloud location, as Octue defines it (`cloud_stat` says whether the
        object is there)."""
        return self._location is not None

    @property
    def exists_locally(self) -> bool:
        """True for a local datafile (as Octue defines it, whether or not the file is written yet), and for a
        cloud one once a complete local copy is held."""
        return not self._origin_is_cloud or self._local_content() is not None

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
    def local_path(self, path: str | os.PathLike[str] | None) -> None:
        """Put the content at a new local path (copying the local copy, else downloading), or with None
        forget the local copy of a datafile that is in the cloud."""
        if path is None:
            if self._location is None:
                raise CloudLocationNotSpecified(
                    f"{self.path}: the local path cannot be reset because this datafile only exists locally."
                )
            self._origin_is_cloud = True
            self._local_file = self._local_copy_target = None
            return
        target = Path(path).absolute()
        if target.exists():
            raise FileExistsError(f"{target}: already exists; give a new path for the content of {self.path}.")
        existing = self._local_content()
        if existing is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(existing, target)
        elif self._location is None:
            raise LocalFileNotFound(f"{self._local_file}: no such file to copy to {target}.")
        else:
            self.download(target)
        self._local_file = target
        if self._origin_is_cloud:
            self._local_copy_target = target

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
        """Whether the metadata differs from what is stored; the order of tags is no change (a datafile
        rebuilt from Octue's serialised text, whose keys are sorted, has them in another order)."""
        return dumps(encode_fields(self._metadata), sort_keys=True) != dumps(encode_fields(self._saved), sort_keys=True)

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
        self._open_context = self.open(self._open_mode, **self._open_kwargs)
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
        """The object's base name, unless no local file can have it (`is_local_name`): then a stable name
        derived from the whole object name stands in."""
        if is_local_name(self.name):
            return self.name
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
        self._fetch(stat, target)
        if self._origin_is_cloud:
            self._local_file = target
            self._local_copy_target = target
        return str(target)

    def _fetch(self, stat: ObjectStat, target: Path) -> None:
        if self._url:
            signed_urls.download_url(self._url, stat, target)
        else:
            get_storage().download(stat, target)

    def _require_writable(self, action: str) -> None:
        if self._url:
            raise ReadOnlyResource(f"{self._url}: read through a URL, so it cannot {action}; open it with mode 'r'.")

    def generate_signed_url(self, expiration: timedelta | datetime = signed_urls.DEFAULT_EXPIRATION) -> str:
        """A URL anyone can read this cloud object through, with no credentials, until `expiration`."""
        if self._location is None:
            raise CloudLocationNotSpecified(f"{self.path}: must exist in the cloud for a signed URL to be made for it.")
        return signed_urls.generate_signed_url(self._location, expiration)

    def upload(
        self, cloud_path: str | None = None, update_metadata: bool = True, update_cloud_metadata: bool | None = None
    ) -> str:
        """Put content and metadata in the cloud: one upload if the bytes differ, else at most one PATCH."""
        self._require_writable("be uploaded")
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
        request = self._upload_request(target, target_stat, update_metadata)
        return get_storage().upload(
            target.bucket, target.name, source, request.content_type, request.metadata, request.if_generation_match
        )

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
        """Save the metadata: one guarded PATCH for a cloud object, the `.octue` entry for a local file
        (and a PATCH of the object it was uploaded to, when there is one)."""
        self._require_writable("have its metadata updated")
        if not self._origin_is_cloud:
            self._write_local_metadata()
        stat = self._current_stat()
        if self._origin_is_cloud and stat is None:
            raise CloudObjectNotFound(f"{self.cloud_path}: no such object; upload it before updating its metadata.")
        if stat is not None:
            self._patch_metadata(stat)
        self._mark_saved()

    def update_cloud_metadata(self) -> None:
        """Save the metadata on the cloud object only: one guarded PATCH."""
        self._require_writable("have its metadata updated")
        if self._location is None:
            raise CloudLocationNotSpecified(f"{self.path}: has no cloud path; give one with upload(cloud_path).")
        stat = self._current_stat()
        if stat is None:
            raise CloudObjectNotFound(f"{self.cloud_path}: no such object; upload it before updating its metadata.")
        self._patch_metadata(stat)
        if self._origin_is_cloud:
            self._mark_saved()

    def update_local_metadata(self) -> None:
        """Save the metadata in the `.octue` file beside the local file (or beside a cloud datafile's copy)."""
        if self._local_file is None:
            raise LocalFileNotFound(f"{self.path}: has no local copy to write a {METADATA_FILENAME} entry beside.")
        self._write_local_metadata()
        if not self._origin_is_cloud:
            self._mark_saved()

    def _patch_metadata(self, stat: ObjectStat) -> None:
        self._stat, self._metadata = cloud_metadata.write_metadata(get_storage(), stat, self._saved, self._metadata)

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

    # Serialisation (Octue's protocol, see `octuefs.datafile_primitive`) ----------------------

    def to_primitive(self) -> dict[str, Any]:
        """Octue's fields as Python values; `path` is the local copy when there is one, as in Octue."""
        local = str(self._local_file) if self.exists_locally and self._local_file else None
        stat = self._stat if self._stat_known else None
        return {
            "id": self.id,
            "timestamp": self.timestamp,
            "tags": dict(self.tags),
            "labels": sorted(self.labels),
            "name": self.name,
            "local_path": local,
            "cloud_path": self.cloud_path,
            "_cloud_metadata": datafile_primitive.cloud_metadata_primitive(stat, self._origin_is_cloud),
            "path": local or self.cloud_path,
        }

    def serialise(self, **kwargs: Any) -> str:
        """JSON text as Octue writes it (sorted keys, indent 4); `kwargs` go to `json.dumps`."""
        return dumps(self.to_primitive(), **{"sort_keys": True, "indent": 4, **kwargs})

    def to_file(self, path: str | os.PathLike[str], **kwargs: Any) -> None:
        """Write `serialise()`'s text to a file (Octue's `Serialisable.to_file`)."""
        Path(path).write_text(self.serialise(**kwargs))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Datafile:
        """Rebuild a datafile from a file `to_file` wrote (Octue's `Serialisable.from_file`)."""
        return cls.deserialise(Path(path).read_text())

    @classmethod
    def deserialise(cls, serialised_datafile: str | Mapping[str, Any], from_string: bool = False) -> Datafile:
        """Rebuild a datafile from `serialise()` text or a `to_primitive()` dict (`from_string` is Octue's
        flag; text is recognised either way). The metadata sent wins over what is stored; a cloud
        datafile whose object record was sent costs no request. A local copy that is not on this machine
        (the sender's download) is left behind: the datafile is read from the cloud instead."""
        data = decode_primitive(serialised_datafile, InvalidInputException, "A serialised datafile")
        stat, origin_is_cloud = datafile_primitive.known_object(data.pop("_cloud_metadata", None))
        fields = {key: data.pop(key, None) for key in ("id", "timestamp", "tags", "labels")}
        path = data.pop("path", None) or data.get("local_path") or data.get("cloud_path")
        cloud_path, local_path = data.get("cloud_path"), data.get("local_path")
        if cloud_path and local_path and not Path(local_path).exists():
            path, local_path, origin_is_cloud = cloud_path, None, True
            data["local_path"] = None
        if stat is None:
            return cls(path, ignore_stored_metadata=True, **fields, **data)
        datafile = cls._unnamed_for_reading()
        datafile._name = data.get("name")
        if origin_is_cloud:
            datafile._init_cloud(stat.location, stat, local_path)
            datafile._url = cloud_path if is_url(cloud_path) else None
        else:
            datafile._init_local(Path(path).absolute(), stat.location)
            datafile._stat, datafile._stat_known = stat, True
        datafile._set_metadata(decode_fields(fields, str(path)))
        if origin_is_cloud:
            # What the object holds is what is saved: changes sent unsaved are still changes.
            datafile._saved = cloud_metadata.metadata_of(stat)
        return datafile

    def __repr__(self) -> str:
        return f"<{type(self).__name__}({self.name!r})>"

    def _name_to_compare(self, other: object) -> str:
        if not isinstance(other, Datafile):
            raise TypeError(f"An object of type {type(self)} cannot be compared with {type(other)}.")
        return other.name

    def __lt__(self, other: object) -> bool:
        """Datafiles order by name, as Octue's do."""
        return self.name < self._name_to_compare(other)

    def __gt__(self, other: object) -> bool:
        return self.name > self._name_to_compare(other)

    def satisfies(self, raise_error_if_filter_is_invalid: bool = True, **lookup: Any) -> bool:
        """Whether this datafile passes one Octue filter lookup (`name__ends_with=".csv"`), as Octue's
        `Filterable.satisfies` answers it; the same rules `dataset.files.filter` applies."""
        return filters.satisfies(self, raise_error_if_filter_is_invalid, **lookup)


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
            datafile._require_writable(f"be opened with mode {self.mode!r}")
            path = self.staging = self._prepare_staging()
        elif self.hdf5 and datafile._local_content() is None and not datafile._url:
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
            if self.writing and datafile._location is not None:
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
