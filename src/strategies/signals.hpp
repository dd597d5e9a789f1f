// What the crossover engines read of the seed's volume filter (docs/SEMANTICS.md "ma_cross").
#pragma once

#include <cstdint>
#include <vector>

#include "gt/data.hpp"

namespace gt::signals {

// Volume[t] > SMA(Volume, 20)[t]: the seed's volume filter (false during the SMA's warm-up).
std::vector<std::uint8_t> volume_above_average(const Bars& bars);
inline constexpr int kVolumeFilterPeriod = 20;

}  // namespace gt::signals
