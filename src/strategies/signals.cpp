#include "signals.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <deque>

#include "gt/backtest.hpp"
#include "gt/indicators.hpp"
#include "gt/signal_rules.hpp"

namespace gt::signals {
namespace {

// Crossing events of series a over series b (docs/SEMANTICS.md "ma_cross"): both defined at t and
// t-1, a[t] > b[t] after a[t-1] <= b[t-1] is a cross above; the mirror image a cross below.
// Equality is judged with the tie band of signal_rules.hpp.
template <typename OnCross>
void for_each_cross(std::span<const double> a, std::span<const double> b, OnCross on_cross) {
  for (std::size_t t = 1; t < a.size(); ++t) {
    if (crosses(is_above(a[t], b[t]), is_at_or_below(a[t - 1], b[t - 1])))
      on_cross(t, true);
    else if (crosses(is_below(a[t], b[t]), is_at_or_above(a[t - 1], b[t - 1])))
      on_cross(t, false);
  }
}

void crossover_events(std::span<const double> a, std::span<const double> b, const double* entry_ok,
                      std::span<std::uint8_t> out) {
  std::fill(out.begin(), out.end(), 0);
  for_each_cross(a, b, [&](std::size_t t, bool above) {
    const bool ok = entry_ok == nullptr || entry_ok[t] != 0;
    if (above)
      out[t] = static_cast<std::uint8_t>(kShortExit | (ok ? kLongEntry : 0));
    else
      out[t] = static_cast<std::uint8_t>(kLongExit | (ok ? kShortEntry : 0));
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

// One series of `cache`, computed by `compute` on first use.
template <typename Compute>
const std::vector<double>& cached(SeriesCache& cache, const std::string& key, Compute compute,
                                  std::shared_ptr<const SeriesCache::Group>& hold, std::size_t output = 0) {
  hold = cache.get(key, compute);
  return (*hold)[output];
}

int as_int(double v) {
  return static_cast<int>(v);
}

}  // namespace

std::vector<std::uint8_t> volume_above_average(const Bars& bars) {
  const auto avg = ind::sma(bars.volume, kVolumeFilterPeriod);
  std::vector<std::uint8_t> ok(bars.size());
  for (std::size_t t = 0; t < bars.size(); ++t) ok[t] = bars.volume[t] > avg[t];
  return ok;
}

void ma_cross(const Bars& bars, const ParamValues& values, std::span<std::uint8_t> out, SeriesCache& cache) {
  const MaCrossParams p = decode_ma_cross(values.data());
  const auto type = static_cast<ind::MaType>(p.ma_type);
  std::shared_ptr<const SeriesCache::Group> hold_fast, hold_slow, hold_volume;
  auto ma_key = [&](int period) { return fmt::format("ma:{}:{}", p.ma_type, period); };
  const auto& fast = cached(
      cache, ma_key(p.fast), [&] { return SeriesCache::Group{ind::ma(type, bars.close, p.fast)}; }, hold_fast);
  const auto& slow = cached(
      cache, ma_key(p.slow), [&] { return SeriesCache::Group{ind::ma(type, bars.close, p.slow)}; }, hold_slow);
  const double* ok = nullptr;
  if (p.volume_filter) {
    ok = cached(
             cache, "volume_above_sma20",
             [&] {
               const auto flags = volume_above_average(bars);
               return SeriesCache::Group{std::vector<double>(flags.begin(), flags.end())};
             },
             hold_volume)
             .data();
  }
  crossover_events(fast, slow, ok, out);
}

void macd_cross(const Bars& bars, const ParamValues& p, std::span<std::uint8_t> out, SeriesCache& cache) {
  std::shared_ptr<const SeriesCache::Group> hold;
  cached(
      cache, fmt::format("macd:{}:{}:{}", as_int(p[0]), as_int(p[1]), as_int(p[2])),
      [&] {
        auto m = ind::macd(bars.close, as_int(p[0]), as_int(p[1]), as_int(p[2]));
        return SeriesCache::Group{std::move(m.macd), std::move(m.signal)};
      },
      hold);
  crossover_events((*hold)[0], (*hold)[1], nullptr, out);
}

void rsi_reversion(const Bars& bars, const ParamValues& p, std::span<std::uint8_t> out, SeriesCache& cache) {
  std::shared_ptr<const SeriesCache::Group> hold;
  const auto& r = cached(
      cache, fmt::format("rsi:{}", as_int(p[0])),
      [&] { return SeriesCache::Group{ind::rsi(bars.close, as_int(p[0]))}; }, hold);
  for (std::size_t t = 0; t < bars.size(); ++t) {
    out[t] = 0;
    if (r[t] < p[1])
      out[t] = kLongEntry | kShortExit;
    else if (r[t] > p[2])
      out[t] = kLongExit | kShortEntry;
  }
}

void bbands_reversion(const Bars& bars, const ParamValues& p, std::span<std::uint8_t> out, SeriesCache& cache) {
  std::shared_ptr<const SeriesCache::Group> hold;
  cached(
      cache, fmt::format("bbands:{}:{}", as_int(p[0]), p[1]),
      [&] {
        auto b = ind::bbands(bars.close, as_int(p[0]), p[1], p[1]);
        return SeriesCache::Group{std::move(b.upper), std::move(b.middle), std::move(b.lower)};
      },
      hold);
  const auto& upper = (*hold)[0];
  const auto& middle = (*hold)[1];
  const auto& lower = (*hold)[2];
  for (std::size_t t = 0; t < bars.size(); ++t) {
    const double c = bars.close[t];
    std::uint8_t e = 0;
    if (c < lower[t]) e |= kLongEntry;
    if (c > middle[t]) e |= kLongExit;
    if (c > upper[t]) e |= kShortEntry;
    if (c < middle[t]) e |= kShortExit;
    out[t] = e;
  }
}

void donchian_breakout(const Bars& bars, const ParamValues& p, std::span<std::uint8_t> out, SeriesCache& cache) {
  const auto entry = static_cast<std::size_t>(p[0]);
  const auto exit = static_cast<std::size_t>(p[1]);
  auto channel = [&](std::size_t k) {
    return SeriesCache::Group{prior_extreme(bars.high, k, true), prior_extreme(bars.low, k, false)};
  };
  std::shared_ptr<const SeriesCache::Group> hold_entry, hold_exit;
  const auto& entry_high = cached(
      cache, fmt::format("donchian:{}", entry), [&] { return channel(entry); }, hold_entry, 0);
  const auto& entry_low = (*hold_entry)[1];
  const auto& exit_high = cached(
      cache, fmt::format("donchian:{}", exit), [&] { return channel(exit); }, hold_exit, 0);
  const auto& exit_low = (*hold_exit)[1];
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
