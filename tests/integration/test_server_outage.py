"""The storage client with the server away, through the real server and the fault proxy: short outages
are ridden out, a long one fails the first operation within 30 s and later ones at once (the circuit
breaker), the server's return is noticed by the probe, and a stalled ranged GET is retried.

Each test builds its own `GCSStorage` with the DEFAULT settings (only the endpoint is given), so
what is measured is what users get, and a breaker opened here never reaches another test.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

import octuefs
from octuefs.errors import CloudObjectNotFound, PreconditionConflict, ServerUnavailable, StorageError
from octuefs.storage.gcs import PROBE_TIMEOUT, GCSStorage
from octuefs.storage.health import DOWN, PROBE_INTERVAL, UP
from octuefs.storage.objects import StorageSettings
from tests.support.http_proxy import Fault

pytestmark = pytest.mark.timeout(120)

KiB = 1024
MiB = 1024 * KiB
# The promises measured here (docs): the first failure within 30 s, later ones within 2 s.
FIRST_FAILURE_BOUND = 30.0
LATER_FAILURE_BOUND = 2.0
RESET = "Connection reset by peer"


@pytest.fixture
def fresh(proxy) -> Iterator[Callable[..., GCSStorage]]:
    """`fresh(**settings)`: a client of its own on the proxy, default settings unless given."""
    made: list[GCSStorage] = []

    def build(**settings: float) -> GCSStorage:
        storage = GCSStorage(StorageSettings(endpoint=proxy.url, **settings))
        made.append(storage)
        return storage

    yield build
    proxy.up()
    for storage in made:
        storage.health.close()


def timed(function: Callable[[], object]) -> tuple[float, BaseException | None]:
    started = time.monotonic()
    try:
        function()
    except Exception as error:
        return time.monotonic() - started, error
    return time.monotonic() - started, None


def wait_for(condition: Callable[[], bool], seconds: float) -> float:
    """Seconds until `condition()` held; fails past `seconds`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, "condition not reached in time"
        time.sleep(0.02)
    return time.monotonic() - started


def probes(proxy, bucket) -> int:
    """The breaker's probes seen by the proxy: GETs of the bucket resource itself."""
    return sum(1 for request in proxy.requests if request.path.split("?")[0] == f"/storage/v1/b/{bucket.name}")


# Short outages are ridden out ------------------------------------------------------------------


def test_three_503s_in_a_row_still_succeed(bucket, proxy, fresh):
    bucket.blob("f.txt").upload_from_string(b"abc")
    storage = fresh()
    proxy.inject("GET", r"/o/f\.txt", 503, count=3)

    assert storage.stat(bucket.name, "f.txt").size == 3

    assert [request.status for request in proxy.requests] == [503, 503, 503, 200]
    assert storage.health.snapshot()["state"] == UP and storage.health.outages == 0


def test_two_dropped_connections_in_a_row_still_succeed(bucket, proxy, fresh):
    content = os.urandom(300 * KiB)
    bucket.blob("f.bin").upload_from_string(content)
    storage = fresh()
    stat = storage.stat(bucket.name, "f.bin")
    proxy.add(Fault("reset", "GET", "alt=media", remaining=2))

    assert storage.read_range(stat, 0, len(content)) == content

    assert [request.fault for request in proxy.requests if request.kind == "media"] == ["reset", "reset", None]
    assert storage.health.state == UP and storage.health.outages == 0


# A long outage: fail within 30 s, then at once, until the probe finds the server ----------------


