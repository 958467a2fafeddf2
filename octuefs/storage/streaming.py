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
import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import google_crc32c
import requests
from google.api_core import exceptions as api_exceptions

from octuefs.errors import OctuefsError
from octuefs.storage.gcs import ObjectStat
from octuefs.storage.paths import CloudLocation

if TYPE_CHECKING:
    from octuefs.storage.gcs import GCSStorage

# Held in memory per block of a body being sent.
READ_BLOCK = 1024 * 1024
RESUME_INCOMPLETE = 308


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


class StreamingUpload:
    def __init__(self, storage: GCSStorage, location: CloudLocation, url: str, metadata: Mapping[str, str]) -> None:
        self.storage = storage
        self.location = location
        self.url = url
        self.metadata = dict(metadata)
        self.final_crc32c: str | None = None
        self.sent = 0
        self.checksum = google_crc32c.Checksum()

    @classmethod
    def begin(
        cls,
        storage: GCSStorage,
        location: CloudLocation,
        content_type: str,
        metadata: Mapping[str, str],
        if_generation_match: int,
    ) -> StreamingUpload:
        """Open the session with everything a whole upload would carry but the bytes."""
        blob = storage._blob(location.bucket, location.name)
        blob.metadata = dict(metadata)
        with storage._request("upload", location, "start an upload"):
            url = blob.create_resumable_upload_session(
                content_type=content_type,
                if_generation_match=if_generation_match,
                checksum=None,
                timeout=storage._timeout,
                retry=storage._retry,
            )
        return cls(storage, location, url, metadata)

    def send(self, fd: int, end: int) -> None:
        """Bytes [sent, end) of the file, `end - sent` a multiple of 256 KiB, to be followed by more."""
        body = FileRange(fd, self.sent, end, self.checksum)
        self._put(body, f"bytes {self.sent}-{end - 1}/*", {}, (RESUME_INCOMPLETE,), "upload a part")
        self.sent = end

    def finish(self, fd: int, size: int) -> ObjectStat:
        """The rest of the file, which makes the object; the server checks the crc32c of all its bytes."""
        whole = self.checksum.copy()
        for _ in FileRange(fd, self.sent, size, whole):
            pass
        self.final_crc32c = base64.b64encode(whole.digest()).decode()
        digest = {"X-Goog-Hash": f"crc32c={self.final_crc32c}"}
        span = f"bytes {self.sent}-{size - 1}/{size}" if size > self.sent else f"bytes */{size}"
        response = self._put(FileRange(fd, self.sent, size), span, digest, (200, 201), "finish the upload")
        self.sent = size
        return ObjectStat.from_resource(self.location.bucket, response.json())

    def made(self, size: int) -> ObjectStat | None:
        """After a failed finish: the object, if the server made it and only its reply was lost, so that
        a stored upload is not sent again into a conflict."""
        if self.final_crc32c is None:
            return None
        bucket, name = self.location.bucket, self.location.name
        try:
            return self.storage._own_lost_upload(bucket, name, self.final_crc32c, size, self.metadata)
        except OctuefsError:
            return None

    def cancel(self) -> None:
        """Drop the session (it would otherwise linger on the server for a week); failures do not matter."""
        with contextlib.suppress(requests.RequestException):
            self.storage.client._http.delete(self.url, timeout=self.storage._timeout)

    def _put(
        self, body: FileRange, span: str, headers: dict[str, str], expected: tuple[int, ...], action: str
    ) -> requests.Response:
        length = len(body)
        headers = {**headers, "Content-Range": span, "Content-Length": str(length)}
        with self.storage._request("upload", self.location, action):
            http = self.storage.client._http
            response = http.put(self.url, data=body, headers=headers, timeout=self.storage._timeout)
            if response.status_code not in expected:
                raise api_exceptions.from_http_response(response)
        self.storage.stats.moved(up=length)
        return response
