"""Three-way merge: our change (base → ours) re-applied on top of another writer's (base → theirs)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from octuefs import cloud_metadata
from octuefs.errors import PreconditionConflict
from octuefs.metadata import codec
from octuefs.metadata.labels import LabelSet
from octuefs.metadata.merge import merge_metadata
from octuefs.metadata.model import OctueMetadata
from octuefs.metadata.tags import TagDict
from octuefs.storage.gcs import ObjectStat

ID = "11111111-1111-4111-8111-111111111111"
OTHER_ID = "22222222-2222-4222-8222-222222222222"
T0 = datetime(2024, 1, 1)
T1 = datetime(2024, 1, 2)
T2 = datetime(2024, 1, 3)


def meta(tags: dict[str, Any] | None = None, labels: list[str] | None = None, **fields: Any) -> OctueMetadata:
    return OctueMetadata(
        id=fields.get("id", ID),
        timestamp=fields.get("timestamp", T0),
        tags=TagDict(tags or {}),
        labels=LabelSet(labels or []),
    )


def test_nothing_changed_gives_base() -> None:
    base = meta({"a": 1}, ["x"])
    assert merge_metadata(base, base.copy(), base.copy()) == base


def test_only_theirs_changed_gives_theirs() -> None:
    base = meta({"a": 1}, ["x"])
    theirs = meta({"a": 2, "b": 3}, ["y"], timestamp=T1, id=OTHER_ID)
    assert merge_metadata(base, base.copy(), theirs) == theirs


def test_only_ours_changed_gives_ours() -> None:
    base = meta({"a": 1}, ["x"])
    ours = meta({"a": 2, "b": 3}, ["y"], timestamp=T1, id=OTHER_ID)
    assert merge_metadata(base, ours, base.copy()) == ours


def test_concurrent_different_tags_are_both_kept() -> None:
    base = meta({"common": 0})
    ours = meta({"common": 0, "ours": 1})
    theirs = meta({"common": 0, "theirs": 2})
    assert merge_metadata(base, ours, theirs).tags == {"common": 0, "ours": 1, "theirs": 2}


def test_concurrent_changes_to_different_existing_tags_are_both_kept() -> None:
    base = meta({"a": 1, "b": 1})
    ours = meta({"a": 2, "b": 1})
    theirs = meta({"a": 1, "b": 3})
    assert merge_metadata(base, ours, theirs).tags == {"a": 2, "b": 3}


def test_tag_removed_by_us_stays_removed() -> None:
    base = meta({"gone": 1, "kept": 2})
    ours = meta({"kept": 2})
    theirs = meta({"gone": 1, "kept": 2, "new": 3})
    assert merge_metadata(base, ours, theirs).tags == {"kept": 2, "new": 3}


def test_tag_removed_by_them_stays_removed() -> None:
    base = meta({"gone": 1, "kept": 2})
    ours = meta({"gone": 1, "kept": 2, "mine": 4})
    theirs = meta({"kept": 2})
    assert merge_metadata(base, ours, theirs).tags == {"kept": 2, "mine": 4}


def test_tag_removed_by_us_and_changed_by_them_is_removed() -> None:
    base = meta({"a": 1})
    assert merge_metadata(base, meta({}), meta({"a": 2})).tags == {}


def test_tag_changed_by_us_and_removed_by_them_is_ours() -> None:
    base = meta({"a": 1})
    assert merge_metadata(base, meta({"a": 5}), meta({})).tags == {"a": 5}


def test_ours_wins_on_same_key_conflict() -> None:
    base = meta({"a": 1})
    ours = meta({"a": "ours"})
    theirs = meta({"a": "theirs"})
    assert merge_metadata(base, ours, theirs).tags == {"a": "ours"}


def test_same_key_added_on_both_sides_is_ours() -> None:
    assert merge_metadata(meta({}), meta({"a": 1}), meta({"a": 2})).tags == {"a": 1}


@pytest.mark.parametrize(("before", "after"), [(1, True), (0, False), (1, 1.0), (True, 1.0)])
def test_change_between_values_python_calls_equal_is_still_ours(before: Any, after: Any) -> None:
    """1 and True are == in Python but Octue writes them differently; changing one to the other is a change."""
    merged = merge_metadata(meta({"a": before}), meta({"a": after}), meta({"a": before, "b": 2}))
    assert codec.encode_cloud(merged)["octue__tags"] == codec.encode_cloud(meta({"a": after, "b": 2}))["octue__tags"]


def test_unchanged_nested_tag_reordered_is_not_a_change() -> None:
    base = meta({"a": {"x": 1, "y": 2}})
    ours = meta({"a": {"y": 2, "x": 1}})
    theirs = meta({"a": {"x": 9}})
    assert merge_metadata(base, ours, theirs).tags == {"a": {"x": 9}}


def test_labels_added_on_both_sides_are_kept() -> None:
    base = meta(labels=["common"])
    ours = meta(labels=["common", "ours"])
    theirs = meta(labels=["common", "theirs"])
    assert merge_metadata(base, ours, theirs).labels == {"common", "ours", "theirs"}


def test_labels_removed_on_both_sides_are_removed() -> None:
    base = meta(labels=["a", "b", "c"])
    ours = meta(labels=["b", "c"])
    theirs = meta(labels=["a", "c"])
    assert merge_metadata(base, ours, theirs).labels == {"c"}


def test_labels_added_by_us_and_removed_by_them_and_vice_versa() -> None:
    base = meta(labels=["old"])
    ours = meta(labels=["new"])
    theirs = meta(labels=["old", "extra"])
    merged = merge_metadata(base, ours, theirs)
    assert isinstance(merged.labels, LabelSet)
    assert merged.labels == {"new", "extra"}


def test_label_removed_by_us_but_added_back_by_them_is_removed() -> None:
    base = meta(labels=["a"])
    assert merge_metadata(base, meta(labels=[]), meta(labels=["a", "b"])).labels == {"b"}


def test_unchanged_timestamp_and_id_take_theirs() -> None:
    base = meta(timestamp=T0, id=ID)
    ours = meta({"a": 1}, timestamp=T0, id=ID)
    theirs = meta(timestamp=T1, id=OTHER_ID)
    merged = merge_metadata(base, ours, theirs)
    assert merged.timestamp == T1
    assert merged.id == OTHER_ID


def test_changed_timestamp_and_id_are_ours() -> None:
    base = meta(timestamp=T0, id=ID)
    ours = meta(timestamp=T2, id=OTHER_ID)
    theirs = meta(timestamp=T1, id=ID)
    merged = merge_metadata(base, ours, theirs)
    assert merged.timestamp == T2
    assert merged.id == OTHER_ID


def test_timestamp_cleared_by_us_is_cleared() -> None:
    assert merge_metadata(meta(timestamp=T0), meta(timestamp=None), meta(timestamp=T1)).timestamp is None


def test_timestamp_moved_to_another_offset_is_our_change() -> None:
    base = meta(timestamp=datetime(2024, 1, 1, 12, tzinfo=UTC))
    ours = meta(timestamp=datetime.fromisoformat("2024-01-01T13:00:00+01:00"))
    merged = merge_metadata(base, ours, meta(timestamp=T1))
    assert merged.timestamp is not None
    assert merged.timestamp.isoformat() == "2024-01-01T13:00:00+01:00"


def test_merge_does_not_change_its_inputs() -> None:
    base, ours, theirs = meta({"a": 1}, ["x"]), meta({"b": 2}, ["y"]), meta({"a": 1, "c": 3}, ["x", "z"])
    snapshots = [m.copy() for m in (base, ours, theirs)]
    merge_metadata(base, ours, theirs)
    assert [base, ours, theirs] == snapshots


small_tags = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 3), max_size=4)
small_labels = st.sets(st.sampled_from(["w", "x", "y", "z"]), max_size=4)


@given(small_tags, small_labels, small_tags, small_labels, small_tags, small_labels)
@settings(max_examples=100, deadline=None)
def test_merge_applies_our_change_on_top_of_theirs(
    base_tags: dict[str, int],
    base_labels: set[str],
    our_tags: dict[str, int],
    our_labels: set[str],
    their_tags: dict[str, int],
    their_labels: set[str],
) -> None:
    base = meta(base_tags, list(base_labels))
    ours = meta(our_tags, list(our_labels))
    theirs = meta(their_tags, list(their_labels))
    merged = merge_metadata(base, ours, theirs)
    for key in set(base_tags) | set(our_tags) | set(their_tags):
        ours_changed = base_tags.get(key) != our_tags.get(key) or (key in base_tags) != (key in our_tags)
        source = our_tags if ours_changed else their_tags
        assert merged.tags.get(key) == source.get(key)
        assert (key in merged.tags) == (key in source)
    for label in base_labels | our_labels | their_labels:
        ours_changed = (label in base_labels) != (label in our_labels)
        expected = label in (our_labels if ours_changed else their_labels)
        assert (label in merged.labels) == expected


# ---- the merge in use: a PATCH that lost a metageneration race is merged and retried


class RacingStorage:
    """Rejects the first `conflicts` PATCHes as if another writer got in first with `theirs`."""

    def __init__(self, theirs: ObjectStat, conflicts: int) -> None:
        self.theirs = theirs
        self.conflicts = conflicts
        self.patches: list[dict[str, str | None]] = []

    def patch_metadata(self, stat: ObjectStat, metadata: dict[str, str | None]) -> ObjectStat:
        self.patches.append(dict(metadata))
        if self.conflicts > 0:
            self.conflicts -= 1
            raise PreconditionConflict(f"{stat.location}: metageneration changed")
        return replace(stat, metadata=dict(metadata), metageneration=(stat.metageneration or 0) + 1)

    def require_stat(self, bucket: str, name: str) -> ObjectStat:
        return self.theirs


def stat_with(metadata: OctueMetadata, metageneration: int, **foreign: str) -> ObjectStat:
    return ObjectStat(
        bucket="bucket",
        name="data.csv",
        size=1,
        generation=7,
        metageneration=metageneration,
        crc32c=None,
        content_type=None,
        updated=None,
        metadata={**foreign, **codec.encode_cloud(metadata)},
    )


def test_lost_race_is_merged_and_retried() -> None:
    base = meta({"common": 0})
    ours = meta({"common": 0, "ours": 1}, ["mine"])
    theirs = meta({"common": 0, "theirs": 2}, ["yours"])
    storage = RacingStorage(stat_with(theirs, 2, owner="them"), conflicts=1)
    stat, written = cloud_metadata.write_metadata(storage, stat_with(base, 1), base, ours)  # type: ignore[arg-type]
    assert written.tags == {"common": 0, "theirs": 2, "ours": 1}
    assert written.labels == {"mine", "yours"}
    assert len(storage.patches) == 2
    assert storage.patches[1] == {"owner": "them", **codec.encode_cloud(written)}
    assert stat.metageneration == 3


def test_too_many_lost_races_raise_precondition_conflict() -> None:
    base = meta()
    storage = RacingStorage(stat_with(meta({"x": 1}), 2), conflicts=100)
    with pytest.raises(PreconditionConflict):
        cloud_metadata.write_metadata(storage, stat_with(base, 1), base, meta({"y": 2}))  # type: ignore[arg-type]
    assert len(storage.patches) == cloud_metadata.MAX_CONFLICT_RETRIES + 1
