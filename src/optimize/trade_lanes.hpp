// Eight combinations' trades booked side by side in AVX-512 lanes: MaCrossAccount::trade with
// masks instead of branches, so that no mispredicted drawdown test throws away the loads of the
// trades behind it (the scalar loop spent ~65 cycles a trade mostly that way).
#pragma once

#include <cstddef>
#include <cstdint>

#include "ma_cross_evaluator.hpp"

namespace gt::detail {

inline constexpr std::size_t kTradeLanes = 8;

// Flips of up to eight combinations, lane-major: flip j of lane l at flips[j * 8 + l], as
// position_flips finds them (entry, exit, entry, ...), and every slot past a lane's last flip holds
// `bars` (a fill at or past the end: no further entry, and an open trade held to the last close).
// `steps` = the most trades of any lane (half its flips, rounded up). Each lane's sums come out as
// MaCrossAccount's would for the same trades, bit for bit (tests/cpp/optimize_test.cpp).
struct TradeLanes {
  const std::uint32_t* flips;
  std::size_t steps;
};

struct LaneAccounts {
  MetricSums sums[kTradeLanes];
};

// True when this CPU runs book_trade_lanes (AVX-512 F, CD and DQ), unless a test forced it off.
bool trade_lanes_supported();
// Tests: false turns the lanes off (the scalar account books every trade), true restores the
// default; returns whether the lanes are in use afterwards.
bool force_trade_lanes(bool enabled);

// TradeLanes' layout of up to eight combinations' flips: lane l's `counts[l]` flips from
// `flips[l]` (a lane with count 0 is never read), `bars` after them; rows up to 2 * steps rounded up
// to a multiple of eight, so `lane_major` needs room for that many rows of eight.
void lay_out_lanes(const std::uint32_t* const* flips, const std::uint32_t* counts, std::uint32_t bars,
                   std::size_t steps, std::uint32_t* lane_major);

// Each lane's (E_N/E_0)^(A/N) for finalize_metrics (1 where E_N/E_0 <= 0, which it does not
// read): with glibc's vector pow where the build found libmvec (within a few ulps of std::pow),
// otherwise std::pow per lane.
void annual_growth_lanes(const LaneAccounts& accounts, double periods_per_year, double* out);

void book_trade_lanes(const MaCrossBarFacts* facts, RangeTableView ranges, std::size_t bars, std::size_t lag,
                      double cash, TradeLanes lanes, LaneAccounts& out);

}  // namespace gt::detail
