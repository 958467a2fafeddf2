"""Running a mount: build the engine pieces, mount with pyfuse3, serve until unmounted or signalled."""

from __future__ import annotations

import ctypes
import logging
import os
import resource
import signal
import socket
import sys
from collections.abc import Callable
from typing import NoReturn

import pyfuse3
import trio

from octuefs.cache import ChunkCache
from octuefs.fs.config import MountConfig
from octuefs.fs.metrics import serve_metrics
from octuefs.fs.operations import BucketOperations
from octuefs.fs.runtime import pid_file, prepare_runtime_directory, write_pid_file
from octuefs.logs import formatter
from octuefs.private_files import make_directories, open_private
from octuefs.storage.gcs import configure, get_storage
from octuefs.uploads.staging import StagingArea, recover, remove_stale_parts
from octuefs.uploads.uploader import Uploader

logger = logging.getLogger(__name__)


# glibc's mallopt() parameter (malloc.h) bounding how many malloc arenas the process may create.
M_ARENA_MAX = -8
MALLOC_ARENAS = 2


def limit_malloc_arenas() -> None:
    """Keep glibc from giving each worker thread a malloc arena of its own.

    Storage threads allocate and free multi-MiB buffers (ranged reads, uploads). With an arena per
    thread (glibc allows 8 per core), freed memory stays scattered over arenas and is not given back,
    and the daemon's resident memory creeps to about twice what it uses (tests/mount/test_stress.py
    measured ~400 MiB against ~200 MiB with two arenas). The threads mostly wait on the network or the
    GIL, so sharing arenas costs nothing measurable. MALLOC_ARENA_MAX in the environment still wins.
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc: its allocator does not work this way
        return
    mallopt(M_ARENA_MAX, MALLOC_ARENAS)


def raise_descriptor_limit() -> None:
    """Use every descriptor the hard limit allows: systemd and most shells start programs with a soft
    limit of 1024, which a mount serving many programs (each read or upload holds a connection, the
    chunk cache its files) can reach while the hard limit is far higher."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        logger.info("raised the open file limit from %d to %d", soft, hard)


