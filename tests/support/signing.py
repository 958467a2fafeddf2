"""A service-account key made for the tests, so signed URLs can be made without Google credentials."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

SERVICE_ACCOUNT = "signer@octuefs-test.iam.gserviceaccount.com"


def write_service_account_key(path: Path) -> Path:
    """A fresh key file in the format `gcloud iam service-accounts keys create` writes."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
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
    return path
