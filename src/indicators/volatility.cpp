// BBANDS, ATR and ADX.
#include <cmath>

#include "detail.hpp"

namespace gt::ind {
namespace {

double true_range(double high, double low, double prev_close) {
  double greatest = high - low;
  const double up = std::fabs(prev_close - high);
  if (up > greatest) greatest = up;
  const double down = std::fabs(prev_close - low);
  if (down > greatest) greatest = down;
  return greatest;
}

}  // namespace

Bands bbands(std::span<const double> in, int period, double nbdev_up, double nbdev_down) {
  const std::size_t n = in.size();
  Bands out{detail::nan_series(n), sma(in, period), detail::nan_series(n)};
  const std::size_t p = static_cast<std::size_t>(period);
  if (period < 1 || n < p) return out;
  // Population deviation as TA-Lib computes it: mean of squares minus the squared SMA, from a
  // running sum of squares, floored to zero below 1e-8.
  double total2 = 0.0;
  for (std::size_t i = 0; i + 1 < p; ++i) total2 += in[i] * in[i];
  for (std::size_t end = p - 1, start = 0; end < n; ++end, ++start) {
    total2 += in[end] * in[end];
    double variance = total2 / period;
    total2 -= in[start] * in[start];
    const double mid = out.middle[end];
    variance -= mid * mid;
    const double dev = detail::is_zero_or_neg(variance) ? 0.0 : std::sqrt(variance);
    if (nbdev_up == nbdev_down) {
      const double width = dev * nbdev_up;
      out.upper[end] = mid + width;
      out.lower[end] = mid - width;
    } else {
      out.upper[end] = mid + dev * nbdev_up;
      out.lower[end] = mid - dev * nbdev_down;
    }
  }
  return out;
}

Series atr(std::span<const double> high, std::span<const double> low, std::span<const double> close, int period) {
  const std::size_t n = close.size();
  Series out = detail::nan_series(n);
  const std::size_t p = static_cast<std::size_t>(period);
  if (period < 1 || n <= p) return out;
  if (period == 1) {  // TA-Lib returns the true range itself
    for (std::size_t i = 1; i < n; ++i) out[i] = true_range(high[i], low[i], close[i - 1]);
    return out;
  }
  double total = 0.0;  // SMA of the first `period` true ranges, then Wilder smoothing
  for (std::size_t i = 1; i <= p; ++i) total += true_range(high[i], low[i], close[i - 1]);
  double prev = total / period;
  out[p] = prev;
  for (std::size_t i = p + 1; i < n; ++i) {
    prev *= period - 1;
    prev += true_range(high[i], low[i], close[i - 1]);
    prev /= period;
    out[i] = prev;
  }
  return out;
}

Series adx(std::span<const double> high, std::span<const double> low, std::span<const double> close, int period) {
  const std::size_t n = close.size();
  Series out = detail::nan_series(n);
  const std::size_t lookback = 2 * static_cast<std::size_t>(period) - 1;
  if (period < 1 || n <= lookback) return out;
  double minus_dm = 0.0, plus_dm = 0.0, tr = 0.0;
  double prev_high = high[0], prev_low = low[0], prev_close = close[0];
  std::size_t today = 0;
  // Adds bar `today`'s directional moves and true range; `smooth` applies Wilder's decay first.
  auto step = [&](bool smooth) {
    ++today;
    const double diff_p = high[today] - prev_high;
    prev_high = high[today];
    const double diff_m = prev_low - low[today];
    prev_low = low[today];
    if (smooth) {
      minus_dm -= minus_dm / period;
      plus_dm -= plus_dm / period;
    }
    if (diff_m > 0 && diff_p < diff_m)
      minus_dm += diff_m;
    else if (diff_p > 0 && diff_p > diff_m)
      plus_dm += diff_p;
    const double range = true_range(prev_high, prev_low, prev_close);
    tr = smooth ? tr - tr / period + range : tr + range;
    prev_close = close[today];
  };
  // DX of the current state, or a negative value where TA-Lib leaves the ADX unchanged.
  auto dx = [&]() -> double {
    if (detail::is_zero(tr)) return -1.0;
    const double minus_di = 100.0 * (minus_dm / tr);
    const double plus_di = 100.0 * (plus_dm / tr);
    const double sum = minus_di + plus_di;
    if (detail::is_zero(sum)) return -1.0;
    return 100.0 * (std::fabs(minus_di - plus_di) / sum);
  };
  for (int i = period - 1; i > 0; --i) step(false);
  double sum_dx = 0.0;
  for (int i = period; i > 0; --i) {
    step(true);
    const double v = dx();
    if (v >= 0) sum_dx += v;
  }
  double prev_adx = sum_dx / period;
  out[today] = prev_adx;
  while (today + 1 < n) {
    step(true);
    const double v = dx();
    if (v >= 0) prev_adx = (prev_adx * (period - 1) + v) / period;
    out[today] = prev_adx;
  }
  return out;
}

}  // namespace gt::ind