def notify_systemd(state: str) -> None:
    """Tell systemd (Type=notify) about the daemon; a no-op when not started by systemd.

    The protocol is one datagram on the socket named by NOTIFY_SOCKET, so no dependency is needed.
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as connection:
        connection.sendto(state.encode(), address)


def fuse_options(config: MountConfig) -> set[str]:
    """Always `nodev`: a device node from the bucket is shown (tar and rsync keep it) but never opens a
    local device, as anyone who can write the bucket could make one (see docs/security.md)."""
    options = set(pyfuse3.default_options) | {f"fsname={config.source.replace(',', '_')}", "subtype=octuefs", "nodev"}
    if config.allow_other:
        options.add("allow_other")
    if config.read_only:
        options.add("ro")
    return options


def setup_logging(config: MountConfig) -> None:
    log_file = config.resolved_log_file
    handler: logging.Handler
    if log_file is not None:
        make_directories(log_file.parent)
        # Not FileHandler: it would follow a planted symlink and write wherever it points, as root too.
        handle = open_private(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        handler = logging.StreamHandler(os.fdopen(handle, "a", encoding="utf-8"))
    else:
        handler = logging.StreamHandler()
    handler.setFormatter(formatter(config.log_format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if config.debug else logging.INFO)
    for noisy in ("urllib3", "google", "trio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Warnings (metadata another writer stored badly, named by object and field) belong in the log.
    logging.captureWarnings(True)


# What asks the daemon to stop: systemd and kill (SIGTERM), Ctrl-C (SIGINT), a closed terminal (SIGHUP).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class StopSignals:
    """The stop signals, caught from just before the kernel gets the mount until the process ends.

    One arriving before the loop serves (or during its start) is acted on as soon as it does; until
    then, the default action would kill the daemon with the mount in place, and every later access
    would fail with ENOTCONN. One arriving after the loop has ended is ignored: clean-up is the stop.
    """

    def __init__(self) -> None:
        self.received: list[int] = []
        for number in STOP_SIGNALS:
            signal.signal(number, self._remember)

    def _remember(self, number: int, frame: object) -> None:
        self.received.append(number)

    async def stop_on_signal(self, stop_timeout: float, serving: trio.CancelScope) -> None:
        """Take no new operations once a signal comes, give those in progress `stop_timeout` seconds (a
        second signal cuts that short), then cancel them: their threads are abandoned, and what they
        were uploading stays staged."""
        with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
            if not self.received:
                self.received.append(await signals.__anext__())
            logger.info(
                "received %s: taking no new operations, giving those in progress %g s to finish",
                signal.Signals(self.received[0]).name,
                stop_timeout,
            )
            pyfuse3.terminate()
            with trio.move_on_after(stop_timeout):
                number = await signals.__anext__()
                logger.info("received %s again: not waiting any longer", signal.Signals(number).name)
            logger.warning("operations still in progress are abandoned; the mount stops now")
            serving.cancel()


async def _serve(operations: BucketOperations, stop: StopSignals, stop_timeout: float) -> None:
    async with trio.open_nursery() as nursery:
        operations.nursery = nursery
        nursery.start_soon(stop.stop_on_signal, stop_timeout, nursery.cancel_scope)
        nursery.start_soon(operations.core.lander.run)
        await pyfuse3.main()
        nursery.cancel_scope.cancel()


def serve(config: MountConfig, notify_ready: Callable[[], None]) -> NoReturn:
    """Mount and serve until unmounted or stopped, then end the process; `notify_ready` is called once
    the kernel has the mount."""
    limit_malloc_arenas()
    setup_logging(config)
    raise_descriptor_limit()
    # Reads and uploads each have `storage_threads` threads (see BucketOperations), each with a connection.
    pool_size = 2 * config.storage_threads + 8
    configure(endpoint=config.endpoint, pool_size=pool_size, retry_deadline=config.retry_deadline)
    storage = get_storage()
    cache = ChunkCache(config.resolved_cache_dir, config.cache_size)
    staging = StagingArea(config.resolved_cache_dir / "staging")
    holding = staging.hold()
    # recover() logs one line per staged file (uploaded, or kept aside and where); logging its report
    # again here would double each line and call bytes that were set aside "recovered".
    recover(staging, storage, config.lost_and_found, config.bucket, config.prefix)
    remove_stale_parts(storage, config.bucket)
    uploader = Uploader(staging, cache, storage, config.chunk_size)
    operations = BucketOperations(config, storage, cache, uploader)
    prepare_runtime_directory()
    record = pid_file(config.mountpoint)
    stop = StopSignals()
    pyfuse3.init(operations, str(config.mountpoint), fuse_options(config))
    metrics = None
    try:
        write_pid_file(record)
        logger.info("mounted %s at %s (cache %s)", config.source, config.mountpoint, config.resolved_cache_dir)
        if config.metrics_port:
            metrics = serve_metrics(config.metrics_address, config.metrics_port, operations.statistics)
        notify_ready()
        notify_systemd(f"READY=1\nSTATUS=serving {config.source}\nMAINPID={os.getpid()}")
        trio.run(_serve, operations, stop, config.stop_timeout)
        notify_systemd("STOPPING=1")
    finally:
        if metrics is not None:
            metrics.shutdown()
        pyfuse3.close(unmount=True)
        operations.files.settle()
        cache.close()
        record.unlink(missing_ok=True)
        os.close(holding)
        logger.info("unmounted %s", config.mountpoint)
    # Threads still sending (an abandoned upload, or a part of a file still open for writing, sent by a
    # pool that interpreter exit would join) must not hold the exit for the rest of their retry deadline:
    # what they were sending stays staged.
    logging.shutdown()
    sys.stdout.flush()
    os._exit(0)
