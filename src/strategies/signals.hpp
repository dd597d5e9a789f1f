// Signal generators of the built-in strategies (registered in strategy.cpp).
#pragma once

#include <cstdint>
#include <span>

#include "gt/data.hpp"
#include "gt/strategy.hpp"

namespace gt::signals {

void ma_cross(const Bars& bars, const ParamValues& p, std::span<std::uint8_t> out, SeriesCache& cache);
void rsi_reversion(const Bars& bars, const ParamValues& p, std::span<std::uint8_t> out, SeriesCache& cache);
void bbands_reversion(const Bars& bars, const ParamValues& p, std::span<std::uint8_t> out, SeriesCache& cache);
void macd_cross(const Bars& bars, const ParamValues& p, std::span<std::uint8_t> out, SeriesCache& cache);
void donchian_breakout(const Bars& bars, const ParamValues& p, std::span<std::uint8_t> out, SeriesCache& cache);

// Volume[t] > SMA(Volume, 20)[t]: the seed's volume filter (false during the SMA's warm-up).
std::vector<std::uint8_t> volume_above_average(const Bars& bars);
inline constexpr int kVolumeFilterPeriod = 20;

}  // namespace gt::signals
