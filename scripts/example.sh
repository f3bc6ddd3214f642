#!/usr/bin/env bash
# Set everything up and run the MiniLM example workflow (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh example
.venv/bin/python examples/minilm/prepare.py
exec .venv/bin/olivine run --config examples/minilm/config.json --follow "$@"
