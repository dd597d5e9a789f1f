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

// TA-Lib's true range: the largest of the bar's range and its distances to the previous close.
inline double true_range(double high, double low, double prev_close) {
  double greatest = high - low;
  const double up = std::fabs(prev_close - high);
  if (up > greatest) greatest = up;
  const double down = std::fabs(prev_close - low);
  if (down > greatest) greatest = down;
  return greatest;
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
// The recurrences themselves on values, shared by the array-driven states below and by the
// incremental indicators (gt/incremental.hpp), which keep their own windows.
struct SmaCore {
  int period;
  double total = 0.0;  // the period - 1 values before the next
  // `x` enters; `oldest` is the first of the `period` values ending at x.
  GT_HOST_DEVICE double advance(double x, double oldest) {
    total += x;
    const double emitted = total;
    total -= oldest;
    return emitted / period;
  }
};

struct WmaCore {
  double period, divider, sum = 0.0, sub = 0.0;
  GT_HOST_DEVICE explicit WmaCore(int p) : period(p), divider(static_cast<double>((p * (p + 1)) >> 1)) {}
  // The `i`-th of the first period - 1 values (from 0).
  GT_HOST_DEVICE void prime(double x, std::size_t i) {
    sub += x;
    sum += x * static_cast<double>(i + 1);
  }
  // `x` enters; `left` is the value `period` before it (0 for the first output).
  GT_HOST_DEVICE double advance(double x, double left) {
    sub += x;
    sub -= left;
    sum += x * period;
    const double out = sum / divider;
    sum -= sub;
    return out;
  }
};

struct SmaRunning : SmaCore {
  const double* in;
  std::size_t trailing = 0;

  GT_HOST_DEVICE SmaRunning(const double* values, int p) : SmaCore{p}, in(values) {
    for (std::size_t i = 0; i + 1 < static_cast<std::size_t>(p); ++i) total += in[i];
  }
  GT_HOST_DEVICE double step(std::size_t i) { return advance(in[i], in[trailing++]); }
};

struct EmaRunning {
  double prev, k;
  // Seeded with the SMA of the `period` values ending at `first_out` (its first output).
  GT_HOST_DEVICE EmaRunning(const double* in, int period, double smoothing, std::size_t first_out) : k(smoothing) {
    double sum = 0.0;
    for (std::size_t i = first_out + 1 - static_cast<std::size_t>(period); i <= first_out; ++i) sum += in[i];
    prev = sum / period;
  }
  GT_HOST_DEVICE EmaRunning(double seed, double smoothing) : prev(seed), k(smoothing) {}
  GT_HOST_DEVICE double step(double x) { return prev = ((x - prev) * k) + prev; }
};

struct WmaRunning : WmaCore {
  const double* in;
  double trailing_value = 0.0;
  std::size_t trailing = 0;

  GT_HOST_DEVICE WmaRunning(const double* values, int p) : WmaCore(p), in(values) {
    for (std::size_t i = 0; i + 1 < static_cast<std::size_t>(p); ++i) prime(in[i], i);
  }
  GT_HOST_DEVICE double step(std::size_t i) {
    const double out = advance(in[i], trailing_value);
    trailing_value = in[trailing++];
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
