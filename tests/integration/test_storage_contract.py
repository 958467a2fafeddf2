"""One contract, two implementations: every case runs against `GCSStorage` through the real server
(behind the proxy that enforces the preconditions GCS enforces) and against `MemoryStorage`, so
tests written against the memory one hold for the real one."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from octuefs.errors import CloudObjectNotFound, PreconditionConflict, StorageError
from octuefs.storage.gcs import TEMPORARY_PREFIX, get_storage
from octuefs.storage.interface import Storage
from octuefs.storage.memory import SESSION_GRANULE, MemoryStorage
from octuefs.storage.objects import ObjectStat, crc32c_of_bytes
from octuefs.storage.paths import CloudLocation
from octuefs.storage.streaming import StreamingUpload


@dataclass
class Subject:
    """A storage under test, a bucket of its own in it, and a place for the files it reads from."""

    storage: Storage
    bucket: str
    files: Path

    def source(self, data: bytes) -> Path:
        path = self.files / uuid.uuid4().hex
        path.write_bytes(data)
        return path

    def put(self, name: str, data: bytes, metadata: dict[str, str] | None = None, generation: int = 0) -> ObjectStat:
        return self.storage.upload(self.bucket, name, self.source(data), "text/plain", metadata or {}, generation)

    def content(self, name: str) -> bytes:
        stat = self.storage.require_stat(self.bucket, name)
        return self.storage.read_range(stat, 0, stat.size)

    def names(self) -> list[str]:
        return [stat.name for stat in self.storage.list(self.bucket).objects]


@pytest.fixture(params=["gcs", "memory"])
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    if request.param == "gcs":
        bucket = request.getfixturevalue("bucket").name  # first: it points the storage at the server
        yield Subject(get_storage(), bucket, tmp_path)
        return
    storage = MemoryStorage()
    storage.create_bucket("memory-bucket")
    yield Subject(storage, "memory-bucket", tmp_path)


def test_an_upload_makes_a_generation_with_its_content_type_metadata_and_crc32c(subject) -> None:
    stat = subject.put("f.txt", b"hello", {"k": "v"})

    assert (stat.name, stat.size, stat.content_type, dict(stat.metadata)) == ("f.txt", 5, "text/plain", {"k": "v"})
    assert stat.crc32c == crc32c_of_bytes(b"hello")
    assert stat.generation > 0 and stat.metageneration == 1
    assert subject.storage.stat(subject.bucket, "f.txt") == stat
    assert subject.content("f.txt") == b"hello"


def test_an_upload_from_an_offset_sends_only_what_follows_it(subject) -> None:
    source = subject.source(b"0123456789")
    stat = subject.storage.upload(subject.bucket, "f.bin", source, "application/octet-stream", {}, 0, offset=4)
    assert (stat.size, subject.content("f.bin")) == (6, b"456789")


def test_an_upload_guarded_by_the_current_generation_replaces_it(subject) -> None:
    first = subject.put("f.txt", b"one")
    second = subject.put("f.txt", b"two", generation=first.generation)
    assert second.generation > first.generation
    assert subject.content("f.txt") == b"two"


@pytest.mark.parametrize("guard", ["new", "stale"])
def test_an_upload_whose_guard_fails_is_refused_and_changes_nothing(subject, guard) -> None:
    first = subject.put("f.txt", b"one")
    second = subject.put("f.txt", b"two", generation=first.generation)
    with pytest.raises(PreconditionConflict, match=rf"gs://{subject.bucket}/f\.txt: changed by another writer"):
        subject.put("f.txt", b"three", generation=0 if guard == "new" else first.generation)
    assert subject.storage.require_stat(subject.bucket, "f.txt") == second
    assert subject.content("f.txt") == b"two"


def test_a_missing_object_or_bucket(subject) -> None:
    storage = subject.storage
    assert storage.stat(subject.bucket, "nothing") is None
    assert storage.stat(f"no-such-bucket-{uuid.uuid4().hex[:8]}", "x") is None
    with pytest.raises(CloudObjectNotFound, match="nothing"):
        storage.require_stat(subject.bucket, "nothing")
    with pytest.raises(CloudObjectNotFound, match="no-such-bucket"):
        storage.list(f"no-such-bucket-{uuid.uuid4().hex[:8]}")
    with pytest.raises(CloudObjectNotFound, match="nothing"):
        storage.delete(subject.bucket, "nothing", None)


def test_buckets(subject) -> None:
    assert subject.storage.bucket_exists(subject.bucket)
    assert not subject.storage.bucket_exists(f"no-such-bucket-{uuid.uuid4().hex[:8]}")
    created = f"created-{uuid.uuid4().hex[:12]}"
    subject.storage.create_bucket(created)
    assert subject.storage.bucket_exists(created)
    with pytest.raises(StorageError, match=created):
        subject.storage.create_bucket(created)


def test_ranged_reads_are_cut_at_the_end_and_pinned_to_the_generation(subject) -> None:
    content = bytes(range(256)) * 8
    stat = subject.put("f.bin", content)
    storage = subject.storage

    assert storage.read_range(stat, 100, 300) == content[100:300]
    assert storage.read_range(stat, len(content) - 10, len(content) + 100) == content[-10:]
    assert storage.read_range(stat, len(content), len(content) + 5) == b""

    subject.put("f.bin", b"other", generation=stat.generation)
    with pytest.raises(CloudObjectNotFound, match=r"f\.bin"):
        storage.read_range(stat, 0, 5)


def test_a_download_is_the_generation_asked_for_or_nothing(subject, tmp_path) -> None:
    stat = subject.put("f.bin", b"first")
    subject.storage.download(stat, tmp_path / "out" / "f.bin")
    assert (tmp_path / "out" / "f.bin").read_bytes() == b"first"

    subject.put("f.bin", b"second", generation=stat.generation)
    with pytest.raises(CloudObjectNotFound, match=r"f\.bin"):
        subject.storage.download(stat, tmp_path / "stale" / "f.bin")
    assert not (tmp_path / "stale" / "f.bin").exists()
    assert [path.name for path in (tmp_path / "stale").iterdir()] == []


def test_a_metadata_patch_merges(subject) -> None:
    stat = subject.put("f.txt", b"x", {"keep": "1", "change": "2"})

    patched = subject.storage.patch_metadata(stat, {"change": "two", "new": "4"})

    assert dict(patched.metadata) == {"keep": "1", "change": "two", "new": "4"}
    assert (patched.generation, patched.metageneration) == (stat.generation, 2)
    again = subject.storage.require_stat(subject.bucket, "f.txt")
    assert (dict(again.metadata), again.metageneration, again.generation) == (
        dict(patched.metadata),
        2,
        stat.generation,
    )


def test_a_metadata_patch_from_a_stale_stat_is_refused(subject) -> None:
    stat = subject.put("f.txt", b"x", {"k": "v"})
    subject.storage.patch_metadata(stat, {"k": "theirs"})

    with pytest.raises(PreconditionConflict, match=r"f\.txt.*update its metadata"):
        subject.storage.patch_metadata(stat, {"k": "ours"})
    newer = subject.put("f.txt", b"y", {"k": "v"}, generation=stat.generation)
    with pytest.raises(PreconditionConflict, match=r"f\.txt"):
        subject.storage.patch_metadata(stat, {"k": "ours"})
    assert dict(subject.storage.require_stat(subject.bucket, "f.txt").metadata) == {"k": "v"}
    assert subject.storage.patch_metadata(newer, {"k": "ours"}).metadata == {"k": "ours"}


def test_a_metadata_patch_of_a_missing_object(subject) -> None:
    stat = subject.put("f.txt", b"x")
    subject.storage.delete(subject.bucket, "f.txt", stat.generation)
    with pytest.raises(CloudObjectNotFound, match=r"f\.txt"):
        subject.storage.patch_metadata(stat, {"k": "v"})


def test_a_copy_carries_the_bytes_with_new_metadata(subject) -> None:
    source = subject.put("a.txt", b"content", {"old": "1"})

    copied = subject.storage.copy(source, subject.bucket, "b.txt", {"new": "2"}, 0)
    typed = subject.storage.copy(source, subject.bucket, "c.csv", {}, 0, content_type="text/csv")

    assert (copied.size, copied.crc32c, dict(copied.metadata)) == (7, source.crc32c, {"new": "2"})
    assert (copied.content_type, typed.content_type) == ("text/plain", "text/csv")
    assert subject.content("b.txt") == b"content"
    assert copied.generation != source.generation


def test_a_copy_never_replaces_what_the_guard_does_not_expect(subject) -> None:
    source = subject.put("a.txt", b"ours")
    there = subject.put("b.txt", b"theirs")

    with pytest.raises(PreconditionConflict, match=r"b\.txt"):
        subject.storage.copy(source, subject.bucket, "b.txt", {}, 0)
    assert subject.content("b.txt") == b"theirs"
    replaced = subject.storage.copy(source, subject.bucket, "b.txt", {}, there.generation)
    assert subject.content("b.txt") == b"ours" and replaced.generation > there.generation


def test_a_copy_of_a_generation_gone_is_not_found(subject) -> None:
    source = subject.put("a.txt", b"one")
    subject.put("a.txt", b"two", generation=source.generation)
    with pytest.raises(CloudObjectNotFound, match=r"a\.txt"):
        subject.storage.copy(source, subject.bucket, "b.txt", {}, 0)
    assert subject.storage.stat(subject.bucket, "b.txt") is None


def test_a_delete_guarded_by_another_generation_is_refused(subject) -> None:
    first = subject.put("f.txt", b"one")
    second = subject.put("f.txt", b"two", generation=first.generation)

    with pytest.raises(PreconditionConflict, match=r"f\.txt"):
        subject.storage.delete(subject.bucket, "f.txt", first.generation)
    assert subject.content("f.txt") == b"two"
    subject.storage.delete(subject.bucket, "f.txt", second.generation)
    assert subject.storage.stat(subject.bucket, "f.txt") is None
    subject.put("g.txt", b"x")
    subject.storage.delete(subject.bucket, "g.txt", None)
    assert subject.names() == []


def test_a_placeholder_is_an_empty_directory_object_made_once(subject) -> None:
    stat = subject.storage.create_placeholder(subject.bucket, "dir/")
    assert (stat.name, stat.size, stat.content_type) == ("dir/", 0, "application/x-directory")
    with pytest.raises(PreconditionConflict, match="dir/"):
        subject.storage.create_placeholder(subject.bucket, "dir/")


def test_a_small_object_is_made_with_its_bytes_and_metadata_once(subject) -> None:
    stat = subject.storage.create_small(subject.bucket, "link", b"../target", {"k": "v"})
    assert (stat.name, stat.size, dict(stat.metadata)) == ("link", 9, {"k": "v"})
    assert subject.content("link") == b"../target"
    with pytest.raises(PreconditionConflict, match="link"):
        subject.storage.create_small(subject.bucket, "link", b"other", {})
    assert subject.content("link") == b"../target"


def test_an_append_joins_new_bytes_on_as_a_new_generation(subject) -> None:
    base = subject.put("log.txt", b"head-", {"k": "v"})
    source = subject.source(b"head-tail")

    joined = subject.storage.append(subject.bucket, "log.txt", source, 5, "text/plain", {"k": "w"}, base.generation)

    assert subject.content("log.txt") == b"head-tail"
    assert (joined.size, joined.crc32c, dict(joined.metadata)) == (9, crc32c_of_bytes(b"head-tail"), {"k": "w"})
    assert joined.generation > base.generation
    assert subject.names() == ["log.txt"]  # no temporary part is left under TEMPORARY_PREFIX


def test_an_append_onto_a_generation_gone_is_refused(subject) -> None:
    base = subject.put("log.txt", b"head-")
    subject.put("log.txt", b"theirs", generation=base.generation)

    with pytest.raises(PreconditionConflict, match=r"log\.txt"):
        subject.storage.append(
            subject.bucket, "log.txt", subject.source(b"head-tail"), 5, "text/plain", {}, base.generation
        )
    assert subject.content("log.txt") == b"theirs"
    assert [name for name in subject.names() if name.startswith(TEMPORARY_PREFIX)] == []


def test_a_listing_pages_and_rolls_names_up_into_prefixes(subject) -> None:
    for index in range(7):
        subject.put(f"data/file-{index}.csv", b"x", {"k": str(index)})
    for name in ("data/sub/nested.csv", "data/other/deeper/f", "elsewhere.txt"):
        subject.put(name, b"y")
    storage = subject.storage

    shallow = storage.list(subject.bucket, "data/", delimiter="/", page_size=3)
    deep = storage.list(subject.bucket, "data/", page_size=2)

    assert [stat.name for stat in shallow.objects] == [f"data/file-{index}.csv" for index in range(7)]
    assert [stat.metadata["k"] for stat in shallow.objects] == [str(index) for index in range(7)]
    assert shallow.prefixes == ["data/other/", "data/sub/"]
    assert [stat.name for stat in deep.objects] == sorted(
        [f"data/file-{index}.csv" for index in range(7)] + ["data/sub/nested.csv", "data/other/deeper/f"]
    )
    assert deep.prefixes == []
    assert storage.list(subject.bucket, "nothing/", delimiter="/").objects == []


def test_a_listing_with_trailing_delimiters_holds_the_placeholders_with_their_metadata(subject) -> None:
    storage = subject.storage
    storage.create_placeholder(subject.bucket, "top/made/", {"goog-reserved-posix-mode": "700"})
    storage.create_placeholder(subject.bucket, "top/")
    for name in ("top/made/inside", "top/bare/inside", "top/file"):
        subject.put(name, b"x")

    plain = storage.list(subject.bucket, "top/", delimiter="/")
    trailing = storage.list(subject.bucket, "top/", delimiter="/", trailing_delimiter=True)

    assert [stat.name for stat in plain.objects] == ["top/", "top/file"]
    assert [stat.name for stat in trailing.objects] == ["top/", "top/file", "top/made/"]
    assert trailing.objects[2].metadata == {"goog-reserved-posix-mode": "700"}
    assert plain.prefixes == trailing.prefixes == ["top/bare/", "top/made/"]


def test_a_limited_listing_stops_at_its_first_full_page(subject) -> None:
    for name in ("d/a", "d/b", "d/c", "d/e/f"):
        subject.put(name, b"x")

    listing = subject.storage.list(subject.bucket, "d/", delimiter="/", limit=2)

    # GCS counts prefixes in a page's entries, fake-gcs-server only objects: either way the first page
    # holds at least `limit` entries when there are that many, which is what callers rely on.
    assert len(listing.objects) + len(listing.prefixes) >= 2
    assert [stat.name for stat in listing.objects] == ["d/a", "d/b"]


def _streamed(subject: Subject, data: bytes, generation: int = 0) -> tuple[StreamingUpload, Path]:
    path = subject.source(data)
    upload = subject.storage.start_upload(
        CloudLocation(subject.bucket, "big.bin"), "application/octet-stream", {"k": "v"}, generation
    )
    return upload, path


def test_a_session_takes_the_object_in_parts(subject) -> None:
    data = os.urandom(2 * SESSION_GRANULE + 1000)
    upload, path = _streamed(subject, data)
    with open(path, "rb") as file:
        upload.send(file.fileno(), SESSION_GRANULE)
        upload.send(file.fileno(), 2 * SESSION_GRANULE)
        stat = upload.finish(file.fileno(), len(data))

    assert (stat.size, stat.crc32c, dict(stat.metadata)) == (len(data), crc32c_of_bytes(data), {"k": "v"})
    assert stat.content_type == "application/octet-stream"
    assert subject.content("big.bin") == data


def test_a_session_whose_last_part_was_sent_ends_with_no_bytes(subject) -> None:
    data = os.urandom(SESSION_GRANULE)
    upload, path = _streamed(subject, data)
    with open(path, "rb") as file:
        upload.send(file.fileno(), SESSION_GRANULE)
        stat = upload.finish(file.fileno(), len(data))
    assert stat.size == len(data) and subject.content("big.bin") == data


def test_a_session_checks_its_guard_when_it_makes_the_object(subject) -> None:
    data = os.urandom(SESSION_GRANULE + 10)
    upload, path = _streamed(subject, data)
    with open(path, "rb") as file:
        upload.send(file.fileno(), SESSION_GRANULE)
        subject.put("big.bin", b"theirs")
        with pytest.raises(PreconditionConflict, match=r"big\.bin"):
            upload.finish(file.fileno(), len(data))
    assert subject.content("big.bin") == b"theirs"
    assert upload.made(len(data)) is None


def test_a_cancelled_session_makes_no_object(subject) -> None:
    data = os.urandom(SESSION_GRANULE + 10)
    upload, path = _streamed(subject, data)
    with open(path, "rb") as file:
        upload.send(file.fileno(), SESSION_GRANULE)
    upload.cancel()
    assert subject.storage.stat(subject.bucket, "big.bin") is None


def test_an_upload_is_recognised_as_ours_only_when_bytes_and_metadata_match(subject) -> None:
    stat = subject.put("f.txt", b"mine", {"k": "v"})
    storage = subject.storage
    assert storage.own_lost_upload(subject.bucket, "f.txt", stat.crc32c, 4, {"k": "v"}) == stat
    assert storage.own_lost_upload(subject.bucket, "f.txt", stat.crc32c, 4, {"k": "other"}) is None
    assert storage.own_lost_upload(subject.bucket, "f.txt", crc32c_of_bytes(b"else"), 4, {"k": "v"}) is None
    assert storage.own_lost_upload(subject.bucket, "missing", stat.crc32c, 4, {"k": "v"}) is None
