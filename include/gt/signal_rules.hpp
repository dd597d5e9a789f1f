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
// smaller float gap (near a crossing: a few per thousand) are decided again in double precision
// with is_above/is_below.
inline constexpr float kCoarseTieBand = 1e-6f;
// Both defined and not above (resp. not below): the "before" side of a cross.
inline bool is_at_or_below(double a, double b) {
  return !std::isnan(a) && !std::isnan(b) && !is_above(a, b);
}
inline bool is_at_or_above(double a, double b) {
  return !std::isnan(a) && !std::isnan(b) && !is_below(a, b);
}

}  // namespace gt
