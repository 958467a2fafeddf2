"""The one Google Cloud Storage client of the process and every request octuefs sends.

Everything that crosses the network is here, so retries, timeouts, preconditions, checksum
checks and error translation are decided once. The same code serves real GCS (Application
Default Credentials) and a GCS-compatible server named by `--endpoint` or
`STORAGE_EMULATOR_HOST` (anonymous credentials), so tests and the demo exercise production code.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import google_crc32c
import requests
import urllib3
from google.api_core import exceptions as api_exceptions
from google.api_core.retry import Retry
from google.cloud import storage
from google.cloud.storage.retry import _should_retry

from octuefs.errors import (
    ChecksumMismatch,
    OctuefsError,
    PreconditionConflict,
    ServerLost,
    ServerUnavailable,
    StorageError,
)
from octuefs.storage.attempts import BoundedRetry, GuardedAdapter, ReadLatencies, describe, transient
from octuefs.storage.health import ServerHealth
from octuefs.storage.interface import Storage
from octuefs.storage.objects import (
    Listing,
    ObjectStat,
    RequestStats,
    StorageSettings,
    crc32c_of_bytes,
    crc32c_of_file,
    missing,
    refused,
    report_progress,
)
from octuefs.storage.paths import CloudLocation
from octuefs.storage.streaming import FileRange, StreamingUpload

logger = logging.getLogger(__name__)

DEFAULT_PROJECT = "octuefs"
# What GCS answers to each part of a resumable upload but the last.
RESUME_INCOMPLETE = 308
# Where appended bytes wait for the compose that joins them on (as gcsfuse keeps `.gcsfuse_tmp/`).
TEMPORARY_PREFIX = ".octuefs_tmp/"
# The breaker's probe: one GET of a bucket recently used, answered within this or counted failed. A bucket
# GET is answered in well under a second; 3 s bounds what confirming an outage adds to the first failure.
PROBE_TIMEOUT = 3.0


class _ReportingReader:
    """A file being uploaded, reporting what the client reads of it."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        report_progress(len(data))
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


class _RetriedLog:
    """A retry predicate that remembers letting a transient failure be retried: a 412 after one may be
    the answer to our own first attempt, applied by the server but with its reply lost."""

    def __init__(self) -> None:
        self.any = False

    def __call__(self, error: Exception) -> bool:
        if _should_retry(error):
            self.any = True
            return True
        return False


