#!/usr/bin/env bash
# Set everything up and run the default test suite (unit + integration; slow tiers are opt-in:
# pass e.g. `-m slow` to run them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
