#!/usr/bin/env bash
# A soak of the deploy lease: its stress test (tests/test_lease_stress.py) again and again, each round a fresh
# random mix, for MINUTES (default 60), e.g. nightly. One suite run tries one mix; races hide in rare ones.
# Stops at the first failure: its message names the seed, and CODEREMOTE_LEASE_STRESS_SEED=<seed> replays that mix.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-60}"
case "$minutes" in
  '' | *[!0-9]*)
    echo "error: minutes must be a whole number, got '$minutes': e.g. scripts/soak_lease.sh 60" >&2
    exit 2 ;;
esac
bash scripts/bootstrap.sh
end=$((SECONDS + minutes * 60))
rounds=0
while [ "$SECONDS" -lt "$end" ] || [ "$rounds" -eq 0 ]; do
  rounds=$((rounds + 1))
  if ! .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_lease_stress.py; then
    echo "soak: round $rounds failed after $((SECONDS / 60)) min (the seed is in the failure above)" >&2
    exit 1
  fi
done
echo "soak: $rounds rounds passed in $((SECONDS / 60)) min"
