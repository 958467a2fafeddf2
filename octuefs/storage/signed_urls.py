"""Signed URLs: making one for an object, and reading an object through one.

A signed URL lets someone without Google credentials (a Twined service, a colleague) read one
object until it expires. Making one needs credentials that can sign: the client's own when they
can (a service-account key), else Application Default Credentials (as the Octue SDK falls back to,
e.g. `GOOGLE_APPLICATION_CREDENTIALS` naming a key file, which also serves a local emulator), else
a token and service-account email for the IAM signing API (on Google Cloud compute). With an
endpoint configured (`--endpoint`, `STORAGE_EMULATOR_HOST`) the URL points at that server.

Reading goes through a plain HTTP session that carries no credentials of ours: the URL is the
authority. The object's metadata comes from a HEAD's `x-goog-*` headers, as Octue reads it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import google.auth
import requests
from google.auth import credentials as auth_credentials
from google.auth.exceptions import DefaultCredentialsError, RefreshError
from google.auth.transport.requests import Request

from octuefs.errors import (
    ChecksumMismatch,
    CloudObjectNotFound,
    InvalidInputException,
    SigningUnavailable,
    StorageError,
)
from octuefs.storage.gcs import ChecksummingWriter, GCSStorage, ObjectStat, get_storage
from octuefs.storage.paths import CloudLocation

DEFAULT_EXPIRATION = timedelta(days=7)
METADATA_HEADER_PREFIX = "x-goog-meta-"
TIMEOUT = (10.0, 60.0)

_session = requests.Session()


@functools.lru_cache(maxsize=4)
def _default_credentials(key_file: str | None) -> Any:
    """Application Default Credentials, loaded once per key file named: parsing a key costs ~25 ms, which
    signing every file of a large dataset would pay again and again."""
    try:
        credentials, _ = google.auth.default()
    except DefaultCredentialsError as error:
        raise SigningUnavailable(f"no credentials that can sign URLs: {error}") from None
    return credentials


def _signing_options(client_credentials: Any) -> dict[str, Any]:
    """What `Blob.generate_signed_url` needs to sign: credentials that sign locally, or a token for IAM."""
    if isinstance(client_credentials, auth_credentials.Signing):
        return {"credentials": client_credentials}
    default = _default_credentials(os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"))
    if isinstance(default, auth_credentials.Signing):
        return {"credentials": default}
    try:
        if not default.valid:
            default.refresh(Request())
    except RefreshError as error:
        raise SigningUnavailable(f"the default credentials cannot be refreshed to sign URLs: {error}") from None
    email = getattr(default, "service_account_email", None)
    if not email:
        raise SigningUnavailable("the default credentials are not a service account, which signing needs")
    return {"service_account_email": email, "access_token": default.token}


def generate_signed_url(location: CloudLocation, expiration: timedelta | datetime = DEFAULT_EXPIRATION) -> str:
    """A V4 URL that reads the object at `location` with GET until `expiration` (a delay or an instant)."""
    storage = get_storage()
    if not isinstance(storage, GCSStorage):
        raise SigningUnavailable(f"{location}: cannot make a signed URL: only Cloud Storage signs URLs")
    try:
        signing = _signing_options(storage.credentials)
    except SigningUnavailable as error:
        raise SigningUnavailable(f"{location}: cannot make a signed URL: {error}") from None
    return storage.signed_url(location, expiration, signing)


def url_location(url: str) -> CloudLocation:
    """The bucket and object a path-style URL (`https://host/bucket/name?...`) names, as Octue reads it."""
    bucket, _, name = unquote(urlsplit(url).path).lstrip("/").partition("/")
    if not bucket or not name:
        raise InvalidInputException(f"{url!r}: not a URL of an object (expected https://host/bucket/name?...).")
    return CloudLocation(bucket, name)


def _stat_from_headers(location: CloudLocation, headers: requests.structures.CaseInsensitiveDict) -> ObjectStat:
    hashes = dict(part.strip().split("=", 1) for part in headers.get("x-goog-hash", "").split(",") if "=" in part)
    modified = headers.get("last-modified")
    metageneration = headers.get("x-goog-metageneration")
    return ObjectStat(
        bucket=location.bucket,
        name=location.name,
        # A ranged GET's Content-Range ends with the object's whole size.
        size=int(headers.get("content-range", "").rpartition("/")[2] or headers.get("content-length") or 0),
        generation=int(headers.get("x-goog-generation") or 0),
        metageneration=int(metageneration) if metageneration else None,
        crc32c=hashes.get("crc32c"),
        content_type=headers.get("content-type"),
        updated=parsedate_to_datetime(modified) if modified else None,
        metadata={
            key.lower()[len(METADATA_HEADER_PREFIX) :]: value
            for key, value in headers.items()
            if key.lower().startswith(METADATA_HEADER_PREFIX)
        },
    )


def _refused(url: str, response: requests.Response, action: str) -> Exception:
    location = url_location(url)
    if response.status_code in (403, 404):
        # An expired or wrong signature is a 403 on GCS: either way, nothing can be read there.
        return CloudObjectNotFound(f"{location}: cannot {action} through its URL ({response.status_code}).")
    return StorageError(f"{location}: server refused to {action} through its URL: {response.status_code}")


def stat_url(url: str) -> ObjectStat | None:
    """The object's record from a HEAD's headers (as Octue reads it), or None when the URL gives nothing.

    A URL signed for GET only may refuse a HEAD (403 or 405): then a GET of its first byte tells the
    same headers (GCS gives the whole object's hashes on a ranged read).
    """
    location = url_location(url)
    try:
        response = _session.head(url, timeout=TIMEOUT)
        if response.status_code in (403, 405):
            with _session.get(url, headers={"Range": "bytes=0-0"}, stream=True, timeout=TIMEOUT) as response:
                pass
    except requests.RequestException as error:
        raise StorageError(f"{location}: could not read its metadata through its URL: {error}") from None
    if response.status_code in (403, 404):
        return None
    if response.status_code not in (200, 206):
        raise _refused(url, response, "read its metadata")
    return _stat_from_headers(location, response.headers)


def download_url(url: str, stat: ObjectStat, destination: str | os.PathLike[str]) -> None:
    """GET the URL's bytes into `destination`, checked against the object's crc32c, all or nothing."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part")
    try:
        try:
            with os.fdopen(handle, "wb") as file, _session.get(url, stream=True, timeout=TIMEOUT) as response:
                if response.status_code != 200:
                    raise _refused(url, response, "download it")
                writer = ChecksummingWriter(file)
                for block in response.iter_content(1024 * 1024):
                    writer.write(block)
        except requests.RequestException as error:
            raise StorageError(f"{stat.location}: could not download it through its URL: {error}") from None
        if stat.crc32c and writer.crc32c != stat.crc32c:
            raise ChecksumMismatch(
                f"{stat.location}: bytes read through its URL have crc32c {writer.crc32c}, the object says "
                f"{stat.crc32c}; the download was discarded."
            )
        os.replace(temporary, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
