"""Writing cloud metadata: foreign keys kept, Octue keys replaced, GCS's 8 KiB limit enforced before sending."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest

from octuefs import cloud_metadata
from octuefs.errors import InvalidInputException, MetadataTooLargeError
from octuefs.metadata import codec
from octuefs.metadata.labels import LabelSet
from octuefs.metadata.model import OctueMetadata
from octuefs.metadata.tags import TagDict
from octuefs.storage.gcs import ObjectStat

NAME = "gs://bucket/tables/readings.csv"
LIMIT = codec.GCS_CUSTOM_METADATA_LIMIT


def sample_metadata(**tags: Any) -> OctueMetadata:
    return OctueMetadata(
        id="11111111-1111-4111-8111-111111111111",
        timestamp=datetime(2024, 5, 6, 7, 8, 9),
        tags=TagDict(tags),
        labels=LabelSet(["met-mast"]),
    )


def test_limit_is_eight_kibibytes() -> None:
    assert LIMIT == 8192


def test_check_size_allows_exactly_the_limit() -> None:
    codec.check_size({"k": "v" * (LIMIT - 1)}, NAME)


def test_check_size_refuses_one_byte_over_and_names_the_object() -> None:
    with pytest.raises(MetadataTooLargeError, match=re.escape(NAME)) as raised:
        codec.check_size({"k": "v" * LIMIT}, NAME)
    message = str(raised.value)
    assert "8193" in message
    assert "8192" in message
    assert "nothing was sent" in message
    assert isinstance(raised.value, InvalidInputException)


def test_check_size_counts_utf8_bytes_not_characters() -> None:
    value = "é" * (LIMIT // 2)  # fewer characters than the limit, twice as many bytes
    with pytest.raises(MetadataTooLargeError):
        codec.check_size({"k": value}, NAME)


def test_check_size_counts_keys_too() -> None:
    codec.check_size({"a" * 4096: "b" * 4096}, NAME)
    with pytest.raises(MetadataTooLargeError):
        codec.check_size({"a" * 4097: "b" * 4096}, NAME)


def test_cloud_custom_metadata_refuses_large_tags_naming_the_object() -> None:
    metadata = sample_metadata(notes="x" * LIMIT)
    existing = {"owner": "me"}
    with pytest.raises(MetadataTooLargeError, match=re.escape(NAME)):
        codec.cloud_custom_metadata(metadata, existing, NAME)
    assert existing == {"owner": "me"}


def test_foreign_keys_count_towards_the_limit() -> None:
    metadata = sample_metadata()
    octue_size = sum(len(k) + len(v) for k, v in codec.encode_cloud(metadata).items())
    fits = {"owner": "x" * (LIMIT - octue_size - len("owner"))}
    assert len(codec.cloud_custom_metadata(metadata, fits, NAME)) == 6
    with pytest.raises(MetadataTooLargeError):
        codec.cloud_custom_metadata(metadata, {"owner": fits["owner"] + "x"}, NAME)


def test_cloud_custom_metadata_keeps_foreign_keys_and_replaces_octue_ones() -> None:
    metadata = sample_metadata(height=350)
    existing = {
        "owner": "someone",
        "Content-Note": '{"not": "octue"}',
        "octue__tags": '{"old": 1}',
        "octue__sdk_version": '"0.50.0"',
        "tags": '{"bare": 1}',
        "labels": "old",
        "removed": None,
    }
    custom = codec.cloud_custom_metadata(metadata, existing, NAME)
    assert custom == {
        "owner": "someone",
        "Content-Note": '{"not": "octue"}',
        **codec.encode_cloud(metadata),
    }
    assert existing["octue__tags"] == '{"old": 1}'


def test_cloud_custom_metadata_without_existing_is_the_encoding() -> None:
    metadata = sample_metadata()
    assert codec.cloud_custom_metadata(metadata, {}, NAME) == codec.encode_cloud(metadata)


def test_encoded_metadata_reads_back_with_foreign_keys_present() -> None:
    metadata = sample_metadata(a=[1, 2])
    custom = codec.cloud_custom_metadata(metadata, {"owner": "me"}, NAME)
    assert OctueMetadata(**codec.decode_cloud(custom, NAME)) == metadata


class RecordingStorage:
    """Stands in for GCSStorage: records every PATCH instead of sending it."""

    def __init__(self) -> None:
        self.patches: list[dict[str, str | None]] = []

    def patch_metadata(self, stat: ObjectStat, metadata: dict[str, str | None]) -> ObjectStat:
        self.patches.append(dict(metadata))
        return stat


def object_stat(metadata: dict[str, str]) -> ObjectStat:
    return ObjectStat(
        bucket="bucket",
        name="tables/readings.csv",
        size=24,
        generation=1,
        metageneration=1,
        crc32c="Ba+0Wg==",
        content_type="text/csv",
        updated=None,
        metadata=metadata,
    )


def test_too_large_metadata_is_refused_before_any_request() -> None:
    storage = RecordingStorage()
    stat = object_stat({"owner": "me"})
    base = cloud_metadata.metadata_of(stat)
    ours = base.copy()
    ours.tags["notes"] = "x" * LIMIT
    with pytest.raises(MetadataTooLargeError, match=re.escape(NAME)):
        cloud_metadata.write_metadata(storage, stat, base, ours)  # type: ignore[arg-type]
    assert storage.patches == []


def test_write_metadata_sends_the_complete_map_with_foreign_keys() -> None:
    storage = RecordingStorage()
    stat = object_stat({"owner": "me", **codec.encode_cloud(sample_metadata(old=1))})
    base = cloud_metadata.metadata_of(stat)
    ours = base.copy()
    ours.tags["new"] = 2
    cloud_metadata.write_metadata(storage, stat, base, ours)  # type: ignore[arg-type]
    assert storage.patches == [{"owner": "me", **codec.encode_cloud(ours)}]
