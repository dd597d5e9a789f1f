// The rules' compiled grid engine against the reference engine (docs/SEMANTICS.md "Rules",
// "Ranking"): every metric of every combination, for rules that take each of its routes (tables
// shared across the grid, crossings by the crossover route, series with gaps, entries and exits on
// one bar, short rules under long-only options), on real data, whatever the threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <thread>

#include "engine_agreement.hpp"
#include "gt/data.hpp"
#include "gt/grid.hpp"
#include "gt/optimize.hpp"
#include "gt/rules.hpp"

namespace {

const gt::Bars& orcl() {
  static const gt::Bars bars = gt::load_csv(GT_DATA_DIR "/orcl-1995-2014.csv");
  return bars;
}

std::shared_ptr<const gt::Strategy> strategy_file(const char* name) {
  return gt::rules::compile(gt::rules::read_strategy_file(std::string(GT_SOURCE_DIR "/strategies/") + name));
}

gt::rules::RuleTexts rules(std::string entry, std::string exit, std::vector<gt::ParamSpec> params) {
  gt::rules::RuleTexts r;
  r.entry = std::move(entry);
  r.exit = std::move(exit);
  r.params = std::move(params);
  return r;
}

gt::ParamSpec int_param(const char* name) {
  return {name, gt::ParamType::kInt, 1, 1000, 10, ""};
}
gt::ParamSpec float_param(const char* name) {
  return {name, gt::ParamType::kFloat, -1e9, 1e9, 0, ""};
}

void expect_rules_engine_agrees(const gt::Bars& bars, const gt::Strategy& s, const std::vector<std::string>& grid,
                                const gt::ExecutionOptions& options = {}) {
  gt::testing::expect_engines_agree(bars, gt::parse_grid(s, grid, std::nullopt, {}), options, "rules compiled");
}

TEST(RulesEngine, TheCrossoverEnginesServeCrossoverRulesByWhatTheRulesAre) {
  EXPECT_EQ(strategy_file("ma_cross.yaml")->grid_engine, gt::GridEngine::kMaCross);
  EXPECT_EQ(gt::find_strategy("ma_cross").grid_engine, gt::GridEngine::kMaCross);
  // The same crossover with another name and in three lines: still the crossover engine's.
  auto three_lines = gt::rules::read_strategy_file(GT_SOURCE_DIR "/strategies/ma_cross.yaml");
  three_lines.name = "my_cross";
  three_lines.short_entry = three_lines.short_exit = "";
  EXPECT_EQ(gt::rules::compile(three_lines)->grid_engine, gt::GridEngine::kMaCross);
  // Its parameters in another order, or a type the engines lack: the rules engine's.
  auto reordered = three_lines;
  std::swap(reordered.params[0], reordered.params[2]);
  EXPECT_EQ(gt::rules::compile(reordered)->grid_engine, gt::GridEngine::kRules);
  auto dema = three_lines;
  dema.params[2].max = 3;
  EXPECT_EQ(gt::rules::compile(dema)->grid_engine, gt::GridEngine::kRules);
  EXPECT_EQ(strategy_file("trend_rsi.yaml")->grid_engine, gt::GridEngine::kRules);
}

TEST(RulesEngine, TheSeedsCrossoverOnTheRulesEngineGivesTheCrossoverEnginesMetricsExactly) {
  // ma_type first: not the crossover engines' parameter order, so the rules engine runs it.
  auto texts = gt::rules::read_strategy_file(GT_SOURCE_DIR "/strategies/ma_cross.yaml");
  std::rotate(texts.params.begin(), texts.params.begin() + 2, texts.params.begin() + 3);
  const auto file = gt::rules::compile(texts);
  ASSERT_EQ(file->params[0].name, "ma_type");
  const std::vector<std::string> axes = {"fast=5:19", "slow=20:49", "ma_type=0:2", "volume_filter=false,true"};
  const gt::Grid rules_grid = gt::parse_grid(*file, axes, std::nullopt, {});
  const gt::Grid builtin_grid = gt::parse_grid(gt::find_strategy("ma_cross"), axes, std::nullopt, {});
  for (const gt::Fill fill : {gt::Fill::kNextOpen, gt::Fill::kClose}) {
    gt::ExecutionOptions options;
    options.fill = fill;
    options.commission = 0.001;
    const auto a = gt::make_evaluator(orcl(), rules_grid, options);
    const auto b = gt::make_evaluator(orcl(), builtin_grid, options);
    ASSERT_EQ(a->name(), "rules compiled");
    ASSERT_EQ(b->name(), "ma_cross event-driven");
    const std::size_t stride = file->params.size();  // the four of the rules, then the exits (all 0)
    std::vector<double> params(rules_grid.size() * stride), builtin_params(rules_grid.size() * stride);
    for (std::uint64_t i = 0; i < rules_grid.size(); ++i) {
      const auto mine = std::span(params).subspan(i * stride, stride);
      rules_grid.decode(i, mine);
      const auto theirs = std::span(builtin_params).subspan(i * stride, stride);
      std::copy(mine.begin(), mine.end(), theirs.begin());
      const double order[] = {mine[1], mine[2], mine[0], mine[3]};  // fast, slow, ma_type, volume_filter
      std::copy(std::begin(order), std::end(order), theirs.begin());
    }
    std::vector<gt::Metrics> x(rules_grid.size()), y(rules_grid.size());
    a->evaluate(params, stride, x);
    b->evaluate(builtin_params, stride, y);
    for (std::size_t i = 0; i < x.size(); ++i) {
      EXPECT_EQ(x[i].trades, y[i].trades) << i;
      EXPECT_EQ(x[i].sharpe, y[i].sharpe) << i;
      EXPECT_EQ(x[i].final_equity, y[i].final_equity) << i;
      EXPECT_EQ(x[i].max_drawdown, y[i].max_drawdown) << i;
    }
    expect_rules_engine_agrees(orcl(), *file, axes, options);
  }
}

TEST(RulesEngine, ARuleStrategyNoneOfTheBuiltInsIsAgreesOnEveryDataFile) {
  const auto file = strategy_file("trend_rsi.yaml");
  const std::vector<std::string> axes = {"fast=5:25:4", "slow=20:80:12", "entry_rsi=50:80:15", "exit_rsi=60:90:10"};
  for (const char* name : {"orcl-1995-2014.csv", "yhoo-1996-2014.csv", "es-2006-5min.csv"}) {
    const gt::Bars bars = gt::load_csv(std::string(GT_DATA_DIR "/") + name);
    gt::ExecutionOptions options;
    options.commission = 0.0005;
    options.slippage_bps = 3;
    expect_rules_engine_agrees(bars, *file, axes, options);
    options.fill = gt::Fill::kClose;
    expect_rules_engine_agrees(bars, *file, axes, options);
  }
}

// docs/SEMANTICS.md "Exits by price and time": every exit axis, alone and together, with risk
// sizing among them, on both fills and every data file: the engines' walk over the entries and
// their price-path records against the reference engine's bar-by-bar account.
TEST(RulesEngine, ExitsByPriceAndTimeAgreeWithTheReferenceOnEveryDataFile) {
  const auto file = strategy_file("trend_rsi.yaml");
  const std::vector<std::string> axes = {"fast=5,12",
                                         "slow=30,60",
                                         "entry_rsi=60,75",
                                         "exit_rsi=80",
                                         "stop_loss=0.02,0.05",
                                         "take_profit=0,0.04,0.1",
                                         "trailing_stop=0,0.03",
                                         "max_bars=0,4,25",
                                         "risk=0,0.01"};
  const std::vector<std::string> crossover_axes = {
      "fast=5,12",     "slow=30", "stop_loss=0,0.03", "take_profit=0,0.06", "trailing_stop=0,0.04",
      "max_bars=0,10", "risk=0"};
  for (const char* name : {"orcl-1995-2014.csv", "yhoo-1996-2014.csv", "es-2006-5min.csv"}) {
    const gt::Bars bars = gt::load_csv(std::string(GT_DATA_DIR "/") + name);
    for (const gt::Fill fill : {gt::Fill::kNextOpen, gt::Fill::kClose}) {
      gt::ExecutionOptions options;
      options.fill = fill;
      options.commission = 0.0005;
      options.slippage_bps = 3;
      expect_rules_engine_agrees(bars, *file, axes, options);
      gt::testing::expect_engines_agree(bars,
                                        gt::parse_grid(gt::find_strategy("ma_cross"), crossover_axes, std::nullopt, {}),
                                        options, "ma_cross event-driven");
    }
  }
}

// docs/SEMANTICS.md "Walk-forward": a window of the bars (indicators warmed by the bars before it,
// the rules acting from its first close, an open position closed at its last close, metrics over
// its bars) on the grid engines and the reference engine alike.
TEST(RulesEngine, WindowsOfTheBarsAgreeWithTheReference) {
  const auto file = strategy_file("trend_rsi.yaml");
  for (const char* name : {"orcl-1995-2014.csv", "es-2006-5min.csv"}) {
    const gt::Bars bars = gt::load_csv(std::string(GT_DATA_DIR "/") + name);
    for (const gt::Fill fill : {gt::Fill::kNextOpen, gt::Fill::kClose}) {
      gt::ExecutionOptions options;
      options.fill = fill;
      options.commission = 0.0005;
      options.first_bar = bars.size() / 2;
      options.close_at_end = true;
      expect_rules_engine_agrees(
          bars, *file,
          {"fast=5,12", "slow=30,60", "entry_rsi=75", "exit_rsi=80,90", "stop_loss=0,0.03", "max_bars=0,9"}, options);
      gt::testing::expect_engines_agree(
          bars,
          gt::parse_grid(gt::find_strategy("ma_cross"), {"fast=5:12:7", "slow=20:50:10", "take_profit=0,0.05"},
                         std::nullopt, {}),
          options, "ma_cross event-driven");
    }
  }
}

TEST(RulesEngine, NotOrAndConditionsReadAsTheReferenceReadsThem) {
  const auto s = gt::rules::compile(rules("not (rsi(close, n) > level) and (close > sma(close, m) or volume > obv())",
                                          "not (close >= close[1]) or rsi(close, n) > 100 - level",
                                          {int_param("n"), int_param("m"), float_param("level")}));
  expect_rules_engine_agrees(orcl(), *s, {"n=5:25:10", "m=10:50:20", "level=30:70:20"});
}

TEST(RulesEngine, AnEntryAndAnExitOnOneBarTakeTheEntryWhenFlatAndTheExitWhenLong) {
  // Both rules hold on many bars: the position alternates there, bar by bar.
  const auto s = gt::rules::compile(
      rules("close > close[k]", "close > close[j] or close < close[1]", {int_param("k"), int_param("j")}));
  expect_rules_engine_agrees(orcl(), *s, {"k=1:4", "j=1:4"});
}

TEST(RulesEngine, CrossingsOfSeriesWithGapsTakeTheGeneralRoute) {
  gt::Bars bars = gt::last_bars(orcl(), 1500);
  std::vector<double> sentiment(bars.size());
  for (std::size_t t = 0; t < bars.size(); ++t)
    sentiment[t] = t % 97 < 5 ? std::numeric_limits<double>::quiet_NaN() : std::sin(0.05 * static_cast<double>(t));
  bars = gt::with_series(std::move(bars), "sentiment", sentiment);
  auto r = rules("cross_above(sentiment, level) and close > highest(high, n)[1] * 0.9",
                 "cross_below(sentiment, -level) or cross_below(close, lowest(low, n)[1])",
                 {float_param("level"), int_param("n")});
  r.series = {"sentiment"};
  const auto s = gt::rules::compile(r);
  expect_rules_engine_agrees(bars, *s, {"level=-0.5:0.5:0.25", "n=5:25:10"});
}

TEST(RulesEngine, ShortRulesUnderLongOnlyOptionsLeaveEntriesWhereShortEntryHolds) {
  auto r = rules("cross_above(ema(close, fast), sma(close, slow))", "cross_below(ema(close, fast), sma(close, slow))",
                 {int_param("fast"), int_param("slow")});
  r.short_entry = "rsi(close, 14) > 60";
  r.short_exit = "rsi(close, 14) < 40";
  const auto s = gt::rules::compile(r);
  expect_rules_engine_agrees(orcl(), *s, {"fast=3:15:3", "slow=20:60:10"});
}

TEST(RulesEngine, ThreadsSharingTheTablesGetWhatOneThreadGets) {
  const auto file = strategy_file("trend_rsi.yaml");
  const gt::Grid grid =
      gt::parse_grid(*file, {"fast=5:25:2", "slow=30:90:6", "entry_rsi=50:80:10", "exit_rsi=80"}, std::nullopt, {});
  const std::size_t stride = file->params.size();
  std::vector<double> params(grid.size() * stride);
  for (std::uint64_t i = 0; i < grid.size(); ++i) grid.decode(i, std::span(params).subspan(i * stride, stride));
  const auto alone = gt::make_evaluator(orcl(), grid, {});
  std::vector<gt::Metrics> expected(grid.size()), shared(grid.size());
  alone->evaluate(params, stride, expected);
  const auto together = gt::make_evaluator(orcl(), grid, {});
  const std::size_t half = grid.size() / 2;
  std::thread other(
      [&] { together->evaluate(std::span(params).first(half * stride), stride, std::span(shared).first(half)); });
  together->evaluate(std::span(params).subspan(half * stride), stride, std::span(shared).subspan(half));
  other.join();
  for (std::size_t i = 0; i < shared.size(); ++i) {
    EXPECT_EQ(shared[i].sharpe, expected[i].sharpe) << i;
    EXPECT_EQ(shared[i].trades, expected[i].trades) << i;
  }
}

TEST(RulesEngine, ShortSellingAndPartialSizingStayOnTheReferenceEngine) {
  const auto file = strategy_file("trend_rsi.yaml");
  const gt::Grid grid = gt::parse_grid(*file, {"fast=5:9"}, std::nullopt, {});
  gt::ExecutionOptions shorts;
  shorts.allow_short = true;
  EXPECT_EQ(gt::make_evaluator(orcl(), grid, shorts)->name(), "reference");
  gt::ExecutionOptions half;
  half.size = 0.5;
  EXPECT_EQ(gt::make_evaluator(orcl(), grid, half)->name(), "reference");
}

}  // namespace