class ChecksummingWriter:
    """A write-only file that computes the crc32c of what passes through it."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self._checksum = google_crc32c.Checksum()

    def write(self, data: bytes) -> int:
        self._checksum.update(data)
        report_progress(len(data))
        return self._file.write(data)

    def flush(self) -> None:
        self._file.flush()

    @property
    def crc32c(self) -> str:
        return base64.b64encode(self._checksum.digest()).decode()


@contextlib.contextmanager
def _translated_errors(location: CloudLocation | str, action: str, health: ServerHealth) -> Iterator[None]:
    """Turn client exceptions into octuefs errors that name the object and what was being done; an
    operation that retried transient failures until its deadline tells `health`."""
    try:
        yield
    except ServerLost as error:
        raise ServerUnavailable(f"{location}: could not {action}: {error}") from None
    except api_exceptions.NotFound:
        raise missing(location, action) from None
    except api_exceptions.PreconditionFailed:
        raise refused(location, action) from None
    except api_exceptions.GoogleAPICallError as error:
        if _should_retry(error):
            raise ServerUnavailable(f"{location}: server failed to {action}: {error.code} {error.message}") from None
        raise StorageError(f"{location}: server refused to {action}: {error.code} {error.message}") from None
    except api_exceptions.RetryError as error:
        # When retries of a transient failure (503, reset connection) outlast the deadline, the client
        # raises RetryError, which is no GoogleAPICallError: without this it escapes untyped and unnamed.
        health.gave_up(describe(error.cause) if error.cause is not None else "retry deadline passed")
        raise ServerUnavailable(f"{location}: gave up trying to {action} after retrying: {error.cause}") from None
    except (requests.RequestException, ConnectionError, TimeoutError) as error:
        if _should_retry(error) or isinstance(error, TimeoutError):
            raise ServerUnavailable(f"{location}: could not {action}: {error}") from None
        raise StorageError(f"{location}: could not {action}: {error}") from None


def _stat_of(blob: storage.Blob) -> ObjectStat:
    return ObjectStat.from_resource(blob.bucket.name, blob._properties)


class GCSStorage(Storage):
    """Requests to GCS; thread-safe, one per process (see `get_storage`)."""

    def __init__(self, settings: StorageSettings) -> None:
        self.settings = settings
        self.health = ServerHealth(self._probe)
        self._client = self._build_client(settings, self.health)
        self._timeout = (settings.connect_timeout, settings.read_timeout)
        # DEFAULT_RETRY (the client's predicate and backoff), its deadline also bounding each attempt.
        self._retry: Retry = BoundedRetry(predicate=_should_retry, timeout=settings.retry_deadline)
        self._latencies = ReadLatencies(settings.read_timeout)
        # The bucket the probe asks about: one recently used, so the probe sees what requests see.
        self._recent_bucket = "octuefs-probe"
        self.stats = RequestStats()

    @contextlib.contextmanager
    def _request(self, kind: str, location: CloudLocation | str, action: str) -> Iterator[None]:
        """Every operation runs inside this: errors translated, counted, and logged with timing (debug)."""
        started = time.monotonic()
        failed = True
        self._recent_bucket = (
            location.bucket if isinstance(location, CloudLocation) else location.removeprefix("gs://").split("/")[0]
        )
        try:
            with _translated_errors(location, action, self.health):
                yield
            failed = False
        finally:
            self.stats.record(kind, failed)
            elapsed = (time.monotonic() - started) * 1000
            fields = {"request": kind, "object": str(location), "outcome": "failed" if failed else "ok", "ms": elapsed}
            logger.debug(
                "%s %s: %s, %.1f ms%s", kind, location, action, elapsed, " (failed)" if failed else "", extra=fields
            )

    @staticmethod
    def _build_client(settings: StorageSettings, health: ServerHealth) -> storage.Client:
        endpoint = settings.resolved_endpoint
        if endpoint:
            from google.auth.credentials import AnonymousCredentials

            client = storage.Client(
                project=settings.project or DEFAULT_PROJECT,
                credentials=AnonymousCredentials(),
                client_options={"api_endpoint": endpoint},
            )
        else:
            client = storage.Client(project=settings.project)
        # Newer clients fetch each bucket's resource in a background thread for tracing spans: a request
        # per bucket that octuefs never asked for and that would break its request budgets.
        client._bucket_metadata_cache = None
        # Many requests run in parallel (readahead, FUSE threads); the default pool of 10 would serialise them.
        adapter = GuardedAdapter(health, settings.retry_deadline, pool_connections=4, pool_maxsize=settings.pool_size)
        client._http.mount("http://", adapter)
        client._http.mount("https://", adapter)
        return client

    def _blob(self, bucket: str, name: str, generation: int | None = None) -> storage.Blob:
        return self._client.bucket(bucket).blob(name, generation=generation)

    def _get_json(self, url: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """One JSON API GET on the client's authorised session.

        Listings use it directly: building a client Blob object per listed item costs more than
        the listing request itself for directories of thousands of objects.
        """
        response = self._client._http.get(url, params=parameters, timeout=self._timeout)
        if response.status_code != 200:
            raise api_exceptions.from_http_response(response)
        return response.json()

    def bucket_exists(self, bucket: str, deadline: float = 10.0) -> bool:
        """One bucket GET with a short retry deadline, so a mount fails fast when the server is down.

        Sent even while the server is thought lost: the user asked for this check, and its answer is
        the freshest news of the server (a success finds it again)."""
        with self._request("bucket", f"gs://{bucket}", "look up the bucket"), self.health.bypassing():
            found = self._client.lookup_bucket(
                bucket, retry=self._retry.with_timeout(deadline), timeout=(min(deadline, 5.0), deadline)
            )
        return found is not None

    def _probe(self) -> None:
        """The breaker's probe: one bucket GET, no retry; any answer but a transient failure will do (a
        404 or 403 too: the server is there)."""
        url = f"{self._client._connection.API_BASE_URL}/storage/v1/b/{quote(self._recent_bucket, safe='')}"
        response = self._client._http.get(url, params={"fields": "name"}, timeout=(PROBE_TIMEOUT, PROBE_TIMEOUT))
        if transient(response.status_code):
            raise api_exceptions.from_http_response(response)

    def create_bucket(self, bucket: str) -> None:
        """A new bucket in the client's project (the demo seeds one)."""
        with self._request("bucket", f"gs://{bucket}", "create the bucket"):
            self._client.create_bucket(bucket, retry=self._retry, timeout=self._timeout)

    @property
    def credentials(self) -> Any:
        """The client's own credentials: a signed URL is signed with them when they can sign."""
        return self._client._credentials

    def signed_url(self, location: CloudLocation, expiration: Any, signing: Mapping[str, Any]) -> str:
        """A V4 URL reading `location` with GET until `expiration`; `signing` says who signs (signed_urls.py)."""
        blob = self._client.bucket(location.bucket).blob(location.name)
        endpoint = self.settings.resolved_endpoint
        options = {**signing, **({"api_access_endpoint": endpoint} if endpoint else {})}
        with self._request("sign", location, "sign a URL for it"):
            return blob.generate_signed_url(expiration=expiration, method="GET", version="v4", **options)

    def stat(self, bucket: str, name: str) -> ObjectStat | None:
        """One GET of the object's resource; None when it does not exist. Sent as listings are (see
        `_get_json`): every lookup of a name not listed yet waits for it, and the library's Blob took
        longer than the request itself (3.2 ms for a lookup on 127.0.0.1)."""
        location = CloudLocation(bucket, name)
        url = f"{self._client._connection.API_BASE_URL}/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}"
        with self._request("stat", location, "read its metadata"):
            try:
                resource = self._retry(self._get_json)(url, {"projection": "noAcl"})
            except api_exceptions.NotFound:
                return None
        return ObjectStat.from_resource(bucket, resource)

    def list(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str | None = None,
        page_size: int | None = None,
        limit: int | None = None,
        trailing_delimiter: bool = False,
    ) -> Listing:
        """Every object (with its metadata) and sub-prefix under `prefix`, through all result pages.

        GCS pages at 1000 objects by default; `page_size` asks for smaller pages; `limit` stops
        after that many results (enough to learn whether a prefix has anything under it).
        """
        objects: list[ObjectStat] = []
        prefixes: set[str] = set()
        url = f"{self._client._connection.API_BASE_URL}/storage/v1/b/{quote(bucket, safe='')}/o"
        parameters = {"projection": "noAcl", "prefix": prefix, "delimiter": delimiter, "maxResults": page_size or limit}
        if trailing_delimiter:
            parameters["includeTrailingDelimiter"] = "true"
        with self._request("list", f"gs://{bucket}/{prefix}", "list objects"):
            while True:
                page = self._retry(self._get_json)(url, {key: value for key, value in parameters.items() if value})
                objects.extend(ObjectStat.from_resource(bucket, item) for item in page.get("items", ()))
                prefixes.update(page.get("prefixes", ()))
                parameters["pageToken"] = page.get("nextPageToken")
                if not parameters["pageToken"] or (limit is not None and len(objects) + len(prefixes) >= limit):
                    break
        return Listing(objects, sorted(prefixes))

    def read_range(self, stat: ObjectStat, start: int, end: int) -> bytes:
        """Bytes [start, end) of exactly the generation in `stat`; a short body is an error, never data,
        and so is a whole object whose bytes do not match its crc32c (most files are read whole).

        This is the hot path of every mounted read, so it reads the response body in one call on the
        client's own authorised session: the library's download loop copies 8 KiB at a time and
        holds the interpreter lock throughout, which starves the FUSE threads.
        """
        end = min(end, stat.size)
        if start >= end:
            return b""
        blob = self._blob(stat.bucket, stat.name)
        url = f"{self._client._connection.API_BASE_URL}/download/storage/v1{blob.path}"
        parameters = {"alt": "media", "generation": str(stat.generation)}
        headers = {"Range": f"bytes={start}-{end - 1}", "Accept-Encoding": "identity"}

        def attempt() -> bytes:
            stall = self._latencies.timeout()
            started = time.monotonic()
            try:
                with self._client._http.get(
                    url, params=parameters, headers=headers, stream=True, timeout=(self.settings.connect_timeout, stall)
                ) as response:
                    if response.status_code not in (200, 206):
                        raise api_exceptions.from_http_response(response)
                    self._latencies.record(time.monotonic() - started)
                    data = response.raw.read(decode_content=False)
            except (requests.ReadTimeout, urllib3.exceptions.ReadTimeoutError):
                self._stalled(stat.location, f"bytes {start}-{end - 1}", stall)
                raise
            if response.status_code == 200:
                data = data[start:end]
            if len(data) != end - start:
                # A body cut short is a transport failure: retried, and never served as data.
                raise requests.exceptions.ChunkedEncodingError(
                    f"asked for {end - start} bytes at {start}, got {len(data)}"
                )
            if end - start == stat.size and stat.crc32c and crc32c_of_bytes(data) != stat.crc32c:
                # Damaged in transit (a ranged part cannot be checked alone): retried, never served.
                raise requests.exceptions.ChunkedEncodingError(
                    f"the object's bytes have crc32c {crc32c_of_bytes(data)}, the object says {stat.crc32c}"
                )
            return data

        with self._request("read", stat.location, f"read bytes {start}-{end - 1}"):
            data = self._retry(attempt)()
        self.stats.moved(down=len(data))
        return data

    def _stalled(self, location: CloudLocation, what: str, waited: float) -> None:
        """A ranged GET delivered nothing for `waited` seconds: it is abandoned (its retry asks again), and
        counted; its wait counts as a sample, so a server slow for everyone soon gets longer timeouts."""
        typical = self._latencies.typical()
        self._latencies.record(waited)
        if waited >= self._latencies.ceiling:
            return  # the configured read timeout itself: a plain timeout, not a stall cut short
        self.stats.stalled()
        logger.info(
            "%s: read of %s stalled (nothing for %.1f s; recent reads answered within %.0f ms): retrying",
            location,
            what,
            waited,
            (typical or 0.0) * 1000,
            extra={"object": str(location), "stalled_s": waited},
        )

    def download(self, stat: ObjectStat, destination: str | os.PathLike[str]) -> None:
        """Download exactly the generation in `stat`, verified against its crc32c, all or nothing.

        Bytes go to a temp file beside the destination and are renamed into place only after the
        checksum matches, so a failure never leaves a half file where the user expects data.
        """
        destination = Path(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part")
        try:
            with os.fdopen(handle, "wb") as file:
                writer = ChecksummingWriter(file)
                blob = self._blob(stat.bucket, stat.name, stat.generation)
                with self._request("download", stat.location, "download it"):
                    blob.download_to_file(
                        writer, checksum=None, raw_download=True, retry=self._retry, timeout=self._timeout
                    )
            if stat.crc32c and writer.crc32c != stat.crc32c:
                raise ChecksumMismatch(
                    f"{stat.location}: downloaded bytes have crc32c {writer.crc32c}, the object says "
                    f"{stat.crc32c}; the download was discarded."
                )
            os.replace(temporary, destination)
            self.stats.moved(down=stat.size)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    def upload(
        self,
        bucket: str,
        name: str,
        source: str | os.PathLike[str],
        content_type: str,
        metadata: Mapping[str, str],
        if_generation_match: int,
        offset: int = 0,
    ) -> ObjectStat:
        """Content (`source` from `offset` on), content type and custom metadata in one upload, only over
        the generation we expect.

        `if_generation_match=0` means "only if it does not exist yet". Files over one chunk go up
        as a resumable upload, so memory stays at one chunk whatever the file size.
        """
        blob = storage.Blob(name, self._client.bucket(bucket), chunk_size=self.settings.upload_chunk_size)
        blob.metadata = dict(metadata)
        size = os.path.getsize(source) - offset
        retried = _RetriedLog()
        try:
            with open(source, "rb") as file, self._request("upload", CloudLocation(bucket, name), "upload it"):
                file.seek(offset)
                blob.upload_from_file(
                    _ReportingReader(file),
                    size=size,
                    content_type=content_type,
                    if_generation_match=if_generation_match,
                    checksum="crc32c",
                    retry=self._retry.with_predicate(retried),
                    timeout=self._timeout,
                )
        except PreconditionConflict:
            crc32c = crc32c_of_file(source, offset=offset) if retried.any else None
            mine = self.own_lost_upload(bucket, name, crc32c, size, metadata) if crc32c else None
            if mine is None:
                raise
            self.stats.moved(up=size)
            return mine
        self.stats.moved(up=size)
        return _stat_of(blob)

    def append(
        self,
        bucket: str,
        name: str,
        source: str | os.PathLike[str],
        base_size: int,
        content_type: str,
        metadata: Mapping[str, str],
        if_generation_match: int,
    ) -> ObjectStat:
        """Replace the object by its `if_generation_match` generation followed by `source`'s bytes after
        `base_size`, with new metadata: the object's own bytes never travel.

        The new bytes go up as a temporary object that one compose joins on, guarded by the
        generation (another writer's newer object is never replaced); the temporary object is
        deleted whatever happens.
        """
        part_name = f"{TEMPORARY_PREFIX}{uuid.uuid4().hex}"
        part = self.upload(bucket, part_name, source, "application/octet-stream", {}, 0, offset=base_size)
        destination = self._blob(bucket, name)
        destination.metadata = dict(metadata)
        destination.content_type = content_type
        sources = [self._blob(bucket, name, if_generation_match), self._blob(bucket, part_name, part.generation)]
        retried = _RetriedLog()
        lost_reply: ObjectStat | None = None
        try:
            with self._request("compose", CloudLocation(bucket, name), f"append {part.size} bytes to it"):
                destination.compose(
                    sources,
                    if_generation_match=if_generation_match,
                    retry=self._retry.with_predicate(retried),
                    timeout=self._timeout,
                )
        except PreconditionConflict:
            # Refused after a retry: maybe the first attempt was applied and only its reply was lost.
            current = self.stat(bucket, name) if retried.any else None
            if current is None or current.generation == if_generation_match:
                raise
            if (current.size, dict(current.metadata)) != (base_size + part.size, dict(metadata)):
                raise
            lost_reply = current
        finally:
            try:
                self.delete(bucket, part_name, part.generation)
            except OctuefsError as error:
                logger.warning("gs://%s/%s: temporary part left behind: %s", bucket, part_name, error)
        joined = lost_reply or _stat_of(destination)
        if joined.generation == if_generation_match:
            # fake-gcs-server (the bundled server) composes in place, keeping the generation; GCS always
            # makes a new one. A generation must name one content (cached chunks and every precondition
            # rely on it), so copying the object onto itself gives the new bytes a generation of their own.
            joined = self.copy(joined, bucket, name, joined.metadata, joined.generation)
        return joined

    def patch_metadata(self, stat: ObjectStat, metadata: Mapping[str, str | None]) -> ObjectStat:
        """One metadata PATCH, applied only if nobody changed the object's metadata since `stat`."""
        blob = self._blob(stat.bucket, stat.name)
        blob.metadata = dict(metadata)
        with self._request("patch", stat.location, "update its metadata"):
            blob.patch(
                if_generation_match=stat.generation,
                if_metageneration_match=stat.metageneration,
                retry=self._retry,
                timeout=self._timeout,
            )
        patched = _stat_of(blob)
        # Some servers omit fields from a PATCH response; what we knew before still holds for them.
        return replace(
            stat,
            metadata=patched.metadata,
            metageneration=patched.metageneration or stat.metageneration,
            updated=patched.updated or stat.updated,
        )

    def copy(
        self,
        source: ObjectStat,
        bucket: str,
        name: str,
        metadata: Mapping[str, str],
        if_generation_match: int,
        content_type: str | None = None,
    ) -> ObjectStat:
        """Server-side copy of exactly `source`'s generation (no bytes through us), with new metadata.

        Used for renames; `if_generation_match` (0: the name must be free) keeps it from
        replacing an object another writer put there meanwhile.
        """
        destination = self._blob(bucket, name)
        destination.metadata = dict(metadata)
        destination.content_type = content_type or source.content_type
        source_blob = self._blob(source.bucket, source.name, source.generation)
        with self._request("copy", CloudLocation(bucket, name), f"copy {source.location} to it"):
            token, _, _ = destination.rewrite(
                source_blob, if_generation_match=if_generation_match, retry=self._retry, timeout=self._timeout
            )
            while token is not None:
                token, _, _ = destination.rewrite(
                    source_blob,
                    token=token,
                    if_generation_match=if_generation_match,
                    retry=self._retry,
                    timeout=self._timeout,
                )
        return _stat_of(destination)

    def delete(self, bucket: str, name: str, if_generation_match: int | None) -> None:
        """Delete the object, only at the generation we know when one is given."""
        with self._request("delete", CloudLocation(bucket, name), "delete it"):
            self._blob(bucket, name).delete(
                if_generation_match=if_generation_match, retry=self._retry, timeout=self._timeout
            )

    def create_placeholder(self, bucket: str, name: str, metadata: Mapping[str, str] | None = None) -> ObjectStat:
        """An empty `dir/` object, so an empty directory exists (with its attributes); only if the name is free."""
        blob = self._blob(bucket, name)
        blob.metadata = dict(metadata) if metadata else None
        with self._request("create", CloudLocation(bucket, name), "create it"):
            blob.upload_from_string(
                b"",
                content_type="application/x-directory",
                if_generation_match=0,
                retry=self._retry,
                timeout=self._timeout,
            )
        return _stat_of(blob)

    def create_small(self, bucket: str, name: str, data: bytes, metadata: Mapping[str, str]) -> ObjectStat:
        """A symbolic link or special file: a few bytes and metadata in one upload; only if the name is free."""
        blob = self._blob(bucket, name)
        blob.metadata = dict(metadata)
        with self._request("create", CloudLocation(bucket, name), "create it"):
            blob.upload_from_string(
                data,
                content_type="application/octet-stream",
                if_generation_match=0,
                retry=self._retry,
                timeout=self._timeout,
            )
        self.stats.moved(up=len(data))
        return _stat_of(blob)

    def start_upload(
        self, location: CloudLocation, content_type: str, metadata: Mapping[str, str], if_generation_match: int
    ) -> StreamingUpload:
        """A resumable upload session opened with everything a whole upload would carry but the bytes;
        GCS checks `if_generation_match` when the last part makes the object."""
        blob = self._blob(location.bucket, location.name)
        blob.metadata = dict(metadata)
        with self._request("upload", location, "start an upload"):
            url = blob.create_resumable_upload_session(
                content_type=content_type,
                if_generation_match=if_generation_match,
                checksum=None,
                timeout=self._timeout,
                retry=self._retry,
            )
        return StreamingUpload(self, location, url, metadata)

    def send_part(self, session: str, location: CloudLocation, body: FileRange) -> None:
        """Bytes [body.start, body.end) of a session, a multiple of 256 KiB, with more to follow."""
        self._put_to_session(session, location, body, f"bytes {body.start}-{body.end - 1}/*", {}, "upload a part")

    def finish_session(
        self, session: str, location: CloudLocation, body: FileRange, size: int, crc32c: str
    ) -> ObjectStat:
        """The last bytes of a session, which make the object; GCS checks `crc32c` against all of them."""
        span = f"bytes {body.start}-{body.end - 1}/{size}" if len(body) else f"bytes */{size}"
        digest = {"X-Goog-Hash": f"crc32c={crc32c}"}
        reply = self._put_to_session(session, location, body, span, digest, "finish the upload")
        return ObjectStat.from_resource(location.bucket, reply.json())

    def _put_to_session(
        self, session: str, location: CloudLocation, body: FileRange, span: str, headers: dict[str, str], action: str
    ) -> requests.Response:
        headers = {**headers, "Content-Range": span, "Content-Length": str(len(body))}
        final = not span.endswith("/*")
        with self._request("upload", location, action):
            response = self._client._http.put(session, data=body, headers=headers, timeout=self._timeout)
            if response.status_code not in ((200, 201) if final else (RESUME_INCOMPLETE,)):
                raise api_exceptions.from_http_response(response)
        self.stats.moved(up=len(body))
        return response

    def cancel_session(self, session: str) -> None:
        """Drop an unfinished session (it would otherwise linger on the server for a week); failures do
        not matter."""
        with contextlib.suppress(requests.RequestException, ServerUnavailable):
            self._client._http.delete(session, timeout=self._timeout)


_lock = threading.Lock()
_settings = StorageSettings()
_instance: tuple[int, GCSStorage] | None = None
# A storage serving instead of GCS (see `serving`).
_stand_in: Storage | None = None


def configure(**settings: Any) -> None:
    """Change settings (e.g. `endpoint`); the client is rebuilt on next use."""
    global _settings, _instance
    with _lock:
        _settings = replace(_settings, **settings)
        if _instance is not None:
            _instance[1].health.close()
        _instance = None


def get_storage() -> Storage:
    """The process's storage client, built on first use (and again after a fork)."""
    global _instance
    with _lock:
        if _stand_in is not None:
            return _stand_in
        if _instance is None or _instance[0] != os.getpid():
            _instance = (os.getpid(), GCSStorage(_settings))
        return _instance[1]


@contextlib.contextmanager
def serving(storage: Storage) -> Iterator[Storage]:
    """Make `storage` the process's storage while the block runs, so the Datafile engine can be tested
    against the in-memory implementation (with its faults) instead of a server."""
    global _stand_in
    with _lock:
        _stand_in = storage
    try:
        yield storage
    finally:
        with _lock:
            _stand_in = None
