// RSI, ROC, MACD and STOCH.
#include <algorithm>

#include "detail.hpp"

namespace gt::ind {

Series rsi(std::span<const double> in, int period) {
  const std::size_t n = in.size();
  Series out = detail::nan_series(n);
  const std::size_t p = static_cast<std::size_t>(period);
  if (period < 1 || n <= p) return out;
  // Wilder smoothing seeded with the plain average of the first `period` moves.
  double gain = 0.0, loss = 0.0;
  double prev_value = in[0];
  for (std::size_t i = 1; i <= p; ++i) {
    const double move = in[i] - prev_value;
    prev_value = in[i];
    if (move < 0)
      loss -= move;
    else
      gain += move;
  }
  loss /= period;
  gain /= period;
  auto value = [&] {
    const double total = gain + loss;
    return detail::is_zero(total) ? 0.0 : 100.0 * (gain / total);
  };
  out[p] = value();
  for (std::size_t i = p + 1; i < n; ++i) {
    const double move = in[i] - prev_value;
    prev_value = in[i];
    loss *= (period - 1);
    gain *= (period - 1);
    if (move < 0)
      loss -= move;
    else
      gain += move;
    loss /= period;
    gain /= period;
    out[i] = value();
  }
  return out;
}

Series roc(std::span<const double> in, int period) {
  const std::size_t n = in.size();
  Series out = detail::nan_series(n);
  const std::size_t p = static_cast<std::size_t>(period);
  if (period < 1) return out;
  for (std::size_t i = p; i < n; ++i) {
    const double base = in[i - p];
    out[i] = base != 0.0 ? ((in[i] / base) - 1.0) * 100.0 : 0.0;
  }
  return out;
}

Macd macd(std::span<const double> in, int fast, int slow, int signal) {
  if (slow < fast) std::swap(slow, fast);
  const std::size_t n = in.size();
  Macd out{detail::nan_series(n), detail::nan_series(n), detail::nan_series(n)};
  // Both EMAs start where the slow one does, the fast one seeded with the SMA of the `fast`
  // values ending there (TA-Lib's MACD, not a standalone EMA of the whole series).
  const std::size_t first = static_cast<std::size_t>(slow - 1);
  if (first >= n) return out;
  Series fast_ema = detail::nan_series(n), slow_ema = detail::nan_series(n);
  detail::ema_from(in, slow, 2.0 / static_cast<double>(slow + 1), first, slow_ema.data());
  detail::ema_from(in, fast, 2.0 / static_cast<double>(fast + 1), first, fast_ema.data());
  Series line = detail::nan_series(n);
  for (std::size_t i = first; i < n; ++i) line[i] = fast_ema[i] - slow_ema[i];
  const std::size_t first_signal = first + static_cast<std::size_t>(signal - 1);
  if (first_signal >= n) return out;
  Series sig = detail::nan_series(n);
  detail::ema_from(std::span<const double>(line).subspan(first), signal, 2.0 / static_cast<double>(signal + 1),
                   static_cast<std::size_t>(signal - 1), sig.data() + first);
  for (std::size_t i = first_signal; i < n; ++i) {
    out.macd[i] = line[i];
    out.signal[i] = sig[i];
    out.hist[i] = line[i] - sig[i];
  }
  return out;
}

Stoch stoch(std::span<const double> high, std::span<const double> low, std::span<const double> close, int fastk,
            int slowk, int slowd) {
  const std::size_t n = close.size();
  Stoch out{detail::nan_series(n), detail::nan_series(n)};
  const std::size_t lookback_k = static_cast<std::size_t>(fastk - 1);
  if (lookback_k >= n) return out;
  // Raw %K with TA-Lib's incremental highest/lowest tracking and its (range / 100) divisor.
  Series raw_k = detail::nan_series(n);
  double highest = 0.0, lowest = 0.0, diff = 0.0;
  std::ptrdiff_t highest_idx = -1, lowest_idx = -1;
  for (std::size_t today = lookback_k; today < n; ++today) {
    const std::ptrdiff_t trailing = static_cast<std::ptrdiff_t>(today - lookback_k);
    double v = low[today];
    if (lowest_idx < trailing) {
      lowest_idx = trailing;
      lowest = low[static_cast<std::size_t>(lowest_idx)];
      for (std::size_t i = static_cast<std::size_t>(lowest_idx) + 1; i <= today; ++i)
        if (low[i] < lowest) {
          lowest_idx = static_cast<std::ptrdiff_t>(i);
          lowest = low[i];
        }
      diff = (highest - lowest) / 100.0;
    } else if (v <= lowest) {
      lowest_idx = static_cast<std::ptrdiff_t>(today);
      lowest = v;
      diff = (highest - lowest) / 100.0;
    }
    v = high[today];
    if (highest_idx < trailing) {
      highest_idx = trailing;
      highest = high[static_cast<std::size_t>(highest_idx)];
      for (std::size_t i = static_cast<std::size_t>(highest_idx) + 1; i <= today; ++i)
        if (high[i] > highest) {
          highest_idx = static_cast<std::ptrdiff_t>(i);
          highest = high[i];
        }
      diff = (highest - lowest) / 100.0;
    } else if (v >= highest) {
      highest_idx = static_cast<std::ptrdiff_t>(today);
      highest = v;
      diff = (highest - lowest) / 100.0;
    }
    raw_k[today] = diff != 0.0 ? (close[today] - lowest) / diff : 0.0;
  }
  const Series k = detail::ma_of_tail(MaType::kSma, raw_k, slowk);
  const Series d = detail::ma_of_tail(MaType::kSma, k, slowd);
  for (std::size_t i = 0; i < n; ++i)
    if (!std::isnan(d[i])) {
      out.k[i] = k[i];
      out.d[i] = d[i];
    }
  return out;
}

}  // namespace gt::ind
