#!/usr/bin/env bash
# The main job on the local target: installs what is missing, brings the local stack up, creates the example app's
# git repository and deploys its main branch to dev. Prints the URLs and how to open the Dagster UI.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/coderemote-pipeline demo "$@"
