"""Fixtures shared by the integration tests of signed URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.signing import write_service_account_key


@pytest.fixture
def signing_key(tmp_path, monkeypatch) -> Path:
    """A fresh service-account key, named by GOOGLE_APPLICATION_CREDENTIALS as a user names theirs."""
    path = write_service_account_key(tmp_path / "service-account.json")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    return path
