#!/bin/sh
# Build vmrepair's wheel into OUTDIR (make install, the install test). From a clean copy of the
# sources: pip builds in the source tree, where a stale build/lib would ship modules deleted since.
# Offline: the build backend (setuptools, wheel) comes from the dev venv, not from build isolation.
set -eu
OUT=${1:?usage: scripts/build-wheel.sh OUTDIR}
PY=${PYTHON:-.venv/bin/python}
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
cp pyproject.toml README.md LICENSE "$src/"
# orchestrator/data/NAME links to the top-level NAME folder (playbooks, images, ...): copy each.
for dir in orchestrator $(ls orchestrator/data); do
  cp -a "$dir" "$src/"
done
find "$src" -name __pycache__ -prune -exec rm -rf {} +
find "$src" -name '*.pyc' -delete
mkdir -p "$OUT"
"$PY" -m pip wheel -q --no-deps --no-build-isolation --no-cache-dir -w "$OUT" "$src"
ls "$OUT"/vmrepair-*.whl