def test_server_down_fails_the_first_operation_within_30_s_later_ones_at_once_and_its_return_is_noticed(
    bucket, proxy, fresh, caplog
):
    caplog.set_level(logging.INFO, logger="octuefs.storage.health")
    bucket.blob("known.txt").upload_from_string(b"abc")
    storage = fresh()
    known = storage.stat(bucket.name, "known.txt")
    recovered = threading.Event()
    storage.health.on_recovered(recovered.set)
    proxy.down(300)

    first, error = timed(lambda: storage.stat(bucket.name, "data/a.csv"))
    assert isinstance(error, ServerUnavailable), error
    assert f"gs://{bucket.name}/data/a.csv" in str(error) and RESET in str(error)
    assert first < FIRST_FAILURE_BOUND, f"the first failure took {first:.1f} s"
    assert storage.health.state == DOWN and storage.health.outages == 1

    later = {
        "stat": lambda: storage.stat(bucket.name, "data/b.csv"),
        "list": lambda: storage.list(bucket.name, "data/", delimiter="/"),
        "read": lambda: storage.read_range(known, 0, 3),
    }
    times = {}
    for name, operation in later.items():
        times[name], error = timed(operation)
        assert isinstance(error, ServerUnavailable), (name, error)
        assert f"gs://{bucket.name}/" in str(error) and "unreachable since" in str(error) and RESET in str(error)
        assert times[name] < LATER_FAILURE_BOUND, f"{name} failed after {times[name]:.1f} s"
    lost = [record.getMessage() for record in caplog.records if "storage server lost" in record.getMessage()]
    assert len(lost) == 1 and RESET in lost[0]

    proxy.up()
    noticed = wait_for(lambda: storage.health.state == UP, PROBE_INTERVAL + PROBE_TIMEOUT + 5)
    assert recovered.wait(5)
    assert storage.stat(bucket.name, "known.txt") == known
    found = [record.getMessage() for record in caplog.records if "storage server found again" in record.getMessage()]
    assert len(found) == 1 and " s away" in found[0]
    snapshot = storage.health.snapshot()
    assert snapshot["lost_at"] and snapshot["found_at"] and snapshot["outages"] == 1
    print(f"\nmeasured: first failure {first:.1f} s, later {times}, recovery noticed after {noticed:.1f} s")


def test_a_server_that_accepts_connections_and_never_answers_fails_within_30_s(bucket, proxy, fresh):
    bucket.blob("f.txt").upload_from_string(b"abc")
    storage = fresh()
    storage.stat(bucket.name, "f.txt")
    proxy.add(Fault("delay", None, r".*", remaining=None, lasting=90, seconds=90))

    first, error = timed(lambda: storage.stat(bucket.name, "g.txt"))
    assert isinstance(error, ServerUnavailable), error
    assert f"gs://{bucket.name}/g.txt" in str(error)
    assert first < FIRST_FAILURE_BOUND, f"the first failure took {first:.1f} s"
    assert storage.health.state == DOWN

    later, error = timed(lambda: storage.stat(bucket.name, "h.txt"))
    assert isinstance(error, ServerUnavailable) and later < LATER_FAILURE_BOUND
    print(f"\nmeasured: never answering: first failure {first:.1f} s, later {later:.2f} s")


# Read stalls ---------------------------------------------------------------------------------------


def warmed(storage: GCSStorage, bucket, name: str, size: int):
    """An object and enough recent ranged reads of it for the stall timeout to follow their latency."""
    content = os.urandom(size)
    bucket.blob(name).upload_from_string(content)
    stat = storage.stat(bucket.name, name)
    for index in range(10):
        assert storage.read_range(stat, index * 1000, index * 1000 + 100) == content[index * 1000 : index * 1000 + 100]
    return stat, content


def test_a_stalled_ranged_get_is_abandoned_and_retried(bucket, proxy, fresh, caplog):
    caplog.set_level(logging.INFO, logger="octuefs.storage.gcs")
    storage = fresh()
    stat, content = warmed(storage, bucket, "stall.bin", MiB)
    proxy.reset()
    held = proxy.add(Fault("delay", "GET", "alt=media", remaining=1, seconds=40))

    elapsed, error = timed(lambda: storage.read_range(stat, 0, MiB))

    assert error is None, error
    assert held.remaining == 0
    assert elapsed < 10, f"the stalled read took {elapsed:.1f} s"
    assert storage.stats.stalled_reads_retried == 1
    assert storage.stats.snapshot()["stalled_reads_retried"] == 1
    assert storage.read_range(stat, 0, MiB) == content
    assert any("stalled" in record.getMessage() and "retrying" in record.getMessage() for record in caplog.records)
    assert storage.health.state == UP
    print(f"\nmeasured: stalled read completed in {elapsed:.1f} s")


def test_a_slow_but_flowing_read_is_not_abandoned(bucket, proxy, fresh):
    storage = fresh()
    stat, content = warmed(storage, bucket, "slow.bin", MiB)
    proxy.reset()
    # 16 pieces 0.4 s apart: 6 s in all, three times the stall timeout, but never 2 s without a byte.
    proxy.add(Fault("trickle", "GET", "alt=media", remaining=1, keep=64 * KiB, seconds=0.4))

    elapsed, error = timed(lambda: storage.read_range(stat, 0, MiB))

    assert error is None, error
    assert elapsed > 5
    assert storage.stats.stalled_reads_retried == 0
    assert [request.fault for request in proxy.requests if request.kind == "media"] == ["trickle"]
    assert storage.read_range(stat, 0, MiB) == content


