#include "signals.hpp"

#include <algorithm>
#include <cmath>
#include <deque>

#include "gt/backtest.hpp"
#include "gt/indicators.hpp"
#include "gt/signal_rules.hpp"

namespace gt::signals {
namespace {

// Crossing events of series a over series b (SPEC §5): both defined at t and t-1, a[t] > b[t]
// after a[t-1] <= b[t-1] is a cross above; the mirror image a cross below. Equality is judged
// with the tie band of signal_rules.hpp.
template <typename OnCross>
void for_each_cross(std::span<const double> a, std::span<const double> b, OnCross on_cross) {
  for (std::size_t t = 1; t < a.size(); ++t) {
    if (is_above(a[t], b[t]) && is_at_or_below(a[t - 1], b[t - 1])) on_cross(t, true);
    else if (is_below(a[t], b[t]) && is_at_or_above(a[t - 1], b[t - 1])) on_cross(t, false);
  }
}

void crossover_events(std::span<const double> a, std::span<const double> b, const std::uint8_t* entry_ok,
                      std::span<std::uint8_t> out) {
  std::fill(out.begin(), out.end(), 0);
  for_each_cross(a, b, [&](std::size_t t, bool above) {
    const bool ok = entry_ok == nullptr || entry_ok[t];
    if (above) out[t] = static_cast<std::uint8_t>(kShortExit | (ok ? kLongEntry : 0));
    else out[t] = static_cast<std::uint8_t>(kLongExit | (ok ? kShortEntry : 0));
  });
}

// max (or min) of the `k` values before t (t excluded); NaN until k values exist.
std::vector<double> prior_extreme(std::span<const double> x, std::size_t k, bool want_max) {
  std::vector<double> out(x.size(), std::nan(""));
  std::deque<std::size_t> window;
  for (std::size_t t = 0; t < x.size(); ++t) {
    if (t >= k) out[t] = x[window.front()];
    while (!window.empty() && (want_max ? x[window.back()] <= x[t] : x[window.back()] >= x[t])) window.pop_back();
    window.push_back(t);
    if (window.front() + k <= t) window.pop_front();
  }
  return out;
}

}  // namespace

std::vector<std::uint8_t> volume_above_average(const Bars& bars) {
  const auto avg = ind::sma(bars.volume, kVolumeFilterPeriod);
  std::vector<std::uint8_t> ok(bars.size());
  for (std::size_t t = 0; t < bars.size(); ++t) ok[t] = bars.volume[t] > avg[t];
  return ok;
}

void ma_cross(const Bars& bars, const ParamValues& p, std::span<std::uint8_t> out) {
  const auto type = static_cast<ind::MaType>(static_cast<int>(p[2]));
  const auto fast = ind::ma(type, bars.close, static_cast<int>(p[0]));
  const auto slow = ind::ma(type, bars.close, static_cast<int>(p[1]));
  std::vector<std::uint8_t> ok;
  if (p[3] != 0) ok = volume_above_average(bars);
  crossover_events(fast, slow, ok.empty() ? nullptr : ok.data(), out);
}

void macd_cross(const Bars& bars, const ParamValues& p, std::span<std::uint8_t> out) {
  const auto m = ind::macd(bars.close, static_cast<int>(p[0]), static_cast<int>(p[1]), static_cast<int>(p[2]));
  crossover_events(m.macd, m.signal, nullptr, out);
}

void rsi_reversion(const Bars& bars, const ParamValues& p, std::span<std::uint8_t> out) {
  const auto r = ind::rsi(bars.close, static_cast<int>(p[0]));
  for (std::size_t t = 0; t < bars.size(); ++t) {
    out[t] = 0;
    if (r[t] < p[1]) out[t] = kLongEntry | kShortExit;
    else if (r[t] > p[2]) out[t] = kLongExit | kShortEntry;
  }
}

void bbands_reversion(const Bars& bars, const ParamValues& p, std::span<std::uint8_t> out) {
  const auto b = ind::bbands(bars.close, static_cast<int>(p[0]), p[1], p[1]);
  for (std::size_t t = 0; t < bars.size(); ++t) {
    const double c = bars.close[t];
    std::uint8_t e = 0;
    if (c < b.lower[t]) e |= kLongEntry;
    if (c > b.middle[t]) e |= kLongExit;
    if (c > b.upper[t]) e |= kShortEntry;
    if (c < b.middle[t]) e |= kShortExit;
    out[t] = e;
  }
}

void donchian_breakout(const Bars& bars, const ParamValues& p, std::span<std::uint8_t> out) {
  const auto entry = static_cast<std::size_t>(p[0]);
  const auto exit = static_cast<std::size_t>(p[1]);
  const auto entry_high = prior_extreme(bars.high, entry, true);
  const auto entry_low = prior_extreme(bars.low, entry, false);
  const auto exit_high = prior_extreme(bars.high, exit, true);
  const auto exit_low = prior_extreme(bars.low, exit, false);
  for (std::size_t t = 0; t < bars.size(); ++t) {
    const double c = bars.close[t];
    std::uint8_t e = 0;
    if (c > entry_high[t]) e |= kLongEntry;
    if (c < exit_low[t]) e |= kLongExit;
    if (c < entry_low[t]) e |= kShortEntry;
    if (c > exit_high[t]) e |= kShortExit;
    out[t] = e;
  }
}

}  // namespace gt::signals
