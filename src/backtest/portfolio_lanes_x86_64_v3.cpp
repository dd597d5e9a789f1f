// The portfolio fast path's kernel for x86-64-v3 (portfolio_lanes.hpp).
#define GT_LANES_ENTRY run_lanes_x86_64_v3
#include "portfolio_lanes_kernel.inc"
