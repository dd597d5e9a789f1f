// The rule functions' table (functions.hpp): per function, its lookback, its evaluation over every
// bar (TA-Lib's functions, gt/indicators.hpp) and bar by bar (their incremental states,
// gt/incremental.hpp), which tests/cpp/live_test.cpp holds equal.
#include "functions.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "gt/error.hpp"
#include "gt/incremental.hpp"
#include "gt/indicators.hpp"

namespace gt::rules {
namespace {

namespace inc = ind::incremental;
using Group = SeriesCache::Group;

// ---- Over every bar ------------------------------------------------------------------------------

// A TA-Lib function of `count` outputs applied from the series' first defined value on (as
// TA-Lib's Python wrapper does), each output placed at the same bars; all undefined when no value
// is.
template <class F>
Group from_first_defined(std::span<const double> x, std::size_t count, F f) {
  std::size_t first = 0;
  while (first < x.size() && std::isnan(x[first])) ++first;
  if (first == 0) return f(x);  // most series: no copy
  Group out(count, std::vector<double>(x.size(), kUndefined));
  if (first == x.size()) return out;
  const Group r = f(x.subspan(first));
  for (std::size_t i = 0; i < count; ++i)
    std::copy(r[i].begin(), r[i].end(), out[i].begin() + static_cast<std::ptrdiff_t>(first));
  return out;
}

// The highest (or lowest) of the n values ending at t; undefined where one of them is.
std::vector<double> extreme(std::span<const double> x, std::size_t n, bool highest) {
  std::vector<double> out(x.size());
  inc::Extreme state(static_cast<int>(n), highest);
  for (std::size_t t = 0; t < x.size(); ++t) out[t] = state.update(x[t]);
  return out;
}

// A function of the bars' values, bar by bar, over every bar.
template <class F>
Group per_bar(const CallOverBars& c, F f) {
  std::vector<double> out(c.bars->size());
  for (std::size_t t = 0; t < out.size(); ++t) out[t] = f(t);
  return {std::move(out)};
}

// ---- Bar by bar ----------------------------------------------------------------------------------

// The indicator `State` applied from its input's first defined value on, as the evaluation over
// every bar applies each function to its input's defined tail.
template <class State, class... Args>
Next from_first_defined_stream(Next x, Args... args) {
  auto state = std::make_shared<inc::FromDefined<State>>(args...);
  return [x = std::move(x), state](const BarValues& b) { return state->update(x(b)); };
}

// A call with several outputs over its input's defined tail: all undefined until the input is.
template <class State, class Pick, class... Args>
Next defined_tail(Next x, Pick pick, Args... args) {
  auto state = std::make_shared<State>(args...);
  auto started = std::make_shared<bool>(false);
  return [x = std::move(x), pick, state, started](const BarValues& b) {
    const double v = x(b);
    if (!*started && std::isnan(v)) return kUndefined;
    *started = true;
    return pick(state->update(v));
  };
}

// ---- The functions -------------------------------------------------------------------------------

// f(x, n): an indicator of a series and a period, over every bar and bar by bar.
template <auto kIndicator>
Group series_and_period(const CallOverBars& c) {
  return from_first_defined(c.x, 1, [&](auto x) { return Group{kIndicator(x, c.whole(1, 1))}; });
}
template <class State>
Next series_and_period_stream(const CallBarByBar& c) {
  Next x = c.series(0);
  return from_first_defined_stream<State>(std::move(x), c.whole(1, 1));
}

// An average's lookback: its input's and TA-Lib's for its type and period.
std::size_t average_lookback(const CallLookback& c, ind::MaType type) {
  return c.of(0) + static_cast<std::size_t>(ind::ma_lookback(type, static_cast<int>(c.period(1))));
}
template <ind::MaType kType>
std::size_t average_lookback(const CallLookback& c) {
  return average_lookback(c, kType);
}
std::size_t series_and_period_lookback(const CallLookback& c) {
  return c.of(0) + c.period(1);
}
std::size_t window_lookback(const CallLookback& c) {  // the bands, highest and lowest: n values ending at t
  return c.of(0) + c.period(1) - 1;
}
std::size_t widest_lookback(const CallLookback& c) {
  return c.widest;
}

ind::MaType checked_ma_type(const CallArguments& c) {
  const int type = c.whole(2, 0);
  if (type > 4) throw ParamError(fmt::format("ma: type = {} (allowed: 0 SMA, 1 EMA, 2 WMA, 3 DEMA, 4 TEMA)", type));
  return static_cast<ind::MaType>(type);
}

Group ma(const CallOverBars& c) {
  const ind::MaType type = checked_ma_type(c);
  return from_first_defined(c.x, 1, [&](auto x) { return Group{ind::ma(type, x, c.whole(1, 1))}; });
}
Next ma_stream(const CallBarByBar& c) {
  Next x = c.series(0);
  const ind::MaType type = checked_ma_type(c);
  return from_first_defined_stream<inc::Ma>(std::move(x), type, c.whole(1, 1));
}
std::size_t ma_lookback(const CallLookback& c) {
  const double type = c.scalar(2);
  return average_lookback(c, static_cast<ind::MaType>(type >= 0 && type <= 4 ? static_cast<int>(type) : 0));
}

Group atr(const CallOverBars& c) {
  return {ind::atr(c.bars->high, c.bars->low, c.bars->close, c.whole(0, 1))};
}
Next atr_stream(const CallBarByBar& c) {
  auto s = std::make_shared<inc::Atr>(c.whole(0, 1));
  return [s](const BarValues& b) { return s->update(b.high, b.low, b.close); };
}
Group adx(const CallOverBars& c) {
  return {ind::adx(c.bars->high, c.bars->low, c.bars->close, c.whole(0, 1))};
}
Next adx_stream(const CallBarByBar& c) {
  auto s = std::make_shared<inc::Adx>(c.whole(0, 1));
  return [s](const BarValues& b) { return s->update(b.high, b.low, b.close); };
}
Group obv(const CallOverBars& c) {
  return {ind::obv(c.bars->close, c.bars->volume)};
}
Next obv_stream(const CallBarByBar&) {
  auto s = std::make_shared<inc::Obv>();
  return [s](const BarValues& b) { return s->update(b.close, b.volume); };
}

Group macd(const CallOverBars& c) {
  return from_first_defined(c.x, 3, [&](auto x) {
    auto m = ind::macd(x, c.whole(1, 1), c.whole(2, 1), c.whole(3, 1));
    return Group{std::move(m.macd), std::move(m.signal), std::move(m.hist)};
  });
}
Next macd_stream(const CallBarByBar& c) {
  Next x = c.series(0);
  const auto pick = [i = c.output](const inc::MacdValue& v) { return i == 0 ? v.macd : i == 1 ? v.signal : v.hist; };
  return defined_tail<inc::MacdState>(std::move(x), pick, c.whole(1, 1), c.whole(2, 1), c.whole(3, 1));
}
std::size_t macd_lookback(const CallLookback& c) {
  return c.of(0) + c.period(2) + c.period(3) - 2;
}

Group bands(const CallOverBars& c) {
  return from_first_defined(c.x, 3, [&](auto x) {
    auto b = ind::bbands(x, c.whole(1, 1), c.scalar(2), c.scalar(2));
    return Group{std::move(b.upper), std::move(b.middle), std::move(b.lower)};
  });
}
Next bands_stream(const CallBarByBar& c) {
  Next x = c.series(0);
  const double k = c.scalar(2);
  const auto pick = [i = c.output](const inc::BandsValue& v) { return i == 0 ? v.upper : i == 1 ? v.middle : v.lower; };
  return defined_tail<inc::BbandsState>(std::move(x), pick, c.whole(1, 1), k, k);
}

Group stoch(const CallOverBars& c) {
  auto st = ind::stoch(c.bars->high, c.bars->low, c.bars->close, c.whole(0, 1), c.whole(1, 1), c.whole(2, 1));
  return {std::move(st.k), std::move(st.d)};
}
Next stoch_stream(const CallBarByBar& c) {
  auto s = std::make_shared<inc::StochState>(c.whole(0, 1), c.whole(1, 1), c.whole(2, 1));
  return [s, k = c.output == 0](const BarValues& b) {
    const inc::StochValue v = s->update(b.high, b.low, b.close);
    return k ? v.k : v.d;
  };
}
std::size_t stoch_lookback(const CallLookback& c) {
  return c.period(0) + c.period(1) + c.period(2) - 3;
}

template <bool kHighest>
Group extreme_over_bars(const CallOverBars& c) {
  return {extreme(c.x, static_cast<std::size_t>(c.whole(1, 1)), kHighest)};
}
template <bool kHighest>
Next extreme_stream(const CallBarByBar& c) {
  Next x = c.series(0);
  auto s = std::make_shared<inc::Extreme>(c.whole(1, 1), kHighest);
  return [x = std::move(x), s](const BarValues& b) { return s->update(x(b)); };
}

Group abs_over_bars(const CallOverBars& c) {
  return per_bar(c, [&](std::size_t t) { return std::fabs(c.args[0].at(t)); });
}
Next abs_stream(const CallBarByBar& c) {
  return [x = c.series(0)](const BarValues& b) { return std::fabs(x(b)); };
}

template <bool kMinimum>
Group min_max(const CallOverBars& c) {
  return per_bar(c, [&](std::size_t t) { return min_max_value(kMinimum, c.args[0].at(t), c.args[1].at(t)); });
}
template <bool kMinimum>
Next min_max_stream(const CallBarByBar& c) {
  Next a = c.series(0), b = c.series(1);
  return [a = std::move(a), b = std::move(b)](const BarValues& bar) {
    const double u = a(bar), v = b(bar);
    return min_max_value(kMinimum, u, v);
  };
}

// cross_above (kAbove) and cross_below: undefined at the first bar, which has no bar before.
template <bool kAbove>
Group cross(const CallOverBars& c) {
  const ArgumentOverBars &a = c.args[0], &b = c.args[1];
  return per_bar(c, [&](std::size_t t) {
    return t == 0 ? kUndefined : cross_value(kAbove, a.at(t), b.at(t), a.at(t - 1), b.at(t - 1));
  });
}
template <bool kAbove>
Next cross_stream(const CallBarByBar& c) {
  Next a = c.series(0), b = c.series(1);
  struct Before {  // the bar before's values (undefined before the first bar)
    double a = kUndefined, b = kUndefined;
  };
  auto before = std::make_shared<Before>();
  return [a = std::move(a), b = std::move(b), before](const BarValues& bar) {
    const double u = a(bar), v = b(bar);
    const double value = cross_value(kAbove, u, v, before->a, before->b);
    *before = {u, v};
    return value;
  };
}
std::size_t cross_lookback(const CallLookback& c) {
  return c.widest + 1;
}

// The functions of one call's outputs share its family (for the cache) and its evaluations.
constexpr CallOutput alone(std::string_view name) {
  return {name, 0, 1};
}

}  // namespace

const std::vector<Function>& functions() {
  using inc::Dema, inc::Ema, inc::Kama, inc::Roc, inc::Rsi, inc::Sma, inc::Tema, inc::Wma;
  using ind::MaType;
  static const std::vector<Function> table = {
      {"sma", "xn", "x, n", false, alone("sma"), average_lookback<MaType::kSma>, series_and_period<ind::sma>,
       series_and_period_stream<Sma>},
      {"ema", "xn", "x, n", false, alone("ema"), average_lookback<MaType::kEma>, series_and_period<ind::ema>,
       series_and_period_stream<Ema>},
      {"wma", "xn", "x, n", false, alone("wma"), average_lookback<MaType::kWma>, series_and_period<ind::wma>,
       series_and_period_stream<Wma>},
      {"dema", "xn", "x, n", false, alone("dema"), average_lookback<MaType::kDema>, series_and_period<ind::dema>,
       series_and_period_stream<Dema>},
      {"tema", "xn", "x, n", false, alone("tema"), average_lookback<MaType::kTema>, series_and_period<ind::tema>,
       series_and_period_stream<Tema>},
      {"kama", "xn", "x, n", false, alone("kama"), series_and_period_lookback, series_and_period<ind::kama>,
       series_and_period_stream<Kama>},
      {"ma", "xnn", "x, n, type", false, alone("ma"), ma_lookback, ma, ma_stream},
      {"rsi", "xn", "x, n", false, alone("rsi"), series_and_period_lookback, series_and_period<ind::rsi>,
       series_and_period_stream<Rsi>},
      {"roc", "xn", "x, n", false, alone("roc"), series_and_period_lookback, series_and_period<ind::roc>,
       series_and_period_stream<Roc>},
      {"atr", "n", "n", false, alone("atr"), [](const CallLookback& c) { return c.period(0); }, atr, atr_stream},
      {"adx", "n", "n", false, alone("adx"), [](const CallLookback& c) { return 2 * c.period(0) - 1; }, adx,
       adx_stream},
      {"obv", "", "", false, alone("obv"), widest_lookback, obv, obv_stream},
      {"macd", "xnnn", "x, fast, slow, signal", false, {"macd", 0, 3}, macd_lookback, macd, macd_stream},
      {"macd_signal", "xnnn", "x, fast, slow, signal", false, {"macd", 1, 3}, macd_lookback, macd, macd_stream},
      {"macd_hist", "xnnn", "x, fast, slow, signal", false, {"macd", 2, 3}, macd_lookback, macd, macd_stream},
      {"bb_upper", "xnk", "x, n, k", false, {"bb", 0, 3}, window_lookback, bands, bands_stream},
      {"bb_middle", "xnk", "x, n, k", false, {"bb", 1, 3}, window_lookback, bands, bands_stream},
      {"bb_lower", "xnk", "x, n, k", false, {"bb", 2, 3}, window_lookback, bands, bands_stream},
      {"stoch_k", "nnn", "fastk, slowk, slowd", false, {"stoch", 0, 2}, stoch_lookback, stoch, stoch_stream},
      {"stoch_d", "nnn", "fastk, slowk, slowd", false, {"stoch", 1, 2}, stoch_lookback, stoch, stoch_stream},
      {"highest", "xn", "x, n", false, alone("highest"), window_lookback, extreme_over_bars<true>,
       extreme_stream<true>},
      {"lowest", "xn", "x, n", false, alone("lowest"), window_lookback, extreme_over_bars<false>,
       extreme_stream<false>},
      {"abs", "x", "x", false, alone("abs"), widest_lookback, abs_over_bars, abs_stream},
      {"min", "xx", "a, b", false, alone("min"), widest_lookback, min_max<true>, min_max_stream<true>},
      {"max", "xx", "a, b", false, alone("max"), widest_lookback, min_max<false>, min_max_stream<false>},
      {"cross_above", "xx", "a, b", true, alone("cross_above"), cross_lookback, cross<true>, cross_stream<true>},
      {"cross_below", "xx", "a, b", true, alone("cross_below"), cross_lookback, cross<false>, cross_stream<false>},
  };
  return table;
}

const Function* find_function(std::string_view name) {
  const auto& table = functions();
  const auto f = std::find_if(table.begin(), table.end(), [&](const Function& g) { return g.name == name; });
  return f == table.end() ? nullptr : &*f;
}

const Function& function_named(std::string_view name) {
  const Function* f = find_function(name);
  if (!f) throw Error(fmt::format("internal: unknown rule function '{}'", name));
  return *f;
}

}  // namespace gt::rules
