#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <functional>

#include "gt/data.hpp"
#include "gt/error.hpp"
#include "gt/indicators.hpp"

namespace gt::ind {
namespace {

enum Arg : unsigned {
  kPeriod = 1,
  kFast = 2,
  kSlow = 4,
  kSignal = 8,
  kNbdev = 16,
  kFastk = 32,
  kSlowk = 64,
  kSlowd = 128
};

struct Entry {
  std::string_view name;
  unsigned accepts;
  std::function<std::vector<NamedSeries>(const Bars&, const IndicatorArgs&, std::string_view)> run;
};

int get(std::optional<int> v, int fallback) {
  return v.value_or(fallback);
}

std::vector<NamedSeries> one(std::string_view name, Series s) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return {{lower, std::move(s)}};
}

// A single-series moving average over Close with TA-Lib's default period 30.
Entry close_ma(std::string_view name, Series (*fn)(std::span<const double>, int)) {
  return {name, kPeriod, [fn](const Bars& b, const IndicatorArgs& a, std::string_view nm) {
            const int p = get(a.period, 30);
            check_period(nm, "period", p, 2, b.size());
            return one(nm, fn(b.close, p));
          }};
}

const std::vector<Entry>& table() {
  static const std::vector<Entry> entries = {
      close_ma("SMA", sma),
      close_ma("EMA", ema),
      close_ma("WMA", wma),
      close_ma("DEMA", dema),
      close_ma("TEMA", tema),
      close_ma("KAMA", kama),
      {"RSI", kPeriod,
       [](const Bars& b, const IndicatorArgs& a, std::string_view nm) {
         const int p = get(a.period, 14);
         check_period(nm, "period", p, 2, b.size());
         return one(nm, rsi(b.close, p));
       }},
      {"ROC", kPeriod,
       [](const Bars& b, const IndicatorArgs& a, std::string_view nm) {
         const int p = get(a.period, 10);
         check_period(nm, "period", p, 1, b.size());
         return one(nm, roc(b.close, p));
       }},
      {"ATR", kPeriod,
       [](const Bars& b, const IndicatorArgs& a, std::string_view nm) {
         const int p = get(a.period, 14);
         check_period(nm, "period", p, 1, b.size());
         return one(nm, atr(b.high, b.low, b.close, p));
       }},
      {"ADX", kPeriod,
       [](const Bars& b, const IndicatorArgs& a, std::string_view nm) {
         const int p = get(a.period, 14);
         check_period(nm, "period", p, 2, b.size());
         return one(nm, adx(b.high, b.low, b.close, p));
       }},
      {"OBV", 0,
       [](const Bars& b, const IndicatorArgs&, std::string_view nm) { return one(nm, obv(b.close, b.volume)); }},
      {"MACD", kFast | kSlow | kSignal,
       [](const Bars& b, const IndicatorArgs& a, std::string_view nm) {
         const int fast = get(a.fast, 12), slow = get(a.slow, 26), signal = get(a.signal, 9);
         check_period(nm, "fast", fast, 2, b.size());
         check_period(nm, "slow", slow, 2, b.size());
         check_period(nm, "signal", signal, 1, b.size());
         Macd m = macd(b.close, fast, slow, signal);
         return std::vector<NamedSeries>{
             {"macd", std::move(m.macd)}, {"signal", std::move(m.signal)}, {"hist", std::move(m.hist)}};
       }},
      {"BBANDS", kPeriod | kNbdev,
       [](const Bars& b, const IndicatorArgs& a, std::string_view nm) {
         const int p = get(a.period, 20);
         const double k = a.nbdev.value_or(2.0);
         check_period(nm, "period", p, 2, b.size());
         if (!std::isfinite(k) || k < -3.0e37 || k > 3.0e37)
           throw ParamError(fmt::format("{}: nbdev = {} must be a finite number", nm, k));
         Bands bands = bbands(b.close, p, k, k);
         return std::vector<NamedSeries>{
             {"upper", std::move(bands.upper)}, {"middle", std::move(bands.middle)}, {"lower", std::move(bands.lower)}};
       }},
      {"STOCH", kFastk | kSlowk | kSlowd,
       [](const Bars& b, const IndicatorArgs& a, std::string_view nm) {
         const int fk = get(a.fastk, 5), sk = get(a.slowk, 3), sd = get(a.slowd, 3);
         check_period(nm, "fastk", fk, 1, b.size());
         check_period(nm, "slowk", sk, 1, b.size());
         check_period(nm, "slowd", sd, 1, b.size());
         Stoch s = stoch(b.high, b.low, b.close, fk, sk, sd);
         return std::vector<NamedSeries>{{"k", std::move(s.k)}, {"d", std::move(s.d)}};
       }},
  };
  return entries;
}

// The argument names a mask holds, as the library (and Python) calls them.
std::vector<std::string> argument_names(unsigned mask) {
  static constexpr std::pair<unsigned, std::string_view> kNames[] = {
      {kPeriod, "period"}, {kFast, "fast"},   {kSlow, "slow"},   {kSignal, "signal"},
      {kNbdev, "nbdev"},   {kFastk, "fastk"}, {kSlowk, "slowk"}, {kSlowd, "slowd"}};
  std::vector<std::string> out;
  for (const auto& [bit, label] : kNames)
    if (mask & bit) out.emplace_back(label);
  return out;
}

}  // namespace

std::vector<std::string> indicator_names() {
  std::vector<std::string> names;
  for (const auto& e : table()) names.emplace_back(e.name);
  return names;
}

std::vector<NamedSeries> compute(std::string_view name, const Bars& bars, const IndicatorArgs& args) {
  std::string upper(name);
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  const auto& entries = table();
  const auto it = std::find_if(entries.begin(), entries.end(), [&](const Entry& e) { return e.name == upper; });
  if (it == entries.end())
    throw ParamError(fmt::format("unknown indicator '{}' (allowed: {})", name, fmt::join(indicator_names(), ", ")));
  const std::pair<bool, unsigned> given[] = {{args.period.has_value(), kPeriod}, {args.fast.has_value(), kFast},
                                             {args.slow.has_value(), kSlow},     {args.signal.has_value(), kSignal},
                                             {args.nbdev.has_value(), kNbdev},   {args.fastk.has_value(), kFastk},
                                             {args.slowk.has_value(), kSlowk},   {args.slowd.has_value(), kSlowd}};
  for (const auto& [present, bit] : given)
    if (present && !(it->accepts & bit)) {
      std::vector<std::string> named = argument_names(bit);
      const std::vector<std::string> takes = argument_names(it->accepts);
      named.insert(named.end(), takes.begin(), takes.end());
      throw ParamError(named, fmt::format("{} does not take {} (it takes {})", it->name, named.front(),
                                          takes.empty() ? "no arguments" : fmt::format("{}", fmt::join(takes, ", "))));
    }
  return it->run(bars, args, it->name);
}

}  // namespace gt::ind
