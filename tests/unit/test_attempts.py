"""What one attempt may take (octuefs/storage/attempts.py): timeouts within the retry deadline, the
read-stall timeout from recent latencies, and causes described without URLs."""

from __future__ import annotations

import threading

import pytest
import requests
import urllib3
from google.api_core import exceptions as api_exceptions

from octuefs.storage.attempts import (
    MIN_ATTEMPT,
    STALL_FACTOR,
    STALL_FLOOR,
    STALL_MIN_SAMPLES,
    BoundedRetry,
    ReadLatencies,
    _clamped,
    deadline,
    describe,
)


def test_outside_any_deadline_timeouts_are_cut_to_the_ceiling():
    assert _clamped((5.0, 60.0), ceiling=20.0) == (5.0, 20.0)
    assert _clamped(None, ceiling=20.0) == (20.0, 20.0)
    assert _clamped(3, ceiling=20.0) == (3, 3)


def test_within_a_deadline_timeouts_are_cut_to_what_is_left_of_it_but_never_below_the_minimum():
    with deadline(8.0):
        connect, read = _clamped((5.0, 60.0), ceiling=20.0)
        assert connect == 5.0 and 7.0 < read <= 8.0
        with deadline(30.0):  # an inner, later deadline does not extend the outer one
            assert _clamped((5.0, 60.0), ceiling=20.0)[1] <= 8.0
    with deadline(0.0):
        assert _clamped((5.0, 60.0), ceiling=20.0) == (MIN_ATTEMPT, MIN_ATTEMPT)
    assert _clamped((5.0, 60.0), ceiling=20.0) == (5.0, 20.0)


def test_a_bounded_retry_makes_its_deadline_known_to_each_attempt():
    seen: list[float] = []

    def attempt() -> str:
        seen.append(_clamped((5.0, 60.0), ceiling=100.0)[1])
        if len(seen) < 2:
            raise requests.ConnectionError("reset")
        return "ok"

    retry = BoundedRetry(predicate=lambda error: isinstance(error, requests.ConnectionError), initial=0.01)
    assert retry.with_timeout(12.0)(attempt)() == "ok"
    assert len(seen) == 2 and all(10.0 < read <= 12.0 for read in seen)
    assert isinstance(retry.with_timeout(3.0), BoundedRetry)


def test_the_stall_timeout_is_the_ceiling_until_enough_reads_were_seen():
    latencies = ReadLatencies(ceiling=60.0)
    for _ in range(STALL_MIN_SAMPLES - 1):
        latencies.record(0.01)
    assert latencies.timeout() == 60.0 and latencies.typical() is None
    latencies.record(0.01)
    assert latencies.timeout() == STALL_FLOOR


def test_the_stall_timeout_follows_the_slowest_recent_reads_up_to_the_ceiling():
    latencies = ReadLatencies(ceiling=60.0)
    for seconds in [0.1] * 30 + [1.5]:
        latencies.record(seconds)
    assert latencies.typical() == 1.5
    assert latencies.timeout() == pytest.approx(STALL_FACTOR * 1.5)
    for _ in range(3):  # stalled attempts count as samples of their timeout: the next one waits longer
        latencies.record(latencies.timeout())
    assert latencies.timeout() == 60.0


def test_the_stall_window_forgets_old_slow_reads():
    latencies = ReadLatencies(ceiling=60.0)
    latencies.record(10.0)
    for _ in range(200):
        latencies.record(0.05)
    assert latencies.timeout() == STALL_FLOOR


def test_causes_name_the_system_reason_and_never_the_url():
    url = "http://127.0.0.1:1/b/o?X-Goog-Signature=secret"
    reset = requests.ConnectionError(
        urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "Connection reset by peer")),
        request=requests.Request("GET", url).prepare(),
    )
    refused = requests.ConnectionError(
        urllib3.exceptions.MaxRetryError(None, url, ConnectionRefusedError(111, "Connection refused"))
    )
    assert describe(reset) == "ConnectionResetError: Connection reset by peer"
    assert describe(refused) == "ConnectionRefusedError: Connection refused"
    assert describe(requests.ReadTimeout(f"read timed out for {url}")) == "no answer before the timeout"
    assert "secret" not in describe(requests.ConnectionError(f"something about {url}"))
    assert describe(api_exceptions.ServiceUnavailable(f"GET {url}: busy")) == "HTTP 503 ServiceUnavailable"


def test_deadline_is_per_thread():
    found: list[tuple] = []
    with deadline(2.0):
        thread = threading.Thread(target=lambda: found.append(_clamped((5.0, 60.0), ceiling=20.0)))
        thread.start()
        thread.join()
    assert found == [(5.0, 20.0)]
