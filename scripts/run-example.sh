#!/usr/bin/env bash
# `make run`: dockerpkg build + plan of examples/tree against a throwaway registry.
# The work happens in run_example.py, which reuses the test helpers (tests/support).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" exec .venv/bin/python scripts/run_example.py
