#!/usr/bin/env bash
# Sets up, builds and runs the main job on bundled real data.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./build/release/gtrader indicator MACD --data data/orcl-1995-2014.csv | tail -n 5
