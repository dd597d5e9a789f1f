// Comparison rules behind crossover signals, shared by the reference signals and every fast
// engine so that all of them see the same crossings.
#pragma once

#include <cmath>

#include "gt/host_device.hpp"

namespace gt {

// Two indicator values closer than this (relative) are equal. Running sums (TA-Lib's SMA, WMA)
// leave residues of order 1e-15..1e-11 where two averages are mathematically equal; without a tie
// band such a residue would create or move a crossover by a bar (backtrader, summing each window
// exactly, sees the tie). Genuine differences of averages of prices quoted to 6 decimals are
// above 1e-9 relative, so no real crossing is lost.
inline constexpr double kTieTolerance = 1e-10;

// a is above b beyond the tie band. NaN compares false.
GT_HOST_DEVICE inline bool is_above(double a, double b) {
  return a - b > kTieTolerance * std::fabs(b);
}
GT_HOST_DEVICE inline bool is_below(double a, double b) {
  return b - a > kTieTolerance * std::fabs(b);
}

// The fast engines' first pass compares float copies of the series: rounding a double to float
// moves it by at most 2^-24 of itself, so when the float gap between a and b exceeds this much of
// |b| (the CUDA engine) or of |a| (the CPU engine's bounds, cross_masks.cpp), the double gap
// exceeds the tie band with the same sign, float rounding of the band itself included. Bars with a
// smaller float gap (near a crossing: rare) are decided again in double precision
// with is_above/is_below.
inline constexpr float kCoarseTieBand = 1e-6f;
// Both defined and not above (resp. not below): the "before" side of a cross.
inline bool is_at_or_below(double a, double b) {
  return !std::isnan(a) && !std::isnan(b) && !is_above(a, b);
}
inline bool is_at_or_above(double a, double b) {
  return !std::isnan(a) && !std::isnan(b) && !is_below(a, b);
}

// The crossing rule (docs/SEMANTICS.md "ma_cross"), the one definition every engine uses: an
// event at a bar that is in state `now` (say above) after a bar in state `before` (defined and at
// or below). For a word of bars at once, bit j a bar and bit j - 1 the bar before it; `carry` is
// the `before` state of the bar ahead of bit 0. One bar: now and carry as 0/1, before 0.
template <class Word>
GT_HOST_DEVICE constexpr Word cross_event_bits(Word now, Word before, Word carry) {
  return static_cast<Word>(now & static_cast<Word>(static_cast<Word>(before << 1) | carry));
}
GT_HOST_DEVICE constexpr bool crosses(bool now, bool before_previous_bar) {
  return cross_event_bits<unsigned>(now, 0u, before_previous_bar) != 0;
}

// ma_cross's parameters, decoded once from their schema order (strategy.cpp's ma_cross entry,
// whose order a test checks against kMaCrossParamNames), for every engine.
struct MaCrossParams {
  int fast, slow, ma_type;
  bool volume_filter;
};
inline constexpr const char* kMaCrossParamNames[] = {"fast", "slow", "ma_type", "volume_filter"};
GT_HOST_DEVICE inline MaCrossParams decode_ma_cross(const double* p) {
  return {static_cast<int>(p[0]), static_cast<int>(p[1]), static_cast<int>(p[2]), p[3] != 0};
}

}  // namespace gt