# What never opens the breaker ------------------------------------------------------------------


def test_refusals_never_open_the_breaker_even_when_one_transient_failure_would(bucket, proxy, fresh, tmp_path):
    bucket.blob("f.txt").upload_from_string(b"abc")
    source = tmp_path / "source"
    source.write_bytes(b"new")
    storage = fresh()
    storage.health.trip_after = 0  # any transient failure suspects the server (and probes)
    stat = storage.stat(bucket.name, "f.txt")
    proxy.reset()

    assert storage.stat(bucket.name, "missing.txt") is None  # 404
    with pytest.raises(CloudObjectNotFound):
        storage.read_range(replace(stat, name="gone.txt"), 0, 3)
    with pytest.raises(PreconditionConflict):  # 412
        storage.upload(bucket.name, "f.txt", source, "text/plain", {}, if_generation_match=stat.generation + 1)
    for status in (400, 403):
        proxy.inject("GET", r"/o/f\.txt", status)
        with pytest.raises(StorageError) as raised:
            storage.stat(bucket.name, "f.txt")
        assert not isinstance(raised.value, ServerUnavailable)

    assert storage.health.state == UP and probes(proxy, bucket) == 0

    proxy.inject("GET", r"/o/f\.txt", 503)  # the contrast: one transient failure makes it ask the server
    assert storage.stat(bucket.name, "f.txt") == stat
    assert probes(proxy, bucket) == 1 and storage.health.state == UP and storage.health.outages == 0


def test_a_400_is_a_storage_error_naming_the_object_but_not_server_unavailable(bucket, proxy, fresh):
    bucket.blob("f.txt").upload_from_string(b"abc")
    storage = fresh()
    proxy.inject("GET", r"/o/f\.txt", 400)

    with pytest.raises(StorageError) as raised:
        storage.stat(bucket.name, "f.txt")

    assert not isinstance(raised.value, ServerUnavailable)
    assert f"gs://{bucket.name}/f.txt" in str(raised.value) and "400" in str(raised.value)
    assert [request.status for request in proxy.requests] == [400]  # refused: not retried


# The mount's start-up check and the Datafile library ---------------------------------------------


def test_the_bucket_check_is_sent_even_while_the_server_is_thought_lost_and_its_answer_finds_it(bucket, proxy, fresh):
    storage = fresh(retry_deadline=2.0)
    proxy.down(300)
    with pytest.raises(ServerUnavailable):
        storage.stat(bucket.name, "a.txt")
    assert storage.health.state == DOWN

    with pytest.raises(ServerUnavailable, match="gave up"):  # really asked (not refused at once)
        storage.bucket_exists(bucket.name, deadline=1.0)

    proxy.up()
    elapsed, error = timed(lambda: storage.bucket_exists(bucket.name, deadline=1.0))
    assert error is None and elapsed < 1.0
    assert storage.health.state == UP  # at once, without waiting for the probe


@pytest.fixture
def library_deadline(proxy) -> Iterator[None]:
    """The library's shared client with a 2 s retry deadline; rebuilt afterwards (which ends its breaker)."""
    octuefs.configure(retry_deadline=2.0)
    try:
        yield
    finally:
        proxy.up()
        octuefs.configure(endpoint=proxy.url, retry_deadline=10.0)


def test_the_datafile_library_fails_at_once_while_the_server_is_lost_and_works_once_it_is_back(
    bucket, proxy, library_deadline
):
    bucket.blob("a.csv").upload_from_string(b"t,v\n1,2\n")
    bucket.blob("b.csv").upload_from_string(b"t,v\n3,4\n")
    proxy.down(300)

    with pytest.raises(ServerUnavailable, match=f"gs://{bucket.name}/a.csv"):
        octuefs.Datafile(f"gs://{bucket.name}/a.csv")
    later, error = timed(lambda: octuefs.Datafile(f"gs://{bucket.name}/b.csv"))
    assert isinstance(error, ServerUnavailable) and "unreachable since" in str(error)
    assert later < LATER_FAILURE_BOUND

    proxy.up()
    wait_for(lambda: timed(lambda: octuefs.Datafile(f"gs://{bucket.name}/b.csv"))[1] is None, PROBE_INTERVAL + 5)
    with octuefs.Datafile(f"gs://{bucket.name}/b.csv").open() as file:
        assert file.read() == "t,v\n3,4\n"
