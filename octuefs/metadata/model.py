"""The four Octue metadata fields of a datafile and the rules for their values."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from octuefs.errors import InvalidInputException
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
    """Accept what users and other writers put in a timestamp: datetime, ISO 8601 or epoch seconds."""
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, bool):
        raise InvalidInputException(f"Timestamp {value!r} is not a datetime, ISO 8601 string or number.")
    if isinstance(value, int | float):
        return _from_epoch(value, value)
    if isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            pass
        else:
            return _from_epoch(seconds, value)
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            raise InvalidInputException(f"Timestamp {value!r} is not ISO 8601 or epoch seconds.") from None
    raise InvalidInputException(f"Timestamp {value!r} is not a datetime, ISO 8601 string or number.")


def _from_epoch(seconds: float, given: object) -> datetime:
    """NaN, infinities and huge numbers make `fromtimestamp` raise ValueError, OverflowError or OSError."""
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise InvalidInputException(f"Timestamp {given!r} is not a representable number of epoch seconds.") from None


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
