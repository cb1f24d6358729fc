#!/usr/bin/env bash
# The whole test suite: installs what is missing, then runs every test, the real local stack included (the tests
# start and stop their own emulator, registry and Docker engine under a temporary state directory).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
