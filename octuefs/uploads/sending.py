"""How a staged file's bytes go up as its request says: whole, only the bytes after its hole (joined
onto the object by compose), or in parts while it is still written. The choice between them and the
fallbacks are `Uploader`'s; recovery after a crash sends a record the same way."""

from __future__ import annotations

from pathlib import Path

from octuefs.datafile import UploadRequest
from octuefs.storage.interface import Storage
from octuefs.storage.objects import ObjectStat
from octuefs.storage.streaming import StreamingUpload


def send(storage: Storage, request: UploadRequest, source: Path) -> ObjectStat:
    location, content_type, metadata = request.location, request.content_type, request.metadata
    if request.base_size:
        return storage.append(
            location.bucket,
            location.name,
            source,
            request.base_size,
            content_type,
            metadata,
            request.if_generation_match,
        )
    return storage.upload(location.bucket, location.name, source, content_type, metadata, request.if_generation_match)


def stream(storage: Storage, request: UploadRequest) -> StreamingUpload:
    """Start sending a file that is still being written (see `octuefs.storage.streaming`)."""
    return storage.start_upload(request.location, request.content_type, request.metadata, request.if_generation_match)
