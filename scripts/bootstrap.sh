#!/usr/bin/env bash
# Install what the project needs on a fresh Debian machine, then the project itself into .venv. Safe to re-run:
# each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_cmd=()
if [ "$(id -u)" != 0 ]; then sudo_cmd=(sudo); fi

# command:debian-package. docker.io is the engine (dockerd), docker-registry the image registry, mmdebstrap makes
# the Python base image (no image can be pulled here), nodejs/npm build the frontend, postgresql the team profile.
missing=()
for pair in dockerd:docker.io docker-registry:docker-registry mmdebstrap:mmdebstrap git:git node:nodejs npm:npm \
            tar:tar curl:curl; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair##*:}")
done
# The Postgres server binaries (not on PATH): the team profile's tests start throwaway servers from them.
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
# The local edges: haproxy splits each env's API requests between versions, varnish caches each env's site.
[ -x /usr/sbin/haproxy ] || missing+=(haproxy)
[ -x /usr/sbin/varnishd ] || missing+=(varnish)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing system packages: ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  # The packages' own services (haproxy on :80, varnish on :6081) must not start: the stack runs its own
  # processes on free ports. A policy-rc.d that refuses every start does that, for this install only.
  policy=/usr/sbin/policy-rc.d
  placed=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo_cmd[@]}" tee "$policy" >/dev/null
    "${sudo_cmd[@]}" chmod +x "$policy"
    placed=1
  fi
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$placed" ]; then "${sudo_cmd[@]}" rm -f "$policy"; fi
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ] || [ constraints.txt -nt .venv/.installed ]; then
  echo "installing the project into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  # constraints.txt: the versions the suite last passed with, so a fresh machine gets what CI tested
  .venv/bin/python -m pip install -q -c constraints.txt -e '.[dev]'
  touch .venv/.installed
fi
