// Shared plumbing of the indicator files: NaN-prefixed outputs and TA-Lib's zero tests.
#pragma once

#include <cmath>
#include <limits>
#include <span>

#include "gt/indicators.hpp"

namespace gt::ind::detail {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// TA-Lib's TA_IS_ZERO and TA_IS_ZERO_OR_NEG.
inline bool is_zero(double v) { return -0.00000001 < v && v < 0.00000001; }
inline bool is_zero_or_neg(double v) { return v < 0.00000001; }

inline Series nan_series(std::size_t n) { return Series(n, kNaN); }

// Index of the first non-NaN value (n when none): composites run their inner stage from there.
inline std::size_t first_valid(std::span<const double> s) {
  std::size_t i = 0;
  while (i < s.size() && std::isnan(s[i])) ++i;
  return i;
}

// EMA whose first output sits at `first_out` (>= period-1), seeded with the SMA of the `period`
// values ending there; TA-Lib's MACD seeds its fast EMA that way.
void ema_from(std::span<const double> in, int period, double k, std::size_t first_out, double* out);

// Moving average of the valid tail of `in` (TA-Lib's TA_MA over an intermediate buffer).
Series ma_of_tail(MaType type, std::span<const double> in, int period);

}  // namespace gt::ind::detail
