"""A mount behind a misbehaving network: the test proxy delays replies, answers 429/503, resets
connections, cuts bodies short and plays a dead server, each fault bounded in count or time.

What must hold through real syscalls on a real mount: transient faults are retried and the bytes
read are exactly the object's; a body cut short is never served as data; a server that goes away
mid-read gives the reader EIO, leaves the daemon running, and reads work again once it is back;
an upload that cannot reach the server fails close(), keeps the staged bytes, and a later fsync
sends them; an upload the server stored but whose reply was lost is a success, not a conflict.

"The server killed" is the proxy's `down()` switch: in-flight replies are lost and every request
has its connection reset until `up()`, which is what octuefs sees of a killed server. Killing the
real server would lose its in-memory buckets, so it could not "come back" with the same objects.

Covered elsewhere and not repeated here: a permanent 403 on a read (test_read.py), an upload
failing with 503s at close and a later fsync sending it (test_write_failures.py), bytes kept by
failed uploads uploaded by the next mount (test_crash_recovery.py).
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pytest

from tests.mount.conftest import CALL_TIMEOUT, alive
from tests.mount.test_write_failures import staged_copies, wait_for_failed_uploads
from tests.support.http_proxy import Fault

pytestmark = pytest.mark.timeout(90)

KiB = 1024
MiB = 1024 * KiB
MEDIA = "alt=media"
# Retries must outlast a storm whatever backoff they draw, so those tests mount with a long deadline.
PATIENT = ("--retry-deadline", "30")


def in_background(function: Callable[..., Any], *args: Any) -> Future:
    """Start a syscall on the mount without waiting for it; `.result(timeout)` bounds the wait, and
    the daemon thread cannot keep pytest alive if the mount never answers."""
    future: Future = Future()

    def target() -> None:
        try:
            future.set_result(function(*args))
        except BaseException as error:
            future.set_exception(error)

    threading.Thread(target=target, daemon=True).start()
    return future


def wait_until(condition: Callable[[], bool], seconds: float = CALL_TIMEOUT) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def faulted(proxy, kind: str) -> int:
    """Media requests that got the fault `kind`."""
    return sum(1 for request in proxy.requests if request.kind == "media" and request.fault == kind)


# Transient faults during a read -------------------------------------------------------------


def test_a_503_storm_during_a_read_is_retried_and_the_bytes_are_right(mount, bucket, proxy):
    content = os.urandom(3 * MiB + 12345)
    bucket.blob("storm.bin").upload_from_string(content)
    mounted = mount("", *PATIENT)
    mounted.sh("stat", mounted / "storm.bin")
    proxy.add(Fault("status", "GET", MEDIA, remaining=1, status=429))
    # A count, not a time: under load the retry after the 429 can come after a timed storm has passed.
    proxy.add(Fault("status", "GET", MEDIA, remaining=4, status=503))

    assert mounted.sh("cat", mounted / "storm.bin").stdout == content

    statuses = [request.status for request in proxy.requests if request.kind == "media"]
    assert 429 in statuses and 503 in statuses, statuses
    assert alive(mounted.pid)


@pytest.mark.parametrize(
    "fault",
    [
        Fault("reset", "GET", MEDIA, remaining=2),
        Fault("reset", "GET", MEDIA, remaining=2, after_server=True),
        Fault("truncate", "GET", MEDIA, remaining=2, keep=1000),
        Fault("short", "GET", MEDIA, remaining=2, keep=1000),
        Fault("truncate", "GET", MEDIA, remaining=2, keep=0),
    ],
    ids=["reset-before-reply", "reset-instead-of-reply", "truncated-body", "short-body", "headers-only"],
)
def test_broken_transfers_during_a_read_are_retried_and_the_bytes_are_right(mount, bucket, proxy, fault):
    content = os.urandom(2 * MiB + 777)
    bucket.blob("data.bin").upload_from_string(content)
    mounted = mount("", *PATIENT)
    mounted.sh("stat", mounted / "data.bin")
    proxy.add(fault)

    assert mounted.sh("cat", mounted / "data.bin").stdout == content

    assert faulted(proxy, fault.kind) == 2
    assert alive(mounted.pid)


def test_a_slow_reply_for_one_file_does_not_hold_up_reads_of_another(mount, bucket, proxy):
    slow, quick = os.urandom(300 * KiB), os.urandom(300 * KiB)
    bucket.blob("slow.bin").upload_from_string(slow)
    bucket.blob("quick.bin").upload_from_string(quick)
    mounted = mount()
    mounted.sh("stat", mounted / "slow.bin", mounted / "quick.bin")
    held = proxy.add(Fault("delay", "GET", r"/o/slow\.bin\?.*alt=media", remaining=1, seconds=3.0))

    pending = in_background((mounted / "slow.bin").read_bytes)
    wait_until(lambda: held.remaining == 0)
    assert mounted.read_bytes("quick.bin") == quick
    assert not pending.done(), "the delayed read finished before the other file's read"

    assert pending.result(timeout=CALL_TIMEOUT) == slow
    assert faulted(proxy, "delay") == 1


def test_sixteen_stalled_uploads_do_not_hold_up_stat_ls_or_reads(mount, bucket, proxy):
    """Uploads wait on their own threads: with one pool for everything, as many slow uploads as the
    mount has storage threads (16 by default) left lookups, listings and reads waiting behind them."""
    content = os.urandom(100 * KiB)
    bucket.blob("elsewhere/data.bin").upload_from_string(content)
    # An answer must come within the retry deadline (each attempt's timeouts are cut to what is left of
    # it): the 8 s replies need more than the fixture's 5 s.
    mounted = mount("", *PATIENT)
    held = proxy.add(Fault("delay", "POST", r"/upload/", remaining=16, seconds=8.0))

    closes = [in_background((mounted / f"new-{index}.txt").write_bytes, b"x" * index) for index in range(16)]
    wait_until(lambda: held.remaining == 0)
    started = time.monotonic()
    mounted.sh("stat", mounted / "elsewhere" / "data.bin")
    listed = mounted.sh("ls", mounted / "elsewhere").stdout
    read = mounted.read_bytes("elsewhere/data.bin")
    elapsed = time.monotonic() - started

    assert (listed, read) == (b"data.bin\n", content)
    assert elapsed < 4.0, f"stat, ls and cat took {elapsed:.1f} s behind the stalled uploads"
    assert not any(close.done() for close in closes), "an upload finished before the stat, ls and read"
    for close in closes:
        close.result(timeout=CALL_TIMEOUT)
    assert sorted(blob.name for blob in bucket.list_blobs(prefix="new-")) == sorted(f"new-{i}.txt" for i in range(16))


# A body cut short is never data -------------------------------------------------------------


def test_bodies_cut_short_until_the_deadline_give_eio_never_short_data(mount, bucket, proxy):
    content = os.urandom(MiB + 4321)
    bucket.blob("cut.bin").upload_from_string(content)
    mounted = mount()
    mounted.sh("stat", mounted / "cut.bin")
    proxy.add(Fault("truncate", "GET", MEDIA, remaining=None, lasting=60, keep=MiB // 2))

    fd = mounted.call(os.open, mounted / "cut.bin", os.O_RDONLY)
    try:
        with pytest.raises(OSError) as raised:
            mounted.call(os.pread, fd, 128 * KiB, 0)
        assert raised.value.errno == errno.EIO
        assert faulted(proxy, "truncate") >= 2, "the cut body was not retried"
        assert alive(mounted.pid)

        proxy.reset()
        assert mounted.call(os.pread, fd, 128 * KiB, 0) == content[: 128 * KiB]
    finally:
        mounted.call(os.close, fd)
    assert mounted.sh("cat", mounted / "cut.bin").stdout == content


def test_a_small_file_with_a_damaged_body_is_fetched_again_not_served(mount, bucket, proxy):
    content = b"t,speed\n" + b"".join(b"%d,%d.5\n" % (second, second % 25) for second in range(2000))
    bucket.blob("readings.csv").upload_from_string(content)
    mounted = mount("", *PATIENT)
    mounted.sh("stat", mounted / "readings.csv")
    proxy.corrupt("GET", MEDIA, count=1)

    assert mounted.sh("cat", mounted / "readings.csv").stdout == content
    assert faulted(proxy, "corrupt") == 1


# The server gone mid-read ------------------------------------------------------------------


def test_server_gone_mid_read_is_eio_and_reads_work_once_it_is_back(mount, bucket, proxy):
    content = os.urandom(8 * MiB)
    bucket.blob("run.bin").upload_from_string(content)
    mounted = mount()
    late = 6 * MiB
    fd = mounted.call(os.open, mounted / "run.bin", os.O_RDONLY)
    try:
        assert mounted.call(os.pread, fd, 64 * KiB, 0) == content[: 64 * KiB]
        held = proxy.add(Fault("delay", "GET", MEDIA, remaining=1, seconds=1.0))

        pending = in_background(os.pread, fd, 64 * KiB, late)
        wait_until(lambda: held.remaining == 0)  # the read's GET is at the server, its reply not sent yet
        proxy.down(lasting=60)
        with pytest.raises(OSError) as raised:
            pending.result(timeout=CALL_TIMEOUT)
        assert raised.value.errno == errno.EIO
        assert alive(mounted.pid)
        with pytest.raises(OSError) as raised:
            mounted.call(os.pread, fd, 64 * KiB, late)
        assert raised.value.errno == errno.EIO

        proxy.up()
        mounted.wait_until_server_found()
        assert mounted.call(os.pread, fd, 64 * KiB, late) == content[late : late + 64 * KiB]
    finally:
        proxy.up()
        mounted.call(os.close, fd)
    assert mounted.sh("cat", mounted / "run.bin").stdout == content
    assert alive(mounted.pid)


# Uploads that cannot reach the server ------------------------------------------------------


def test_upload_with_the_server_gone_fails_close_keeps_the_bytes_and_a_later_fsync_sends_them(mount, bucket, proxy):
    content = os.urandom(200_000)
    mounted = mount()
    location = f"gs://{bucket.name}/out.bin"

    fd = mounted.call(os.open, mounted / "out.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    mounted.call(os.write, fd, content)
    proxy.down(lasting=60)
    with pytest.raises(OSError) as raised:
        mounted.call(os.close, fd)
    assert raised.value.errno == errno.EIO
    wait_for_failed_uploads(mounted, location, 2)

    kept = staged_copies(mounted.log, location)
    assert kept[-1].read_bytes() == content
    assert alive(mounted.pid)
    assert bucket.get_blob("out.bin") is None
    proxy.up()  # from now on the lander (test_landing.py) may send them before the fsync does
    mounted.wait_until_server_found()

    fd = mounted.call(os.open, mounted / "out.bin", os.O_RDWR)
    try:
        assert mounted.call(os.pread, fd, len(content) + 1, 0) == content
        mounted.call(os.fsync, fd)
        blob = bucket.get_blob("out.bin")
        assert blob is not None, "fsync did not upload the kept bytes"
        assert blob.download_as_bytes() == content
        assert "octue__id" in blob.metadata
    finally:
        mounted.call(os.close, fd)


def test_upload_whose_reply_is_lost_is_not_reported_as_a_conflict(mount, bucket, proxy):
    content = os.urandom(100_000)
    mounted = mount()
    proxy.add(Fault("reset", "POST", r"/upload/", remaining=1, after_server=True))

    mounted.call((mounted / "out.bin").write_bytes, content)

    blob = bucket.get_blob("out.bin")
    assert blob is not None and blob.download_as_bytes() == content
    assert "octue__id" in blob.metadata
    assert next(request.fault for request in proxy.requests if request.kind == "upload") == "reset"
    assert mounted.read_bytes("out.bin") == content
