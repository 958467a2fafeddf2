"""Property tests: any valid metadata survives the cloud and `.octue` encodings, and hashes stably."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from octuefs.metadata import codec
from octuefs.metadata.labels import LABEL_PATTERN, LabelSet
from octuefs.metadata.local_store import LocalMetadataStore
from octuefs.metadata.model import OctueMetadata
from octuefs.metadata.tags import TAG_KEY_PATTERN, TagDict

EXAMPLES = settings(max_examples=100, deadline=None)

ids = st.uuids(version=4).map(str)

fixed_offsets = st.builds(
    timezone,
    st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)),
)
timezones = st.just(UTC) | fixed_offsets
naive_datetimes = st.datetimes()
aware_datetimes = st.datetimes(timezones=timezones)
datetimes = naive_datetimes | aware_datetimes
timestamps = st.none() | datetimes

tag_keys = st.from_regex(r"[a-z0-9]([a-z0-9_]{0,14}[a-z0-9])?", fullmatch=True)
labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?", fullmatch=True)

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
)
# "_type" is the one key a plain object may not use: {"_type": "set", "items": [...]} *is* a set to Octue.
nested_keys = st.text(max_size=10).filter(lambda key: key != "_type")
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(nested_keys, children, max_size=4),
    max_leaves=12,
)
tag_values = (
    json_values
    | datetimes
    | st.sets(st.text(max_size=10), max_size=5)
    | st.lists(datetimes | st.sets(st.text(max_size=5), max_size=3), max_size=3)
    | st.dictionaries(nested_keys, datetimes, max_size=3)
)
tag_dicts = st.dictionaries(tag_keys, tag_values, max_size=6).map(TagDict)
label_sets = st.sets(labels, max_size=8).map(LabelSet)

metadata = st.builds(OctueMetadata, id=ids, timestamp=timestamps, tags=tag_dicts, labels=label_sets)


def assert_same_metadata(decoded: dict[str, Any], original: OctueMetadata) -> None:
    """Equal as Python values and as Octue bytes (which also tells 1 from True and one offset from another)."""
    rebuilt = OctueMetadata(**decoded)
    assert rebuilt == original
    assert codec.encode_cloud(rebuilt) == codec.encode_cloud(original)
    assert isinstance(rebuilt.tags, TagDict)
    assert isinstance(rebuilt.labels, LabelSet)


def test_strategies_produce_valid_keys_and_labels() -> None:
    @given(tag_keys, labels)
    @EXAMPLES
    def check(key: str, label: str) -> None:
        assert TAG_KEY_PATTERN.fullmatch(key)
        assert LABEL_PATTERN.fullmatch(label)

    check()


@given(metadata)
@EXAMPLES
def test_cloud_round_trip(original: OctueMetadata) -> None:
    encoded = codec.encode_cloud(original)
    assert set(encoded) == codec.OCTUE_CLOUD_KEYS
    assert all(value.isascii() for value in encoded.values())
    assert_same_metadata(codec.decode_cloud(encoded, "gs://bucket/object"), original)


@given(metadata)
@EXAMPLES
def test_local_round_trip(original: OctueMetadata) -> None:
    entry = codec.encode_local(original)
    assert_same_metadata(codec.decode_local(entry, "tmp/.octue[file]"), original)
    # What is stored is JSON text: the entry must survive being written and read back too.
    assert_same_metadata(codec.decode_local(json.loads(json.dumps(entry, indent=4)), "tmp/.octue[file]"), original)


@given(metadata)
@settings(max_examples=30, deadline=None)
def test_local_store_round_trip(original: OctueMetadata) -> None:
    with tempfile.TemporaryDirectory() as directory:
        store = LocalMetadataStore(directory)
        store.write_datafile_entry("data.csv", codec.encode_local(original))
        entry = LocalMetadataStore(directory).datafile_entry("data.csv")
    assert entry is not None
    assert_same_metadata(codec.decode_local(entry, "data.csv"), original)


@given(metadata)
@EXAMPLES
def test_cloud_encoding_matches_local_encoding(original: OctueMetadata) -> None:
    cloud = codec.encode_cloud(original)
    local = codec.encode_local(original)
    assert {codec.cloud_key(field): json.dumps(value) for field, value in local.items()} == cloud


@given(metadata)
@EXAMPLES
def test_metadata_hash_is_stable(original: OctueMetadata) -> None:
    digest = codec.metadata_hash(original)
    assert digest == codec.metadata_hash(original)
    assert digest == codec.metadata_hash(original.copy())
    assert digest == codec.metadata_hash(OctueMetadata(**codec.decode_cloud(codec.encode_cloud(original), "obj")))
    assert len(digest) == 8 and digest.endswith("==")


@given(metadata, ids)
@EXAMPLES
def test_metadata_hash_ignores_id_and_tag_order(original: OctueMetadata, other_id: str) -> None:
    reordered = OctueMetadata(
        id=other_id,
        timestamp=original.timestamp,
        tags=TagDict(reversed(list(original.tags.items()))),
        labels=LabelSet(sorted(original.labels, reverse=True)),
    )
    assert codec.metadata_hash(reordered) == codec.metadata_hash(original)


@given(metadata, tag_keys, json_values)
@EXAMPLES
def test_metadata_hash_changes_when_a_tag_is_added(original: OctueMetadata, key: str, value: Any) -> None:
    assume(key + "_new" not in original.tags)
    changed = original.copy()
    changed.tags[key + "_new"] = value
    assert codec.metadata_hash(changed) != codec.metadata_hash(original)


@given(metadata.filter(lambda m: len(m.tags) > 0))
@EXAMPLES
def test_metadata_hash_changes_when_a_tag_value_changes(original: OctueMetadata) -> None:
    changed = original.copy()
    key = next(iter(changed.tags))
    changed.tags[key] = {"previous": changed.tags[key]}
    assert codec.metadata_hash(changed) != codec.metadata_hash(original)


@given(metadata.filter(lambda m: len(m.tags) > 0))
@EXAMPLES
def test_metadata_hash_changes_when_a_tag_is_removed(original: OctueMetadata) -> None:
    changed = original.copy()
    del changed.tags[next(iter(changed.tags))]
    assert codec.metadata_hash(changed) != codec.metadata_hash(original)


@given(metadata, labels)
@EXAMPLES
def test_metadata_hash_changes_with_labels(original: OctueMetadata, label: str) -> None:
    changed = original.copy()
    changed.labels ^= {label}
    assert codec.metadata_hash(changed) != codec.metadata_hash(original)


@given(metadata)
@EXAMPLES
def test_metadata_hash_changes_with_timestamp(original: OctueMetadata) -> None:
    changed = original.copy()
    if original.timestamp is None:
        changed.timestamp = datetime(2000, 1, 1)
    else:
        changed.timestamp = original.timestamp.replace(microsecond=(original.timestamp.microsecond + 1) % 1_000_000)
    assert codec.metadata_hash(changed) != codec.metadata_hash(original)


def test_metadata_hash_tells_int_from_bool() -> None:
    assert codec.metadata_hash(OctueMetadata(tags=TagDict(a=1))) != codec.metadata_hash(
        OctueMetadata(tags=TagDict(a=True))
    )


HASH_SCRIPT = """
from datetime import datetime
from octuefs.metadata.codec import metadata_hash
from octuefs.metadata.labels import LabelSet
from octuefs.metadata.model import OctueMetadata
from octuefs.metadata.tags import TagDict
print(metadata_hash(OctueMetadata(
    timestamp=datetime(2024, 5, 6, 7, 8, 9),
    tags=TagDict(kinds={"b", "a", "c", "d"}, nested={"z": 1, "y": [2, 3]}),
    labels=LabelSet(["wind-turbine", "met-mast", "a1", "zz", "b2"]),
)))
"""


def test_metadata_hash_is_the_same_in_every_process() -> None:
    """Octue's own metadata hash changes with PYTHONHASHSEED; ours must not."""
    digests = set()
    for seed in ("1", "2", "3"):
        result = subprocess.run(
            [sys.executable, "-c", HASH_SCRIPT],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        )
        digests.add(result.stdout.strip())
    assert len(digests) == 1
    assert digests.pop().endswith("==")
