#!/usr/bin/env bash
# Create .venv in the repo root (if missing) and install Olivine with the extras given (default: dev).
# Idempotent: when pyproject.toml has not changed since the last install of these extras, pip is not run
# again (it takes ~8 s just to re-check); OLIVINE_SETUP_FORCE=1 re-installs anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-dev}"
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($python --version)"
  "$python" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
stamp=".venv/.olivine-setup-${extras//[^A-Za-z0-9_-]/_}"
wanted="$(cat pyproject.toml scripts/datasets-no-deps.txt | sha256sum | cut -d' ' -f1)"
if [ "${OLIVINE_SETUP_FORCE:-0}" != "1" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] \
  && .venv/bin/python -c "import olivine" 2>/dev/null; then
  echo "setup: .venv already has olivine[$extras] for this pyproject.toml"
  exit 0
fi
# torch is pinned in pyproject (torch==2.13.0, the CPU wheel); never let pip pick a newer one.
echo "setup: installing olivine[$extras] into .venv"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$extras]"
if [ "$extras" = "dev" ]; then
  # The Hub datasets path's test dependencies, without letting datasets' fsspec cap downgrade s3fs
  # (see the file's header).
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r scripts/datasets-no-deps.txt
fi
echo "$wanted" > "$stamp"
