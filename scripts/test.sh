#!/usr/bin/env bash
# Sets up, builds and runs every test: the source format, the C++ suite (ctest) and the reference
# comparisons (pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/check-format.sh
ctest --preset release -j"$(nproc)"
GTRADER_BIN="$PWD/build/release/gtrader" .venv/bin/python -m pytest -q tests/python
