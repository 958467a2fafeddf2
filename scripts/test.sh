#!/usr/bin/env bash
# Run the whole test suite (installing first if needed). Extra arguments go to pytest.
# OCTUEFS_REQUIRE_ALL=1 turns "GCS server, FUSE or the Octue SDK unavailable" skips into failures (CI sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
bash scripts/install-octue.sh  # the real Octue SDK for the live cross-check (pytest -m octue)
.venv/bin/ruff check octuefs tests
.venv/bin/ruff format --check octuefs tests
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
