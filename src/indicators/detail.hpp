// Shared plumbing of the indicator files: NaN-prefixed outputs and TA-Lib's zero tests.
#pragma once

#include <cmath>
#include <limits>
#include <span>

#include "gt/host_device.hpp"
#include "gt/indicators.hpp"

namespace gt::ind::detail {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// TA-Lib's TA_IS_ZERO and TA_IS_ZERO_OR_NEG.
inline bool is_zero(double v) {
  return -0.00000001 < v && v < 0.00000001;
}
inline bool is_zero_or_neg(double v) {
  return v < 0.00000001;
}

inline Series nan_series(std::size_t n) {
  return Series(n, kNaN);
}

// Index of the first non-NaN value (n when none): composites run their inner stage from there.
inline std::size_t first_valid(std::span<const double> s) {
  std::size_t i = 0;
  while (i < s.size() && std::isnan(s[i])) ++i;
  return i;
}

// The running state of TA-Lib's SMA, EMA and WMA: one definition of each recurrence, used by
// the one-period functions and by the many-periods lanes (which continue from a state built
// here) and by the CUDA engine, which builds its tables on the GPU with them (host and device
// code: src/optimize/cuda). The constructor consumes the values before the first output;
// `step(i)` returns output i.
struct SmaRunning {
  const double* in;
  int period;
  double total = 0.0;
  std::size_t trailing = 0;

  GT_HOST_DEVICE SmaRunning(const double* values, int p) : in(values), period(p) {
    for (std::size_t i = 0; i + 1 < static_cast<std::size_t>(p); ++i) total += in[i];
  }
  GT_HOST_DEVICE double step(std::size_t i) {
    total += in[i];
    const double emitted = total;
    total -= in[trailing++];
    return emitted / period;
  }
};

struct EmaRunning {
  double prev, k;
  // Seeded with the SMA of the `period` values ending at `first_out` (its first output).
  GT_HOST_DEVICE EmaRunning(const double* in, int period, double smoothing, std::size_t first_out) : k(smoothing) {
    double sum = 0.0;
    for (std::size_t i = first_out + 1 - static_cast<std::size_t>(period); i <= first_out; ++i) sum += in[i];
    prev = sum / period;
  }
  GT_HOST_DEVICE double step(double x) { return prev = ((x - prev) * k) + prev; }
};

struct WmaRunning {
  const double* in;
  double period, divider, sum = 0.0, sub = 0.0, trailing_value = 0.0;
  std::size_t trailing = 0;

  GT_HOST_DEVICE WmaRunning(const double* values, int p)
      : in(values), period(p), divider(static_cast<double>((p * (p + 1)) >> 1)) {
    for (std::size_t i = 0; i + 1 < static_cast<std::size_t>(p); ++i) {
      sub += in[i];
      sum += in[i] * static_cast<double>(i + 1);
    }
  }
  GT_HOST_DEVICE double step(std::size_t i) {
    const double v = in[i];
    sub += v;
    sub -= trailing_value;
    sum += v * period;
    trailing_value = in[trailing++];
    const double out = sum / divider;
    sum -= sub;
    return out;
  }
};

// EMA whose first output sits at `first_out` (>= period-1), seeded with the SMA of the `period`
// values ending there; TA-Lib's MACD seeds its fast EMA that way.
void ema_from(std::span<const double> in, int period, double k, std::size_t first_out, double* out);

// Tests: false makes ma_many's lanes divide on the division unit even where the fused quotient
// (many_periods.cpp) runs, true restores the default; returns whether the fused quotient is in
// use afterwards.
bool force_fused_division(bool enabled);

// Moving average of the valid tail of `in` (TA-Lib's TA_MA over an intermediate buffer).
Series ma_of_tail(MaType type, std::span<const double> in, int period);

}  // namespace gt::ind::detail
