// The portfolio fast path's kernel for x86-64-v4 (portfolio_lanes.hpp).
#define GT_LANES_ENTRY run_lanes_x86_64_v4
#include "portfolio_lanes_kernel.inc"
