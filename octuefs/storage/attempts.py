"""What one attempt of a request may take, decided at the wire for every request of the GCS client.

- Deadline: DEFAULT_RETRY looks at its deadline only between attempts, so an attempt started just
  before it could still wait a whole read timeout for a server that accepted the connection and
  never answers. `BoundedRetry` makes the deadline known to the thread, and `GuardedAdapter` cuts
  each attempt's timeouts to what is left of it.
- Breaker: `GuardedAdapter` asks the server's health (octuefs/storage/health.py) before sending,
  so a request fails at once while the server is lost, and tells it how each attempt went.
- Read stalls: `ReadLatencies` turns recent ranged GETs' times to first byte into the read timeout
  of the next one (see its doc).
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import requests
from google.api_core import exceptions as api_exceptions
from google.api_core.retry import Retry
from requests.adapters import HTTPAdapter

from octuefs.storage.health import ServerHealth

# An attempt gets at least this long, even with less of its deadline left (a zero timeout would
# fail it without sending anything).
MIN_ATTEMPT = 1.0
# Read-stall retry (as gcsfuse's --read-stall-* options): the read timeout of a ranged GET is
# STALL_FACTOR times the STALL_PERCENTILE of the last STALL_WINDOW times to first byte, never below
# STALL_FLOOR nor above the configured read timeout; with fewer than STALL_MIN_SAMPLES it is the
# configured read timeout. The factor and the floor keep a read on a slow but steady link from
# being abandoned: the timeout bounds the wait for each next byte, not the whole transfer.
STALL_FACTOR = 3.0
STALL_PERCENTILE = 0.99
STALL_FLOOR = 2.0
STALL_WINDOW = 64
STALL_MIN_SAMPLES = 8

_budget = threading.local()


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Requests of this thread within the block must be done `seconds` from now (an enclosing deadline
    that comes sooner still holds)."""
    previous: float | None = getattr(_budget, "until", None)
    until = time.monotonic() + seconds
    _budget.until = until if previous is None else min(previous, until)
    try:
        yield
    finally:
        _budget.until = previous


class BoundedRetry(Retry):
    """DEFAULT_RETRY whose deadline also bounds each attempt's timeouts (see `GuardedAdapter`)."""

    def __call__(self, func: Callable[..., Any], on_error: Callable[[Exception], Any] | None = None) -> Any:
        retried = super().__call__(func, on_error=on_error)
        seconds = self._timeout
        if seconds is None:
            return retried

        @functools.wraps(func)
        def bounded(*args: Any, **kwargs: Any) -> Any:
            with deadline(seconds):
                return retried(*args, **kwargs)

        return bounded


def _clamped(timeout: Any, ceiling: float) -> Any:
    """`timeout` (None, seconds, or (connect, read)) cut to what is left of the thread's deadline, or to
    `ceiling` outside any; never below MIN_ATTEMPT."""
    until: float | None = getattr(_budget, "until", None)
    left = ceiling if until is None else min(ceiling, until - time.monotonic())
    cap = max(MIN_ATTEMPT, left)
    if isinstance(timeout, tuple):
        connect, read = timeout
    elif timeout is None or isinstance(timeout, int | float):
        connect = read = timeout
    else:  # a urllib3 Timeout object: nothing in octuefs passes one
        return timeout
    return (cap if connect is None else min(connect, cap), cap if read is None else min(read, cap))


def describe(error: BaseException) -> str:
    """A failure's cause in a few words, for logs and messages: the operating system's reason when there
    is one. Never the request's URL, which for a signed URL carries a credential."""
    if isinstance(error, requests.Timeout):
        return "no answer before the timeout" if not isinstance(error, requests.ConnectTimeout) else "connect timeout"
    if isinstance(error, api_exceptions.GoogleAPICallError):  # its message starts with the URL
        return f"HTTP {error.code} {type(error).__name__}"
    pending: list[Any] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop(0)
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return f"{type(current).__name__}: {current.strerror}"
        pending.extend([*current.args, getattr(current, "reason", None), current.__cause__, current.__context__])
    return type(error).__name__


def transient(status: int) -> bool:
    """Whether an HTTP status is a failure that retrying may get past (as the client's own predicate)."""
    return status == 429 or status >= 500


class GuardedAdapter(HTTPAdapter):
    """The client's HTTP adapter: the breaker's check, its bookkeeping, and timeouts within the deadline.

    `ceiling` bounds the timeouts of requests made outside any retry (the parts of a streaming
    upload): the retry deadline, so that they too fail within it.
    """

    def __init__(self, health: ServerHealth, ceiling: float, **kwargs: Any) -> None:
        self._health = health
        self._ceiling = ceiling
        super().__init__(**kwargs)

    def send(self, request: requests.PreparedRequest, timeout: Any = None, **kwargs: Any) -> requests.Response:
        self._health.check()
        try:
            response = super().send(request, timeout=_clamped(timeout, self._ceiling), **kwargs)
        except (requests.ConnectionError, requests.Timeout) as error:
            self._health.failed(describe(error))
            raise
        if transient(response.status_code):
            self._health.failed(f"HTTP {response.status_code} {response.reason}")
        else:
            self._health.succeeded()
        return response


class ReadLatencies:
    """Recent ranged GETs' times to first byte, and the read timeout they suggest for the next one.

    As gcsfuse's read-stall retry (which keeps a running estimate of the 99th percentile of read
    latencies with a 1.5 s floor): a GET that delivers nothing for much longer than similar GETs took
    recently is stuck on a bad connection or server, and a new attempt usually answers at once. A
    stalled attempt counts as a sample of its timeout, so a server that became slow for everyone
    gets longer timeouts at once instead of every read being abandoned again.
    """

    def __init__(self, ceiling: float) -> None:
        self.ceiling = ceiling
        self._lock = threading.Lock()
        self._samples: deque[float] = deque(maxlen=STALL_WINDOW)

    def record(self, seconds: float) -> None:
        with self._lock:
            self._samples.append(seconds)

    def typical(self) -> float | None:
        """The recent latency the timeout is made from (None without enough samples)."""
        with self._lock:
            samples = sorted(self._samples)
        if len(samples) < STALL_MIN_SAMPLES:
            return None
        return samples[math.ceil(STALL_PERCENTILE * len(samples)) - 1]

    def timeout(self) -> float:
        typical = self.typical()
        return self.ceiling if typical is None else min(self.ceiling, max(STALL_FLOOR, STALL_FACTOR * typical))
