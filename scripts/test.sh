#!/usr/bin/env bash
# Sets up, builds and runs every test: the source format, the C++ suite (ctest) and the reference
# comparisons (pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# In CI every test must run: a skip (a missing library, instruction set or server) is a failure.
if [[ -n "${CI:-}" && "${CI}" != "false" ]]; then export GT_REQUIRE_ALL_TESTS=1; fi
./scripts/check-format.sh
ctest --preset release -j"$(nproc)"
GT_BIN="$PWD/build/release/gtrader" .venv/bin/python -m pytest -q -rs tests/python
