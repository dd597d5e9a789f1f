// The portfolio fast path's kernel (portfolio_lanes.cpp): what it reads and writes, as plain
// arrays. The kernel is compiled once per instruction set (portfolio_lanes_kernel.inc, included by
// portfolio_lanes_<isa>.cpp, each file with its -march) and chosen at run time. Whole files rather
// than target clones: GCC 12 lowers comparisons of 64-byte vectors whose masks are combined lane
// by lane in a clone of a file compiled for the baseline, which made the kernel half as fast. The
// kernel holds nothing of the standard library, so that no function compiled for one instruction
// set is linked in for another's callers (its objects define their entry point and nothing else).
#pragma once

#include <cstddef>
#include <cstdint>

namespace gt::detail {

inline constexpr std::size_t kLaneCount = 8;  // gt::kPortfolioLanes

struct LanesView {
  // The timeline and the symbols; the kernel steps timestamps [begin, end), a window of the
  // timeline, and carries its state in the view from one window to the next.
  std::size_t symbols = 0, lanes = 0, begin = 0, end = 0;
  // The window's events, which the kernel leaves zero (for the next window) as it reads them.
  std::uint8_t* signal = nullptr;           // [timestamp - begin][symbol][lane]: the lane's events there
  std::uint64_t* eventful = nullptr;        // [timestamp - begin]: symbols with an event in some lane
  const std::uint64_t* trading = nullptr;   // [timestamp]: symbols with a bar there
  const double* const* close_at = nullptr;  // [symbol][timestamp]: the last close
  const double* const* open_at = nullptr;   // [symbol][timestamp]: the bar's open (where trading)
  const double* weight = nullptr;           // [symbol]: size x its share of the equity
  double slip = 0, commission = 0;
  bool at_close = false, allow_short = false;
  // Robustness: `blocks` blocks from block_starts, each lane's sums going on from block_sum[2]
  // ([block][lane]); none when blocks is 0.
  std::size_t blocks = 0;
  const std::size_t* block_starts = nullptr;
  double* block_sum = nullptr;
  double* block_sum2 = nullptr;
  // Per lane and symbol ([lane][symbol]): its closed trades' profit and return, from trade_first
  // on (room for one a event of its), trade_count written.
  double* pnl = nullptr;
  double* ret = nullptr;
  const std::size_t* trade_first = nullptr;
  std::size_t* trade_count = nullptr;
  // Positions and orders: [symbol][lane] each, zero at the start.
  double* units = nullptr;
  double* entry_price = nullptr;
  double* entry_fee = nullptr;
  double* committed = nullptr;
  double* pending_equity = nullptr;
  std::int64_t* pending = nullptr;      // the side of an order for the next open: +1, -1 or 0
  std::int64_t* has_pending = nullptr;  // -1 where an order waits
  std::int64_t* target = nullptr;       // the rules' position at this close
  // Per lane: the cash, the curve's state and sums (CurveAccumulator's: the last equity, its peak
  // and floor), the symbols held, and whether the lane is still solvent (-1; 0 once its equity
  // reached 0, or for a lane past `lanes`: the reference engine runs a ruined one).
  double cash[kLaneCount], prev[kLaneCount], peak[kLaneCount], floor[kLaneCount];
  double sum_r[kLaneCount], sum_r2[kLaneCount], sum_down2[kLaneCount], max_drawdown[kLaneCount];
  std::int64_t held[kLaneCount], held_bars[kLaneCount], alive[kLaneCount];
  std::uint64_t waiting = 0;  // symbols with an order in some lane
  std::size_t block = 0;      // the block of the last timestamp stepped
};

// The kernel, one per instruction set: x86-64-v4 (AVX-512), x86-64-v3 (AVX2), the baseline.
void run_lanes_x86_64_v4(LanesView& view);
void run_lanes_x86_64_v3(LanesView& view);
void run_lanes_baseline(LanesView& view);

// The kernel portfolio_metrics_lanes runs: "x86-64-v4", "x86-64-v3" or "baseline", the widest
// this CPU has unless forced (tests run each in turn; false where the CPU lacks it).
const char* portfolio_lanes_isa();
bool force_portfolio_lanes_isa(const char* isa);
// The timestamps a window of the kernel steps: `timestamps` (tests: many windows), or 0 for the
// engine's own (as many as fit about a megabyte of events).
void force_portfolio_lanes_window(std::size_t timestamps);

}  // namespace gt::detail
