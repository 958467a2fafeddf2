#!/usr/bin/env bash
# Install the real Octue SDK (pinned) into ./.venv-octue, apart from octuefs's own .venv, for the live
# cross-check tests (tests/integration/test_octue_live.py, `pytest -m octue`), which run small programs in that interpreter
# against the bundled GCS server. Idempotent: re-running is fast. Without it those tests skip (or fail
# under OCTUEFS_REQUIRE_ALL=1).
set -euo pipefail
cd "$(dirname "$0")/.."

octue_requirement="octue==0.69.1"
python=${PYTHON:-python3}
stamp=.venv-octue/.octue-installed
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$octue_requirement" ]; then
    exit 0
fi
[ -x .venv-octue/bin/python ] || "$python" -m venv .venv-octue
.venv-octue/bin/python -m pip install -q --upgrade pip
.venv-octue/bin/python -m pip install -q "$octue_requirement"
echo "$octue_requirement" > "$stamp"
echo "octuefs: $octue_requirement installed in $(pwd)/.venv-octue (for the live cross-check: pytest -m octue)"
