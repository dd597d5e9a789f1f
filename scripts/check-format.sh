#!/usr/bin/env bash
# Fails when a C++ or CUDA source differs from what clang-format (.clang-format) makes of it.
# `scripts/check-format.sh --fix` rewrites them instead.
set -euo pipefail
cd "$(dirname "$0")/.."
# Tracked files and new ones not yet added (but never ignored ones).
mapfile -t files < <(git ls-files --cached --others --exclude-standard '*.cpp' '*.hpp' '*.cu' '*.cuh' '*.h' '*.inc')
# An empty list would pass without checking anything (outside a git checkout, say): refuse it.
if ((${#files[@]} == 0)); then
  echo "check-format: no C++ or CUDA source found to check (run it inside the git checkout)" >&2
  exit 1
fi
if [[ "${1:-}" == "--fix" ]]; then
  clang-format -i "${files[@]}"
else
  clang-format --dry-run -Werror "${files[@]}"
fi
