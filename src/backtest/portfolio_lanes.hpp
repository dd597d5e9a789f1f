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
  // The timeline and the symbols.
  std::size_t symbols = 0, timestamps = 0, lanes = 0;
  // The lanes' events, which the kernel leaves zero (for the next group) as it reads them.
  std::uint8_t* signal = nullptr;           // [timestamp][symbol][lane]: the lane's events there
  std::uint64_t* eventful = nullptr;        // [timestamp]: symbols with an event in some lane
  const std::uint64_t* trading = nullptr;   // [timestamp]: symbols with a bar there
  const double* const* close_at = nullptr;  // [symbol][timestamp]: the last close
  const double* const* open_at = nullptr;   // [symbol][timestamp]: the bar's open (where trading)
  const double* weight = nullptr;           // [symbol]: size x its share of the equity
  double cash = 0, slip = 0, commission = 0;
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
  // State: [symbol][lane] each, zero on entry.
  double* units = nullptr;
  double* entry_price = nullptr;
  double* entry_fee = nullptr;
  double* committed = nullptr;
  double* pending_equity = nullptr;
  std::int64_t* pending = nullptr;      // the side of an order for the next open: +1, -1 or 0
  std::int64_t* has_pending = nullptr;  // -1 where an order waits
  std::int64_t* target = nullptr;       // the rules' position at this close
  // Per lane, on return: the curve's sums (CurveAccumulator's), and whether the lane was ruined
  // (its equity reached 0; the reference engine runs it).
  double sum_r[kLaneCount], sum_r2[kLaneCount], sum_down2[kLaneCount], max_drawdown[kLaneCount],
      final_equity[kLaneCount];
  std::int64_t held_bars[kLaneCount], ruined[kLaneCount];
};

// The kernel, one per instruction set: x86-64-v4 (AVX-512), x86-64-v3 (AVX2), the baseline.
void run_lanes_x86_64_v4(LanesView& view);
void run_lanes_x86_64_v3(LanesView& view);
void run_lanes_baseline(LanesView& view);

// The kernel portfolio_metrics_lanes runs: "x86-64-v4", "x86-64-v3" or "baseline", the widest
// this CPU has unless forced (tests run each in turn; false where the CPU lacks it).
const char* portfolio_lanes_isa();
bool force_portfolio_lanes_isa(const char* isa);

}  // namespace gt::detail
