#!/usr/bin/env bash
# Sets up, builds and runs the main job: the seed's 2,700-combination grid on 19 years of real
# ORCL daily bars, every combination's metrics written to results.csv, the best printed, and an
# HTML report of them (heatmap, distributions, best combinations) written to report.html.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./build/release/gtrader optimize --data data/orcl-1995-2014.csv --strategy ma_cross \
  --grid fast=5:19 --grid slow=20:49 --grid ma_type=0:2 --grid volume_filter=false,true \
  --top 5 --out results.csv
./build/release/gtrader report --results results.csv --x fast --y slow --metric sharpe --out report.html
