"""Fixtures shared by the integration tests of signed URLs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

SERVICE_ACCOUNT = "signer@octuefs-test.iam.gserviceaccount.com"


@pytest.fixture
def signing_key(tmp_path, monkeypatch) -> Path:
    """A fresh service-account key, named by GOOGLE_APPLICATION_CREDENTIALS as a user names theirs."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path = tmp_path / "service-account.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "octuefs-test",
                "private_key_id": "test",
                "private_key": pem,
                "client_email": SERVICE_ACCOUNT,
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    return path
