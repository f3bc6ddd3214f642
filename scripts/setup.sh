#!/usr/bin/env bash
# Create .venv in the repo root (if missing) and install Olivine with the extras given (default: dev).
# Idempotent: a second call only re-checks the installed packages.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-dev}"
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($python --version)"
  "$python" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
# torch is pinned in pyproject (torch==2.13.0, the CPU wheel); never let pip pick a newer one.
echo "setup: installing olivine[$extras] into .venv"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$extras]"
