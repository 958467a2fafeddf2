"""The four Octue metadata fields of a datafile and the rules for their values."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from octuefs.errors import InvalidInputException, InvalidTimestampException
from octuefs.metadata.labels import LabelSet
from octuefs.metadata.tags import TagDict

# The Octue SDK release whose wire format octuefs writes; Octue stores it as `sdk_version`.
OCTUE_SDK_VERSION = "0.69.1"

# Derived ids live in their own UUID5 namespace so they can never collide with random (v4) ones.
DERIVED_ID_NAMESPACE = uuid.UUID("6f2a4c1e-8d3b-5e7f-9a0b-1c2d3e4f5a6b")


def normalise_id(value: object) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise InvalidInputException(f"Id {value!r} is not a UUID.") from None


def new_id() -> str:
    return str(uuid.uuid4())


def derived_id(bucket: str, name: str, generation: int | None) -> str:
    """A stable id for an object without Octue metadata, so repeated reads agree until one is written."""
    return str(uuid.uuid5(DERIVED_ID_NAMESPACE, f"gs://{bucket}/{name}#{generation}"))


def parse_timestamp(value: object) -> datetime | None:
    """A timestamp given through the API, by Octue's rule: a datetime, epoch seconds (naive local time,
    as Octue's `datetime.fromtimestamp` gives), or None; octuefs also takes an ISO 8601 string.

    Anything else raises InvalidTimestampException, a TypeError as Octue raises.
    """
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _from_epoch(value, value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidTimestampException(f"Timestamp {value!r} is not an ISO 8601 string.") from None
    raise InvalidTimestampException(
        f"Timestamp {value!r} should be a datetime, a number of epoch seconds, an ISO 8601 string or None."
    )


def parse_timestamp_text(value: object) -> datetime | None:
    """A timestamp read from stored metadata or typed as text (an xattr): epoch seconds may be text too."""
    if isinstance(value, str):
        try:
            seconds = float(value.strip())
        except ValueError:
            pass
        else:
            return _from_epoch(seconds, value)
    return parse_timestamp(value)


def _from_epoch(seconds: float, given: object) -> datetime:
    """NaN, infinities and huge numbers make `fromtimestamp` raise ValueError, OverflowError or OSError."""
    try:
        return datetime.fromtimestamp(seconds)
    except (ValueError, OverflowError, OSError):
        raise InvalidTimestampException(
            f"Timestamp {given!r} is not a representable number of epoch seconds."
        ) from None


@dataclass
class OctueMetadata:
    """What Octue stores per datafile (its wire format adds `sdk_version`)."""

    id: str = field(default_factory=new_id)
    timestamp: datetime | None = None
    tags: TagDict = field(default_factory=TagDict)
    labels: LabelSet = field(default_factory=LabelSet)

    def copy(self) -> OctueMetadata:
        return OctueMetadata(self.id, self.timestamp, TagDict(self.tags), LabelSet(self.labels))

    @classmethod
    def build(cls, id: Any = None, timestamp: Any = None, tags: Any = None, labels: Any = None) -> OctueMetadata:
        """Validate user-supplied values into metadata (a fresh id when none is given)."""
        return cls(
            id=normalise_id(id) if id is not None else new_id(),
            timestamp=parse_timestamp(timestamp),
            tags=TagDict(tags),
            labels=LabelSet(labels),
        )
