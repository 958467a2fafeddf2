"""Shared fixtures: one real GCS-compatible server per run, a counting proxy in front, a bucket per test.

Set OCTUEFS_REQUIRE_ALL=1 (as .ci/run does) to turn "server or FUSE unavailable" skips into failures.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

import octuefs
from octuefs.local_server import GCSServer, start_server
from octuefs.storage.gcs import get_storage
from tests.support.http_proxy import CountingProxy

REQUIRE_ALL = os.environ.get("OCTUEFS_REQUIRE_ALL") == "1"


def unavailable(reason: str) -> None:
    """Skip, or fail when the run must prove everything (CI)."""
    if REQUIRE_ALL:
        pytest.fail(f"{reason} (OCTUEFS_REQUIRE_ALL=1 forbids skipping)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session", autouse=True)
def library_cache_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the library's chunk cache out of the user's ~/.cache."""
    previous = os.environ.get("OCTUEFS_CACHE_DIR")
    os.environ["OCTUEFS_CACHE_DIR"] = str(tmp_path_factory.mktemp("octuefs-cache"))
    yield
    if previous is None:
        os.environ.pop("OCTUEFS_CACHE_DIR", None)
    else:
        os.environ["OCTUEFS_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[GCSServer]:
    try:
        server = start_server()
    except (ImportError, OSError, RuntimeError) as error:
        unavailable(f"GCS test server unavailable: {error}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def proxy(gcs_server: GCSServer) -> Iterator[CountingProxy]:
    counting = CountingProxy(gcs_server.url)
    counting.start()
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = counting.url
    octuefs.configure(endpoint=counting.url, retry_deadline=10.0)
    yield counting
    counting.stop()
    if previous is None:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
    else:
        os.environ["STORAGE_EMULATOR_HOST"] = previous


@pytest.fixture(scope="session")
def gcs(gcs_server: GCSServer) -> storage.Client:
    """A plain google-cloud-storage client straight to the server, for arranging and checking."""
    return storage.Client(
        project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": gcs_server.url}
    )


@pytest.fixture
def bucket(gcs: storage.Client, proxy: CountingProxy) -> Iterator[storage.Bucket]:
    created = gcs.create_bucket(f"test-{uuid.uuid4().hex[:16]}")
    proxy.reset()
    # The process's one client and its circuit breaker outlive each test: a test that took the server
    # away may leave it thought lost (or failing since then) until its probe runs. One answered request
    # (the start-up check, which is sent even then) tells it the server is back, as a mount's would.
    assert get_storage().bucket_exists(created.name)
    proxy.reset()
    yield created
    proxy.reset()
