"""`gs://bucket/name` locations."""

from __future__ import annotations

from dataclasses import dataclass

from octuefs.errors import InvalidInputException

SCHEME = "gs://"


def is_cloud_path(path: object) -> bool:
    return isinstance(path, str) and path.startswith(SCHEME)


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
