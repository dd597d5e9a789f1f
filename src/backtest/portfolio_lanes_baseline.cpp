// The portfolio fast path's kernel for the baseline instruction set (portfolio_lanes.hpp).
#define GT_LANES_ENTRY run_lanes_baseline
#include "portfolio_lanes_kernel.inc"
