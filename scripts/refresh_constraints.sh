#!/usr/bin/env bash
# Move constraints.txt to the newest versions pyproject.toml's ranges allow: resolved in a fresh virtualenv (an
# upgrade in .venv would keep what it has and whatever else was installed there by hand), then installed into .venv.
# Then run ./scripts/test.sh and commit constraints.txt with what the new versions needed. CI and bootstrap.sh
# install exactly this set.
set -euo pipefail
cd "$(dirname "$0")/.."
fresh=$(mktemp -d)
trap 'rm -rf "$fresh"' EXIT
python3 -m venv "$fresh"
"$fresh/bin/python" -m pip install -q --upgrade pip
"$fresh/bin/python" -m pip install -q -e '.[dev]'
{ sed -n '/^#/p' constraints.txt; "$fresh/bin/python" -m pip freeze --exclude-editable; } > constraints.txt.new
mv constraints.txt.new constraints.txt
.venv/bin/python -m pip install -q -c constraints.txt -e '.[dev]'
touch .venv/.installed
git --no-pager diff --stat -- constraints.txt
