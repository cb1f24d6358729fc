#!/usr/bin/env bash
# Move constraints.txt to the newest versions pyproject.toml's ranges allow, in .venv; then run ./scripts/test.sh
# and commit constraints.txt with what the new versions needed. CI and bootstrap.sh install exactly this set.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pip install -q -U -e '.[dev]'
header=$(sed -n '/^#/p' constraints.txt)
{ printf '%s\n' "$header"; .venv/bin/python -m pip freeze --exclude-editable; } > constraints.txt.new
mv constraints.txt.new constraints.txt
touch .venv/.installed
git --no-pager diff --stat -- constraints.txt
