"""`octuefs demo` stopped by SIGINT, SIGTERM or SIGHUP at any moment of its life (while its server starts,
while seeding, while `octuefs mount` runs, while waiting): it exits, its mount is gone, and no process it
started (server, `octuefs mount`, the mount's daemon) is left running.

The demo runs in a session of its own, as from a shell; every process it started is found by pid, as a
descendant of the demo, sampled while it runs (a daemon outlives the `octuefs mount` that forked it).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.mount.conftest import alive, is_mount, processes_mentioning, require_fuse, run

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
EXIT_BOUND = 60.0


def descendants(pid: int) -> set[int]:
    """Every living process below `pid`, from the kernel's children lists."""
    found: set[int] = set()
    pending = [pid]
    while pending:
        parent = pending.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    pending.append(child)
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def server_port(pids: set[int]) -> int | None:
    for pid in pids:
        words = command_line(pid).split()
        if words and "fake-gcs-server" in words[0] and "-port" in words:
            return int(words[words.index("-port") + 1])
    return None


def answers(port: int | None) -> bool:
    if port is None:
        return False
    with socket.socket() as connection:
        connection.settimeout(0.2)
        return connection.connect_ex(("127.0.0.1", port)) == 0


def mount_commands(pids: set[int]) -> list[int]:
    return [pid for pid in pids if "octuefs.cli.main mount " in command_line(pid)]


# Moments of the demo's start-up, each recognised from its processes: what the signal interrupts.
START_UP_MOMENTS: dict[str, Callable[[set[int]], bool]] = {
    "starting Python": lambda pids: True,
    "starting its server": lambda pids: server_port(pids) is not None,
    "seeding": lambda pids: answers(server_port(pids)),
    "running octuefs mount": lambda pids: bool(mount_commands(pids)),
    # The mount command has forked the daemon: two processes with its command line.
    "starting the daemon": lambda pids: len(mount_commands(pids)) >= 2,
}


def start_demo(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    mountpoint = tmp_path / "demo"
    environment = {key: value for key, value in os.environ.items() if key != "STORAGE_EMULATOR_HOST"}
    tmp_path.mkdir(exist_ok=True)
    environment["TMPDIR"] = str(tmp_path)
    demo = subprocess.Popen(
        [sys.executable, "-m", "octuefs.cli.main", "demo", "--mountpoint", str(mountpoint)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=environment,
        start_new_session=True,
    )
    return demo, mountpoint


def watch_until(demo: subprocess.Popen, seen: set[int], condition: Callable[[set[int]], bool], seconds: float) -> bool:
    """Sample the demo's descendants until `condition(living descendants)` holds or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and demo.poll() is None:
        living = descendants(demo.pid)
        seen |= living
        if condition(living):
            return True
        time.sleep(0.005)
    return False


def stop_demo_and_check(demo: subprocess.Popen, mountpoint: Path, number: int, seen: set[int]) -> float:
    seen |= descendants(demo.pid)
    started = time.monotonic()
    demo.send_signal(number)
    deadline = started + EXIT_BOUND
    while demo.poll() is None and time.monotonic() < deadline:
        seen |= descendants(demo.pid)
        time.sleep(0.01)
    elapsed = time.monotonic() - started
    output = demo.stdout.read().decode(errors="replace") if demo.poll() is not None else "(still running)"
    assert demo.poll() is not None, f"the demo did not exit within {EXIT_BOUND} s of {number}"
    left = [pid for pid in seen if alive(pid)]
    assert left == [], f"left running: {left}\n{output}"
    assert not is_mount(mountpoint), output
    assert processes_mentioning(str(mountpoint)) == [], output
    # TMPDIR is the mountpoint's parent: the demo's temporary cache goes when it stops.
    assert list(mountpoint.parent.glob("octuefs-demo-cache-*")) == [], output
    return elapsed


def clean_up(demo: subprocess.Popen, mountpoint: Path, seen: set[int]) -> None:
    """Whatever the demo left (only on failure): its mount detached, its processes ended by pid."""
    run("fusermount3", "-u", "-z", mountpoint, timeout=10)
    for pid in [demo.pid, *seen]:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    demo.wait(timeout=10)


@pytest.mark.timeout(150)
@pytest.mark.parametrize("number", STOP_SIGNALS, ids=lambda number: signal.Signals(number).name)
def test_demo_stops_cleanly_on_a_signal_once_mounted(gcs_server, tmp_path, number):
    require_fuse()
    demo, mountpoint = start_demo(tmp_path)
    seen: set[int] = set()
    try:
        watch_until(demo, seen, lambda pids: is_mount(mountpoint), 90)
        assert is_mount(mountpoint), "the demo did not mount"
        # Mounted: the demo shows its listing and then waits; give it a moment to get there.
        watch_until(demo, seen, lambda pids: False, 1.0)

        elapsed = stop_demo_and_check(demo, mountpoint, number, seen)
    finally:
        clean_up(demo, mountpoint, seen)
    assert demo.returncode == 0, demo.returncode
    print(f"demo, {signal.Signals(number).name} once mounted: exited after {elapsed:.2f} s")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("number", STOP_SIGNALS, ids=lambda number: signal.Signals(number).name)
def test_demo_stops_cleanly_on_a_signal_during_start_up(gcs_server, tmp_path, number):
    require_fuse()
    for moment, reached in START_UP_MOMENTS.items():
        demo, mountpoint = start_demo(tmp_path / moment.replace(" ", "-"))
        seen: set[int] = set()
        try:
            assert watch_until(demo, seen, reached, 60), f"the demo never got to {moment}"
            mounted = is_mount(mountpoint)

            elapsed = stop_demo_and_check(demo, mountpoint, number, seen)
        finally:
            clean_up(demo, mountpoint, seen)
        name = signal.Signals(number).name
        # Before its handlers are in place (Python still starting), the signal's default action ends it.
        assert demo.returncode in (0, 128 + number) or (moment == "starting Python" and demo.returncode == -number)
        print(f"demo, {name} while {moment} (mounted: {mounted}, exit {demo.returncode}): {elapsed:.2f} s")
