"""The circuit breaker's state machine (octuefs/storage/health.py) with a fake clock and a fake probe,
and the in-memory storage's breaker; the real server and the fault proxy are in
tests/integration/test_server_outage.py."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

import pytest

from octuefs.errors import ServerLost, ServerUnavailable
from octuefs.storage.health import CHECKING, DOWN, FORGET_AFTER, UP, ServerHealth
from octuefs.storage.memory import MemoryStorage

START = 1_800_000_000.0  # 2027-01-15T08:00:00Z


class FakeProbe:
    """Answers while `up`; counts calls; records the state the breaker was in when asked."""

    def __init__(self) -> None:
        self.up = False
        self.calls = 0
        self.seen_states: list[str] = []
        self.health: ServerHealth | None = None

    def __call__(self) -> None:
        self.calls += 1
        assert self.health is not None
        self.seen_states.append(self.health.state)
        # The probe is sent even while the server is lost.
        self.health.check()
        if not self.up:
            raise ConnectionResetError(104, "Connection reset by peer")


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def probe() -> FakeProbe:
    return FakeProbe()


@pytest.fixture
def health(clock: Clock, probe: FakeProbe) -> ServerHealth:
    made = ServerHealth(probe, trip_after=10.0, probe_interval=2.0, clock=clock, autoprobe=False)
    probe.health = made
    return made


def fail_for(health: ServerHealth, clock: Clock, seconds: float, every: float = 1.0) -> None:
    """Transient failures every `every` seconds for `seconds` (the first at the current time)."""
    end = clock.now + seconds
    while clock.now <= end:
        health.failed("HTTP 503 Service Unavailable")
        clock.now += every


def lose(health: ServerHealth, clock: Clock) -> None:
    """An operation gives up after a run of failures that began 20 s ago; the confirming probe fails."""
    health.failed("ConnectionResetError: Connection reset by peer")
    clock.now += 20
    health.gave_up("ConnectionResetError: Connection reset by peer")
    assert health.state == DOWN


def test_a_new_breaker_lets_requests_through_and_reports_the_server_up(health, probe):
    health.check()
    assert health.snapshot() == {"state": UP, "lost_at": None, "found_at": None, "outages": 0, "cause": None}
    assert probe.calls == 0


def test_failures_shorter_than_trip_after_do_not_even_probe(health, clock, probe):
    fail_for(health, clock, 8.0)
    health.check()
    assert (health.state, probe.calls) == (UP, 0)


def test_failures_spanning_trip_after_probe_once_and_a_failed_probe_loses_the_server(health, clock, probe):
    first_failure = clock.now
    fail_for(health, clock, 12.0)

    assert probe.calls == 1 and probe.seen_states == [CHECKING]
    assert health.state == DOWN
    snapshot = health.snapshot()
    assert snapshot["lost_at"] == datetime.fromtimestamp(first_failure, UTC).isoformat(timespec="seconds")
    assert snapshot["outages"] == 1 and snapshot["cause"] == "HTTP 503 Service Unavailable"
    with pytest.raises(ServerLost) as raised:
        health.check()
    assert isinstance(raised.value, ServerUnavailable)
    assert "unreachable since 2027-01-15T08:00:00+00:00" in str(raised.value)
    assert "HTTP 503 Service Unavailable" in str(raised.value)


def test_a_failure_of_one_kind_of_request_with_the_server_answering_the_probe_loses_nothing(health, clock, probe):
    probe.up = True
    fail_for(health, clock, 12.0)

    assert probe.calls == 1 and health.state == UP
    assert health.snapshot()["outages"] == 0
    health.check()


def test_an_operation_that_gave_up_probes_at_once(health, clock, probe):
    health.gave_up("ConnectionResetError: Connection reset by peer")
    assert probe.calls == 1 and health.state == DOWN


def test_a_success_between_failures_starts_the_run_again(health, clock, probe):
    fail_for(health, clock, 8.0)
    health.succeeded()
    fail_for(health, clock, 8.0)
    assert (health.state, probe.calls) == (UP, 0)


def test_failures_far_apart_are_not_one_run(health, clock, probe):
    health.failed("HTTP 503")
    clock.now += FORGET_AFTER + 1
    health.failed("HTTP 503")
    assert (health.state, probe.calls) == (UP, 0)


def test_while_lost_only_the_probe_and_bypassing_requests_are_sent(health, clock):
    lose(health, clock)
    with pytest.raises(ServerLost):
        health.check()
    with health.bypassing():
        health.check()
    with pytest.raises(ServerLost):
        health.check()


def test_the_background_probe_finds_the_server_again_and_tells_the_callbacks_once(health, clock, probe, caplog):
    recovered: list[float] = []
    health.on_recovered(lambda: recovered.append(clock.now))
    caplog.set_level(logging.INFO, logger="octuefs.storage.health")
    lose(health, clock)

    clock.now += 2
    assert health.probe_step() is True  # still down: go on probing
    assert health.state == DOWN and recovered == []

    probe.up = True
    clock.now += 2
    assert health.probe_step() is False  # found: the probe stops
    assert health.state == UP and recovered == [clock.now]
    snapshot = health.snapshot()
    assert snapshot["found_at"] == datetime.fromtimestamp(clock.now, UTC).isoformat(timespec="seconds")
    assert snapshot["outages"] == 1 and snapshot["cause"] is None
    health.check()

    messages = [record.getMessage() for record in caplog.records]
    lost = [message for message in messages if "storage server lost" in message]
    found = [message for message in messages if "storage server found again" in message]
    assert len(lost) == 1 and "Connection reset by peer" in lost[0] and "2027-01-15T08:00:00" in lost[0]
    assert found == ["storage server found again after 24.0 s away"]


def test_any_answer_finds_the_server_and_the_probe_thread_then_runs_the_callbacks(health, clock, probe):
    recovered: list[str] = []
    health.on_recovered(lambda: recovered.append(threading.current_thread().name))
    lose(health, clock)

    with health.bypassing():
        health.succeeded()  # e.g. the mount's start-up check, sent anyway, was answered

    assert health.state == UP and recovered == []
    calls = probe.calls
    assert health.probe_step() is False
    assert recovered == [threading.current_thread().name] and probe.calls == calls


def test_a_failing_callback_does_not_keep_the_others_from_running(health, clock, probe, caplog):
    told: list[str] = []

    def broken() -> None:
        raise RuntimeError("callback bug")

    health.on_recovered(broken)
    health.on_recovered(lambda: told.append("second"))
    lose(health, clock)
    probe.up = True
    with caplog.at_level(logging.ERROR, logger="octuefs.storage.health"):
        health.probe_step()
    assert told == ["second"]
    assert any("callback told of the storage server's recovery failed" in r.getMessage() for r in caplog.records)


def test_each_outage_is_counted_and_dated_on_its_own(health, clock, probe):
    lose(health, clock)
    probe.up = True
    health.probe_step()
    clock.now += 100
    probe.up = False
    second_start = clock.now
    lose(health, clock)

    snapshot = health.snapshot()
    assert snapshot["outages"] == 2 and snapshot["found_at"] is None
    assert snapshot["lost_at"] == datetime.fromtimestamp(second_start, UTC).isoformat(timespec="seconds")


def test_a_real_probe_thread_closes_the_breaker_within_its_interval():
    answers = threading.Event()

    def probe() -> None:
        if not answers.is_set():
            raise ConnectionRefusedError(111, "Connection refused")

    recovered = threading.Event()
    health = ServerHealth(probe, probe_interval=0.05)
    health.on_recovered(recovered.set)
    health.gave_up("ConnectionRefusedError: Connection refused")
    assert health.state == DOWN
    time.sleep(0.2)
    assert health.state == DOWN

    answers.set()
    assert recovered.wait(5.0)
    assert health.state == UP
    deadline = time.monotonic() + 5
    while any(thread.name == "octuefs-probe" and thread.is_alive() for thread in threading.enumerate()):
        assert time.monotonic() < deadline, "the probe thread goes on after the server was found"
        time.sleep(0.01)


# The in-memory storage keeps the same breaker --------------------------------------------------


def test_memory_storage_loses_the_server_when_an_operation_gives_up_and_the_probe_fails():
    storage = MemoryStorage()
    storage.create_bucket("b")
    recovered = threading.Event()
    storage.health.on_recovered(recovered.set)
    storage.fail("probe", ServerUnavailable("probe: connection refused (injected)"), count=None)
    storage.fail("stat", ServerUnavailable("gs://b/x: could not read its metadata: connection refused"))

    with pytest.raises(ServerUnavailable):
        storage.stat("b", "x")
    assert storage.health.state == DOWN
    with pytest.raises(ServerUnavailable, match="stat: the storage server has been unreachable since"):
        storage.stat("b", "x")
    assert storage.bucket_exists("b") is True  # sent anyway, and answered: the server is found again
    assert storage.health.state == UP
    assert recovered.wait(5.0)
    assert storage.stat("b", "x") is None


def test_memory_storage_not_found_is_an_answer_not_an_outage():
    storage = MemoryStorage()
    storage.create_bucket("b")
    for _ in range(20):
        assert storage.stat("b", "missing") is None
    assert storage.health.snapshot()["outages"] == 0 and "probe" not in storage.calls
