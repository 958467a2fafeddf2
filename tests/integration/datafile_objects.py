"""Objects the Datafile integration tests arrange on the server directly (never through the proxy).

The golden objects are exactly what the Octue SDK 0.69.1 wrote (`tests/data/octue-golden.json`),
so a test starting from one also proves octuefs reads and re-writes Octue's own bytes.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import google_crc32c
from google.cloud import storage

from tests.support.golden import GOLDEN_OBJECTS

GOLDEN_CSV = GOLDEN_OBJECTS[0]

CSV = GOLDEN_CSV["content"].encode()
CSV_NAME = "tables/readings.csv"
CSV_CONTENT_TYPE = GOLDEN_CSV["object_content_type"]
GOLDEN_CSV_METADATA: dict[str, str] = GOLDEN_CSV["object_custom_metadata"]
GOLDEN_CSV_TAGS: dict[str, Any] = GOLDEN_CSV["given_to_octue"]["tags"]
# A key some other tool put on the object: every octuefs write must carry it through.
FOREIGN = {"owner": "alice"}


def gs(bucket: storage.Bucket, name: str) -> str:
    return f"gs://{bucket.name}/{name}"


def crc32c(data: bytes) -> str:
    return base64.b64encode(google_crc32c.Checksum(data).digest()).decode()


def put(
    bucket: storage.Bucket,
    name: str,
    data: bytes,
    content_type: str = "application/octet-stream",
    metadata: dict[str, str] | None = None,
) -> storage.Blob:
    """Create an object with the direct client and return it as the server reports it."""
    blob = bucket.blob(name)
    blob.metadata = metadata
    blob.upload_from_string(data, content_type=content_type)
    return bucket.get_blob(name)


def put_golden_csv(bucket: storage.Bucket, name: str = CSV_NAME) -> storage.Blob:
    """The CSV object Octue wrote, plus a foreign metadata key."""
    return put(bucket, name, CSV, CSV_CONTENT_TYPE, {**GOLDEN_CSV_METADATA, **FOREIGN})


def assert_is_the_golden_csv(datafile: Any) -> None:
    """Its metadata and, read through `open()`, its bytes are the golden CSV's."""
    assert datafile.tags == GOLDEN_CSV_TAGS
    with datafile.open() as f:
        assert f.read() == CSV.decode()


def decoded_octue_values(blob: storage.Blob) -> dict[str, Any]:
    """Each Octue key's value `json.loads`ed, the way the Octue SDK reads it."""
    return {key: json.loads(value) for key, value in blob.metadata.items() if key.startswith("octue__")}
