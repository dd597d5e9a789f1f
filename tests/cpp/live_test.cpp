// Signals and decisions bar by bar (docs/SEMANTICS.md "Live signals"): a strategy's signals
// computed as each bar arrives equal its signals over the whole file at every bar, for every
// built-in strategy and every function of the rules; the live engine's decisions on one symbol
// equal the backtest's trades. Redis plays no part here (tests/python/test_live.py runs it).
#include "gt/live.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <tuple>
#include <vector>

#include "gt/data.hpp"
#include "gt/error.hpp"
#include "gt/ml.hpp"
#include "gt/rules.hpp"
#include "gt/strategy.hpp"

namespace {

const std::vector<gt::Bars>& all_files() {
  static const std::vector<gt::Bars> bars = {gt::load_csv(GT_DATA_DIR "/orcl-1995-2014.csv"),
                                             gt::load_csv(GT_DATA_DIR "/yhoo-1996-2014.csv"),
                                             gt::load_csv(GT_DATA_DIR "/es-2006-5min.csv")};
  return bars;
}

gt::BarValues bar_at(const gt::Bars& b, std::size_t t) {
  return {b.open[t], b.high[t], b.low[t], b.close[t], b.volume[t]};
}

// Every function and operator of the rules, with short rules.
const char* kEveryFunction = R"(
name: every_function
params:
  n: {type: int, default: 10, min: 2, max: 100}
  k: {type: float, default: 2, min: 0, max: 5}
entry: >-
  (cross_above(dema(close, n), tema(close, n)) or kama(close, n) > wma(close, n) * 1.01
  or macd_hist(close, 12, 26, 9) > 0 and macd(close, 12, 26, 9) >= macd_signal(close, 12, 26, 9))
  and not (rsi(close, 14) > 75) and close > lowest(low, n)[1] and adx(14) != 0
exit: >-
  cross_below(close, bb_lower(close, n, k)) or stoch_k(14, 3, 3) < stoch_d(14, 3, 3) - 10
  or roc(close, n) / 100 <= -abs(atr(14) / close) or close[2] == close or abs(close - close[1]) > 2 * atr(14)
short_entry: >-
  min(ma(close, n, 3), ma(close, n, 4)) > max(sma(close, n), ema(close, n)) and highest(high, n) - close > atr(14)
  and obv() < sma(obv(), 20) and bb_middle(close, n, k) < bb_upper(close, n, k) and volume - volume[1] > 0
short_exit: cross_above(ma(close, n, 1), ma(close, n, 2)) or close + 0 < ma(close, n, 0) - 3 * atr(14)
)";

std::vector<std::pair<gt::Strategy, gt::ParamValues>> strategies_to_stream() {
  std::vector<std::pair<gt::Strategy, gt::ParamValues>> out;
  for (const gt::Strategy& s : gt::strategies())
    if (s.stream) out.emplace_back(s, s.defaults());
  gt::Strategy cross = gt::find_strategy("ma_cross");
  out.emplace_back(cross, gt::parse_params(cross, {{"fast", "7"}, {"slow", "33"}, {"ma_type", "2"}}));
  out.emplace_back(
      cross, gt::parse_params(cross, {{"fast", "5"}, {"slow", "20"}, {"ma_type", "1"}, {"volume_filter", "true"}}));
  const auto every = gt::rules::compile(gt::rules::parse_strategy_text(kEveryFunction, "every_function.yaml"));
  out.emplace_back(*every, every->defaults());
  out.emplace_back(*every, gt::parse_params(*every, {{"n", "3"}, {"k", "0.5"}}));
  const auto trend = gt::rules::compile(gt::rules::read_strategy_file(GT_SOURCE_DIR "/strategies/trend_rsi.yaml"));
  out.emplace_back(*trend, trend->defaults());
  return out;
}

TEST(Live, EveryRuleStrategysSignalsBarByBarEqualItsSignalsOverTheFile) {
  std::size_t built_ins = 0;
  for (const gt::Strategy& s : gt::strategies()) built_ins += s.stream ? 1 : 0;
  EXPECT_EQ(built_ins, gt::strategies().size() - 1) << "every built-in but the model streams its signals";
  for (const auto& [strategy, values] : strategies_to_stream())
    for (const gt::Bars& bars : all_files()) {
      std::vector<std::uint8_t> batch(bars.size());
      gt::SeriesCache cache;
      strategy.signals(bars, values, batch, cache);
      const auto stream = strategy.stream(values);
      std::size_t events = 0;
      for (std::size_t t = 0; t < bars.size(); ++t) {
        const std::uint8_t got = stream->next(bar_at(bars, t));
        ASSERT_EQ(got, batch[t]) << strategy.name << " " << strategy.describe(values) << " on " << bars.symbol
                                 << " at bar " << t;
        events += got != 0;
      }
      EXPECT_GT(events, 0u) << strategy.name << " on " << bars.symbol << ": a comparison with no events proves little";
    }
}

