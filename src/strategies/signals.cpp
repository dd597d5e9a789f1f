#include "signals.hpp"

#include "gt/indicators.hpp"

namespace gt::signals {

std::vector<std::uint8_t> volume_above_average(const Bars& bars) {
  const auto avg = ind::sma(bars.volume, kVolumeFilterPeriod);
  std::vector<std::uint8_t> ok(bars.size());
  for (std::size_t t = 0; t < bars.size(); ++t) ok[t] = bars.volume[t] > avg[t];
  return ok;
}

}  // namespace gt::signals
