#include "detail.hpp"

namespace gt::ind {

Series obv(std::span<const double> close, std::span<const double> volume) {
  const std::size_t n = close.size();
  Series out(n);
  if (n == 0) return out;
  // TA-Lib starts the running total at the first bar's volume, not at zero.
  double total = volume[0];
  double prev = close[0];
  out[0] = total;
  for (std::size_t i = 1; i < n; ++i) {
    if (close[i] > prev)
      total += volume[i];
    else if (close[i] < prev)
      total -= volume[i];
    out[i] = total;
    prev = close[i];
  }
  return out;
}

}  // namespace gt::ind
