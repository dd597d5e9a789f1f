// BBANDS, ATR and ADX.
#include <cmath>

#include "detail.hpp"
#include "gt/incremental.hpp"

namespace gt::ind {

Bands bbands(std::span<const double> in, int period, double nbdev_up, double nbdev_down) {
  const std::size_t n = in.size();
  Bands out{detail::nan_series(n), detail::nan_series(n), detail::nan_series(n)};
  if (period < 1 || n < static_cast<std::size_t>(period)) return out;
  incremental::BbandsState state(period, nbdev_up, nbdev_down);
  for (std::size_t i = 0; i < n; ++i) {
    const incremental::BandsValue v = state.update(in[i]);
    out.upper[i] = v.upper;
    out.middle[i] = v.middle;
    out.lower[i] = v.lower;
  }
  return out;
}

Series atr(std::span<const double> high, std::span<const double> low, std::span<const double> close, int period) {
  const std::size_t n = close.size();
  Series out = detail::nan_series(n);
  if (period < 1 || n <= static_cast<std::size_t>(period)) return out;
  incremental::Atr state(period);
  for (std::size_t i = 0; i < n; ++i) out[i] = state.update(high[i], low[i], close[i]);
  return out;
}

Series adx(std::span<const double> high, std::span<const double> low, std::span<const double> close, int period) {
  const std::size_t n = close.size();
  Series out = detail::nan_series(n);
  if (period < 1 || n <= 2 * static_cast<std::size_t>(period) - 1) return out;
  incremental::Adx state(period);
  for (std::size_t i = 0; i < n; ++i) out[i] = state.update(high[i], low[i], close[i]);
  return out;
}

}  // namespace gt::ind
