#!/usr/bin/env bash
# The objects of kernels compiled for one instruction set each (src/backtest/portfolio_lanes.hpp)
# define their entry point and nothing the linker could share with other files: no weak or unique
# symbol (an inline function or template instantiated there, which the linker may keep for every
# caller, AVX-512 instructions included). Arguments: the objects to check.
set -euo pipefail
status=0
for object in "$@"; do
  shared=$(nm --defined-only "$object" | awk '$2 ~ /^[WVuw]$/ {print $3}')
  globals=$(nm --defined-only -g "$object" | awk '{print $3}')
  if [[ -n "$shared" ]]; then
    echo "$object: defines symbols the linker may share with other files: $shared" >&2
    status=1
  fi
  if [[ $(wc -w <<<"$globals") -ne 1 ]]; then
    echo "$object: defines $(wc -w <<<"$globals") global symbols, not its one entry point: $globals" >&2
    status=1
  fi
done
exit $status