TEST(Live, RulesReadingASeriesOfTheUsersOwnCannotStream) {
  auto rules = gt::rules::parse_strategy_text(
      "name: own\nseries: [sentiment]\nentry: sentiment > 0\nexit: sentiment < 0\n", "own.yaml");
  const auto s = gt::rules::compile(rules);
  try {
    s->stream(s->defaults());
    FAIL() << "no error";
  } catch (const gt::ParamError& e) {
    EXPECT_NE(std::string(e.what()).find("the rules read series 'sentiment'"), std::string::npos) << e.what();
  }
}

// What the backtest decided, from its trades: (decision bar, exit first, action). An entry or a
// rule exit with next-open fills is decided at the close before its fill; an exit by price or time
// within its bar; with close fills everything at its bar.
std::vector<std::tuple<std::size_t, int, std::string>> backtest_decisions(const gt::Bars& bars,
                                                                          const gt::Strategy& strategy,
                                                                          const gt::ParamValues& values,
                                                                          const gt::ExecutionOptions& options) {
  const gt::BacktestResult r = gt::run_strategy(bars, strategy, values, options);
  const bool close_fills = options.fill == gt::Fill::kClose;
  std::vector<std::tuple<std::size_t, int, std::string>> out;
  for (const gt::Trade& trade : r.trades) {
    out.emplace_back(close_fills ? trade.entry_bar : trade.entry_bar - 1, 1, trade.side > 0 ? "buy" : "short");
    if (trade.open || trade.exit_reason == gt::ExitReason::kEnd) continue;
    const bool ordered = trade.exit_reason == gt::ExitReason::kRule && !close_fills;
    out.emplace_back(ordered ? trade.exit_bar - 1 : trade.exit_bar, 0, trade.side > 0 ? "sell" : "cover");
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Live, ASymbolsDecisionsBarByBarAreTheBacktestsOnEveryFile) {
  gt::ExecutionOptions next_open, close_fills, stops_and_shorts;
  close_fills.fill = gt::Fill::kClose;
  stops_and_shorts.allow_short = true;
  stops_and_shorts.commission = 0.001;
  stops_and_shorts.exits.stop_loss = 0.03;
  stops_and_shorts.exits.take_profit = 0.06;
  stops_and_shorts.exits.trailing_stop = 0.05;
  stops_and_shorts.exits.max_bars = 15;
  for (const auto& [strategy, values] : strategies_to_stream()) {
    std::size_t decided = 0;
    for (const gt::Bars& bars : all_files())
      for (const gt::ExecutionOptions* options : {&next_open, &close_fills, &stops_and_shorts}) {
        gt::LiveSymbol symbol(bars.symbol, strategy, values, *options);
        std::vector<std::tuple<std::size_t, int, std::string>> got;
        std::vector<gt::LiveDecision> decisions;
        for (std::size_t t = 0; t < bars.size(); ++t) {
          decisions.clear();
          ASSERT_EQ(symbol.add(gt::format_time(bars.time[t], bars.intraday), bar_at(bars, t), decisions), "");
          for (const auto& d : decisions)
            got.emplace_back(t, d.action == "buy" || d.action == "short" ? 1 : 0, d.action);
        }
        const auto expected = backtest_decisions(bars, strategy, values, *options);
        decided += expected.size();
        // An order placed at the last close has no open to fill at in the file: the backtest has no trade of it.
        if (options->fill == gt::Fill::kNextOpen)
          std::erase_if(got, [&](const auto& d) { return std::get<0>(d) + 1 == bars.size(); });
        ASSERT_EQ(got, expected) << strategy.name << " " << strategy.describe(values) << " on " << bars.symbol;
      }
    EXPECT_GT(decided, 20u) << strategy.name << " " << strategy.describe(values) << ": too few decisions to compare";
  }
}

TEST(Live, ABarOutOfOrderOrWithBadPricesIsRefusedAndChangesNothing) {
  const gt::Strategy& s = gt::find_strategy("ma_cross");
  gt::LiveSymbol symbol("x", s, s.defaults(), {});
  std::vector<gt::LiveDecision> decisions;
  EXPECT_EQ(symbol.add("2020-01-02", {10, 11, 9, 10, 100}, decisions), "");
  EXPECT_NE(symbol.add("2020-01-02", {10, 11, 9, 10, 100}, decisions).find("is not after the previous bar's"),
            std::string::npos);
  EXPECT_NE(symbol.add("2020-01-03", {10, 9, 11, 10, 100}, decisions), "");  // high below low
  EXPECT_EQ(symbol.add("2020-01-03", {10, 11, 9, 10, 100}, decisions), "");
  EXPECT_TRUE(decisions.empty());
}

TEST(Live, EveryModelFeaturesLookbackIsItsFirstBarWithAValue) {
  for (const gt::ml::FeatureInfo& f : gt::ml::feature_catalog())
    for (const gt::Bars& bars : all_files()) {
      const std::vector<std::string> one = {f.name};
      EXPECT_EQ(gt::ml::compute_features(bars, one).first_defined, gt::ml::features_lookback(one))
          << f.name << " on " << bars.symbol;
    }
}

}  // namespace
