"""`gs://bucket/name` locations."""

from __future__ import annotations

import re
from dataclasses import dataclass

from octuefs.errors import InvalidInputException

SCHEME = "gs://"
URL_SCHEMES = ("http://", "https://")
_ANY_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_cloud_path(path: object) -> bool:
    return isinstance(path, str) and path.startswith(SCHEME)


def is_url(path: object) -> bool:
    """An object read through a (signed) URL, as Octue's `storage.path.is_url` tells them apart."""
    return isinstance(path, str) and path.startswith(URL_SCHEMES)


def has_unsupported_scheme(path: object) -> bool:
    """`s3://...`, `file://...`: never to be taken for a local path named after the URL."""
    return isinstance(path, str) and bool(_ANY_SCHEME.match(path)) and not (is_cloud_path(path) or is_url(path))


@dataclass(frozen=True)
class CloudLocation:
    bucket: str
    name: str

    @classmethod
    def parse(cls, path: str, allow_bucket_only: bool = False) -> CloudLocation:
        """Parse `gs://bucket/name`; with `allow_bucket_only`, `gs://bucket` and `bucket/prefix` too."""
        rest = path[len(SCHEME) :] if path.startswith(SCHEME) else path
        if not path.startswith(SCHEME) and not allow_bucket_only:
            raise InvalidInputException(f"{path!r} is not a cloud path (expected gs://bucket/name).")
        bucket, _, name = rest.partition("/")
        if not bucket or (not name and not allow_bucket_only):
            raise InvalidInputException(f"{path!r} is not a cloud path (expected gs://bucket/name).")
        return cls(bucket, name)

    @property
    def path(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.name}"

    def __str__(self) -> str:
        return self.path
