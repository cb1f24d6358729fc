#!/usr/bin/env bash
# The whole test suite: installs what is missing, then runs every test, the real local stack included (the tests
# start and stop their own emulator, registry and Docker engine under a temporary state directory).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/ruff check .
# The house: layers import downwards only, no import loops (pyproject.toml [tool.importlinter]).
.venv/bin/lint-imports --no-cache
# Three workers, one test file at a time each (the stack tests mostly wait on processes, not on the two cores):
# every worker brings up its own local stack (its own state dir).
exec .venv/bin/python -m pytest -n 3 --dist loadfile "$@"
