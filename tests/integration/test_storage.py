"""The storage boundary against the real server: pagination, ranges, retries, one client per process."""

from __future__ import annotations

import os

import pytest

from octuefs.errors import CloudObjectNotFound, StorageError
from octuefs.storage.gcs import get_storage
from tests.support.http_proxy import Fault


def test_one_client_per_process(proxy) -> None:
    assert get_storage() is get_storage()
    child = os.fork()
    if child == 0:
        os._exit(0 if get_storage() is not None else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_listing_follows_every_page_and_returns_prefixes(bucket, proxy) -> None:
    for index in range(7):
        blob = bucket.blob(f"data/file-{index}.csv")
        blob.metadata = {"k": str(index)}
        blob.upload_from_string(b"x")
    bucket.blob("data/sub/nested.csv").upload_from_string(b"y")
    proxy.reset()

    listing = get_storage().list(bucket.name, "data/", delimiter="/", page_size=3)

    assert [stat.name for stat in listing.objects] == [f"data/file-{index}.csv" for index in range(7)]
    assert [stat.metadata["k"] for stat in listing.objects] == [str(index) for index in range(7)]
    assert listing.prefixes == ["data/sub/"]
    assert proxy.kinds() == ["list", "list", "list"]


def test_ranged_read_fetches_only_the_range(bucket, proxy) -> None:
    content = bytes(range(256)) * 4096
    bucket.blob("big.bin").upload_from_string(content)
    storage = get_storage()
    stat = storage.require_stat(bucket.name, "big.bin")
    proxy.reset()

    assert storage.read_range(stat, 1000, 5000) == content[1000:5000]
    assert storage.read_range(stat, len(content) - 10, len(content) + 100) == content[-10:]
    assert storage.read_range(stat, len(content), len(content) + 5) == b""

    assert [request.range for request in proxy.requests] == [
        "bytes=1000-4999",
        f"bytes={len(content) - 10}-{len(content) - 1}",
    ]
    assert [request.response_bytes for request in proxy.requests] == [4000, 10]


def test_ranged_read_pins_the_generation(bucket, proxy) -> None:
    bucket.blob("f.txt").upload_from_string(b"first version")
    storage = get_storage()
    stat = storage.require_stat(bucket.name, "f.txt")
    bucket.blob("f.txt").upload_from_string(b"second version")

    with pytest.raises(CloudObjectNotFound, match=r"f\.txt"):
        storage.read_range(stat, 0, 5)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_errors_are_retried(bucket, proxy, status) -> None:
    bucket.blob("f.txt").upload_from_string(b"hello")
    proxy.reset()
    proxy.inject("GET", r"/o/f\.txt", status, count=2)

    stat = get_storage().stat(bucket.name, "f.txt")

    assert stat is not None and stat.size == 5
    assert proxy.kinds() == ["stat", "stat", "stat"]
    assert [request.status for request in proxy.requests] == [status, status, 200]


@pytest.mark.parametrize(
    "fault",
    [
        Fault("reset", "GET", "alt=media"),
        Fault("truncate", "GET", "alt=media", keep=100),
        Fault("short", "GET", "alt=media", keep=100),
        Fault("corrupt", "GET", "alt=media"),
    ],
    ids=["reset", "truncated", "short", "damaged-whole-object"],
)
def test_broken_transfers_are_retried_never_returned(bucket, proxy, fault) -> None:
    content = os.urandom(5000)
    bucket.blob("f.bin").upload_from_string(content)
    storage = get_storage()
    stat = storage.require_stat(bucket.name, "f.bin")
    proxy.add(fault)

    assert storage.read_range(stat, 0, len(content)) == content
    assert [request.fault for request in proxy.requests if request.kind == "media"] == [fault.kind, None]


def test_a_body_cut_short_every_time_is_an_error(bucket, proxy) -> None:
    bucket.blob("f.bin").upload_from_string(os.urandom(5000))
    storage = get_storage()
    stat = storage.require_stat(bucket.name, "f.bin")
    proxy.add(Fault("short", "GET", "alt=media", remaining=None, lasting=30, keep=100))

    with pytest.raises(StorageError, match=r"f\.bin.*got 100"):
        storage.read_range(stat, 1000, 2000)


def test_upload_whose_reply_is_lost_returns_the_stored_object(bucket, proxy, tmp_path) -> None:
    source = tmp_path / "f.bin"
    source.write_bytes(os.urandom(1000))
    proxy.add(Fault("reset", "POST", "/upload/", after_server=True))

    stat = get_storage().upload(bucket.name, "f.bin", source, "application/octet-stream", {"k": "v"}, 0)

    stored = bucket.get_blob("f.bin")
    assert stored.download_as_bytes() == source.read_bytes()
    assert (stat.generation, stat.metadata) == (stored.generation, {"k": "v"})
    assert [request.fault for request in proxy.requests if request.kind == "upload"] == ["reset", None]


def test_permanent_error_names_the_object(bucket, proxy) -> None:
    proxy.inject("GET", r"/o/f\.txt", 403, count=1)
    with pytest.raises(StorageError, match=rf"gs://{bucket.name}/f.txt.*403"):
        get_storage().stat(bucket.name, "f.txt")


def test_missing_object_and_bucket(bucket, proxy) -> None:
    storage = get_storage()
    assert storage.stat(bucket.name, "nothing-here") is None
    assert storage.stat("no-such-bucket-octuefs", "x") is None
    with pytest.raises(CloudObjectNotFound):
        storage.require_stat(bucket.name, "nothing-here")
