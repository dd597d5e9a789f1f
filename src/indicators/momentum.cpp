// RSI, ROC, MACD and STOCH.
#include <algorithm>

#include "detail.hpp"
#include "gt/incremental.hpp"

namespace gt::ind {

Series rsi(std::span<const double> in, int period) {
  Series out = detail::nan_series(in.size());
  if (period < 1 || in.size() <= static_cast<std::size_t>(period)) return out;
  incremental::Rsi state(period);
  for (std::size_t i = 0; i < in.size(); ++i) out[i] = state.update(in[i]);
  return out;
}

Series roc(std::span<const double> in, int period) {
  Series out = detail::nan_series(in.size());
  if (period < 1) return out;
  incremental::Roc state(period);
  for (std::size_t i = 0; i < in.size(); ++i) out[i] = state.update(in[i]);
  return out;
}

Macd macd(std::span<const double> in, int fast, int slow, int signal) {
  const std::size_t n = in.size();
  Macd out{detail::nan_series(n), detail::nan_series(n), detail::nan_series(n)};
  incremental::MacdState state(fast, slow, signal);
  for (std::size_t i = 0; i < n; ++i) {
    const incremental::MacdValue v = state.update(in[i]);
    out.macd[i] = v.macd;
    out.signal[i] = v.signal;
    out.hist[i] = v.hist;
  }
  return out;
}

Stoch stoch(std::span<const double> high, std::span<const double> low, std::span<const double> close, int fastk,
            int slowk, int slowd) {
  const std::size_t n = close.size();
  Stoch out{detail::nan_series(n), detail::nan_series(n)};
  incremental::StochState state(fastk, slowk, slowd);
  for (std::size_t i = 0; i < n; ++i) {
    const incremental::StochValue v = state.update(high[i], low[i], close[i]);
    out.k[i] = v.k;
    out.d[i] = v.d;
  }
  return out;
}

}  // namespace gt::ind
