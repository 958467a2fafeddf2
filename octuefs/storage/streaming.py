"""Uploads fed while a file is still being written, so closing it only sends the last part.

A file copied in through the mount would otherwise be uploaded whole after `close()`, doubling
the time a copy takes. A GCS resumable upload session accepts the object in pieces (each a
multiple of 256 KiB but the last), so the bytes of a file written front to back can go up while
the writer is still writing; the session is created with the object's complete metadata and its
generation precondition, exactly as a whole upload would carry them. Bodies are streamed from the
staged file, never held in memory.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator, Mapping
from typing import Protocol

import google_crc32c

from octuefs.errors import OctuefsError
from octuefs.storage.objects import ObjectStat
from octuefs.storage.paths import CloudLocation

# Held in memory per block of a body being sent.
READ_BLOCK = 1024 * 1024


class FileRange:
    """Bytes [start, end) of an open file as a sized body that requests streams block by block.

    Iterable rather than readable: the HTTP stack reads readable bodies 16 KiB at a time, a Python
    call each, while it sends each block an iterator yields as it is.
    """

    def __init__(self, fd: int, start: int, end: int, checksum: google_crc32c.Checksum | None = None) -> None:
        self.fd = fd
        self.start = start
        self.end = end
        self.checksum = checksum

    def __len__(self) -> int:
        return self.end - self.start

    def __iter__(self) -> Iterator[bytes]:
        for position in range(self.start, self.end, READ_BLOCK):
            size = min(READ_BLOCK, self.end - position)
            data = os.pread(self.fd, size, position)
            if len(data) != size:
                raise OSError(f"the staged file ended at {position + len(data)} while {self.end} bytes were due")
            if self.checksum is not None:
                self.checksum.update(data)
            yield data


class UploadSessions(Protocol):
    """What a storage offers a resumable upload session: the session is named by a string the storage
    gave out (GCS: the session URL)."""

    def send_part(self, session: str, location: CloudLocation, body: FileRange) -> None: ...

    def finish_session(
        self, session: str, location: CloudLocation, body: FileRange, size: int, crc32c: str
    ) -> ObjectStat: ...

    def cancel_session(self, session: str) -> None: ...

    def own_lost_upload(
        self, bucket: str, name: str, crc32c: str, size: int, metadata: Mapping[str, str]
    ) -> ObjectStat | None: ...


class StreamingUpload:
    """One object going up in parts from a file still being written (see `Storage.start_upload`)."""

    def __init__(
        self, storage: UploadSessions, location: CloudLocation, session: str, metadata: Mapping[str, str]
    ) -> None:
        self.storage = storage
        self.location = location
        self.session = session
        self.metadata = dict(metadata)
        self.final_crc32c: str | None = None
        self.sent = 0
        self.checksum = google_crc32c.Checksum()

    def send(self, fd: int, end: int) -> None:
        """Bytes [sent, end) of the file, `end - sent` a multiple of 256 KiB, to be followed by more."""
        self.storage.send_part(self.session, self.location, FileRange(fd, self.sent, end, self.checksum))
        self.sent = end

    def finish(self, fd: int, size: int) -> ObjectStat:
        """The rest of the file, which makes the object; the server checks the crc32c of all its bytes."""
        whole = self.checksum.copy()
        for _ in FileRange(fd, self.sent, size, whole):
            pass
        self.final_crc32c = base64.b64encode(whole.digest()).decode()
        rest = FileRange(fd, self.sent, size)
        made = self.storage.finish_session(self.session, self.location, rest, size, self.final_crc32c)
        self.sent = size
        return made

    def made(self, size: int) -> ObjectStat | None:
        """After a failed finish: the object, if the server made it and only its reply was lost, so that
        a stored upload is not sent again into a conflict."""
        if self.final_crc32c is None:
            return None
        bucket, name = self.location.bucket, self.location.name
        try:
            return self.storage.own_lost_upload(bucket, name, self.final_crc32c, size, self.metadata)
        except OctuefsError:
            return None

    def cancel(self) -> None:
        """Drop the session; failures do not matter."""
        self.storage.cancel_session(self.session)
