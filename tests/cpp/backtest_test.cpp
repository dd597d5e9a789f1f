// The execution model and metrics of docs/SEMANTICS.md "Fills and costs" and "Metrics", pinned by small cases computed
// by hand.
#include "gt/backtest.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "gt/error.hpp"
#include "gt/strategy.hpp"

namespace {

using gt::kLongEntry;
using gt::kLongExit;
using gt::kShortEntry;
using gt::kShortExit;

constexpr double kTol = 1e-12;

gt::Bars five_bars() {
  gt::Bars b;
  b.symbol = "hand";
  for (int i = 0; i < 5; ++i) {
    b.time.push_back(86400LL * (i + 1));
    b.open.push_back(10.0 + i);
    b.close.push_back(10.5 + i);
    b.high.push_back(11.0 + i);
    b.low.push_back(9.5 + i);
    b.volume.push_back(1000);
  }
  return b;
}

gt::ExecutionOptions options_with(double cash) {
  gt::ExecutionOptions o;
  o.cash = cash;
  o.periods_per_year = 252;
  return o;
}

TEST(Backtest, NextOpenFillWithCommissionAndSlippage) {
  const auto bars = five_bars();
  const std::vector<std::uint8_t> signals = {kLongEntry, 0, kLongExit, 0, 0};
  auto o = options_with(1000);
  o.commission = 0.01;
  o.slippage_bps = 10;
  const auto r = gt::run_backtest(bars, signals, o);
  // Signal at bar 0's close, filled at bar 1's open, 10 bps worse; the entry commits all equity,
  // commission included.
  const double entry = 11.0 * 1.001;
  const double units = 1000.0 / (entry * 1.01);
  const double exit = 13.0 * 0.999;
  const double cash_after = units * exit - units * exit * 0.01;
  ASSERT_EQ(r.trades.size(), 1u);
  const auto& t = r.trades[0];
  EXPECT_EQ(t.entry_bar, 1u);
  EXPECT_EQ(t.exit_bar, 3u);
  EXPECT_NEAR(t.entry_price, entry, kTol);
  EXPECT_NEAR(t.exit_price, exit, kTol);
  EXPECT_NEAR(t.units, units, kTol);
  EXPECT_NEAR(t.pnl, cash_after - 1000.0, 1e-9);
  EXPECT_NEAR(t.ret, (cash_after - 1000.0) / 1000.0, kTol);
  EXPECT_EQ(t.bars_held, 2u);
  EXPECT_EQ(r.equity[0], 1000.0);
  EXPECT_NEAR(r.equity[1], units * 11.5, 1e-9);
  EXPECT_NEAR(r.equity[2], units * 12.5, 1e-9);
  EXPECT_NEAR(r.equity[3], cash_after, 1e-9);
  EXPECT_NEAR(r.equity[4], cash_after, 1e-9);
  EXPECT_NEAR(r.metrics.total_return, cash_after / 1000.0 - 1.0, kTol);
  EXPECT_EQ(r.metrics.trades, 1);
  EXPECT_EQ(r.metrics.win_rate, 1.0);
  EXPECT_TRUE(std::isinf(r.metrics.profit_factor));
  EXPECT_NEAR(r.metrics.exposure, 2.0 / 5.0, kTol);
}

TEST(Backtest, CloseFillTradesAtTheSignalBarsClose) {
  const auto bars = five_bars();
  const std::vector<std::uint8_t> signals = {0, kLongEntry, 0, kLongExit, 0};
  auto o = options_with(1000);
  o.fill = gt::Fill::kClose;
  const auto r = gt::run_backtest(bars, signals, o);
  ASSERT_EQ(r.trades.size(), 1u);
  EXPECT_EQ(r.trades[0].entry_bar, 1u);
  EXPECT_EQ(r.trades[0].exit_bar, 3u);
  EXPECT_NEAR(r.metrics.total_return, 13.5 / 11.5 - 1.0, kTol);
}

TEST(Backtest, ShortPositionGainsWhenPriceFalls) {
  auto bars = five_bars();
  bars.open = {20, 18, 16, 14, 12};
  bars.close = {19, 17, 15, 13, 11};
  bars.high = {21, 19, 17, 15, 13};
  bars.low = {18, 16, 14, 12, 10};
  const std::vector<std::uint8_t> signals = {kShortEntry, 0, kShortExit, 0, 0};
  auto o = options_with(1000);
  o.allow_short = true;
  const auto r = gt::run_backtest(bars, signals, o);
  const double units = 1000.0 / 18.0;  // sold at bar 1's open
  ASSERT_EQ(r.trades.size(), 1u);
  EXPECT_EQ(r.trades[0].side, -1);
  EXPECT_NEAR(r.equity[1], 1000.0 + units * 18.0 - units * 17.0, 1e-9);
  EXPECT_NEAR(r.trades[0].pnl, units * (18.0 - 14.0), 1e-9);
  EXPECT_NEAR(r.position[2], -units, kTol);
  EXPECT_EQ(r.position[3], 0.0);
}

// A short round trip with 1% commission and 100 bps slippage on both sides, every number worked
// out by hand from docs/SEMANTICS.md "Fills and costs" (cash 1,000; opens 11 and 13):
//   entry sells at 11 x 0.99 = 10.89, units = 1000 / (10.89 x 1.01) = 90.918182727...,
//   proceeds 1000 / 1.01 = 990.0990099, fee 9.9009901, cash 1980.1980198;
//   exit buys at 13 x 1.01 = 13.13, cost 90.918182727 x 13.13 = 1193.7557392, fee 11.9375574,
//   cash 774.5047232; pnl = 90.918182727 x (10.89 - 13.13) - 9.9009901 - 11.9375574 = -225.4952768.
TEST(Backtest, HandComputedShortWithCommissionAndSlippageOnBothSides) {
  const auto bars = five_bars();
  const std::vector<std::uint8_t> signals = {kShortEntry, 0, kShortExit, 0, 0};
  auto o = options_with(1000);
  o.allow_short = true;
  o.commission = 0.01;
  o.slippage_bps = 100;
  const auto r = gt::run_backtest(bars, signals, o);
  ASSERT_EQ(r.trades.size(), 1u);
  const auto& t = r.trades[0];
  EXPECT_EQ(t.side, -1);
  EXPECT_EQ(t.entry_bar, 1u);
  EXPECT_EQ(t.exit_bar, 3u);
  EXPECT_NEAR(t.entry_price, 10.89, 1e-12);
  EXPECT_NEAR(t.exit_price, 13.13, 1e-12);
  EXPECT_NEAR(t.units, 90.918182727, 1e-8);
  EXPECT_NEAR(t.pnl, -225.4952768, 1e-6);
  EXPECT_NEAR(t.ret, -0.2254952768, 1e-9);  // over the 1,000 committed
  EXPECT_NEAR(r.equity[1], 1980.1980198 - 90.918182727 * 11.5, 1e-6);
  EXPECT_NEAR(r.equity[2], 1980.1980198 - 90.918182727 * 12.5, 1e-6);
  EXPECT_NEAR(r.equity[3], 774.5047232, 1e-6);
  EXPECT_NEAR(r.equity[4], 774.5047232, 1e-6);
  EXPECT_NEAR(r.metrics.total_return, -0.2254952768, 1e-9);
  EXPECT_EQ(r.metrics.win_rate, 0.0);
  EXPECT_EQ(r.metrics.profit_factor, 0.0);
}

// Ruin (SEMANTICS.md): a short of 100 units from 10 (cash 2,000) is worth 500 at a close of 15
// and -100 at 21: the account is ruined there, closed at 21 (pnl 100 x (10 - 21) = -1,100), and
// nothing more is traded; the equity stays at 0 and its later returns are 0.
TEST(Backtest, RuinClosesThePositionAndNothingMoreIsTraded) {
  gt::Bars b;
  const double open[] = {10, 10, 16, 20, 20, 20}, close[] = {10, 15, 21, 20, 20, 20};
  for (int i = 0; i < 6; ++i) {
    b.time.push_back(86400LL * (i + 1));
    b.open.push_back(open[i]);
    b.close.push_back(close[i]);
    b.high.push_back(std::max(open[i], close[i]));
    b.low.push_back(std::min(open[i], close[i]));
    b.volume.push_back(1000);
  }
  const std::vector<std::uint8_t> signals = {kShortEntry, 0, 0, kLongEntry | kShortExit, 0, 0};
  auto o = options_with(1000);
  o.allow_short = true;
  const auto r = gt::run_backtest(b, signals, o);
  ASSERT_EQ(r.trades.size(), 1u);
  EXPECT_EQ(r.trades[0].exit_bar, 2u);
  EXPECT_DOUBLE_EQ(r.trades[0].exit_price, 21.0);
  EXPECT_DOUBLE_EQ(r.trades[0].pnl, -1100.0);
  ASSERT_TRUE(r.ruined_at.has_value());
  EXPECT_EQ(*r.ruined_at, 2u);
  EXPECT_EQ(r.equity, (std::vector<double>{1000, 500, 0, 0, 0, 0}));
  EXPECT_EQ(r.position, (std::vector<double>{0, -100, 0, 0, 0, 0}));
  EXPECT_TRUE(gt::is_ruined(r.metrics));
  EXPECT_EQ(r.metrics.total_return, -1.0);
  EXPECT_EQ(r.metrics.cagr, -1.0);
  EXPECT_EQ(r.metrics.max_drawdown, 1.0);
  EXPECT_EQ(r.metrics.final_equity, 0.0);
  EXPECT_NEAR(r.metrics.exposure, 1.0 / 6.0, kTol);
  // Returns 0, -0.5, -1, 0, 0, 0: all finite, their mean -0.25.
  const double mean = -1.5 / 6, var = (0.25 + 1.0 - 6 * mean * mean) / 5;
  EXPECT_NEAR(r.metrics.sharpe, mean / std::sqrt(var) * std::sqrt(252.0), 1e-12);
  EXPECT_EQ(gt::backtest_metrics(b, signals, o, 252).final_equity, 0.0);
}

TEST(Ranking, RuinedCombinationsComeAfterAllOthersWhateverTheirMetric) {
  EXPECT_EQ(gt::compare_for_ranking(2.0, true, -1.0, false, true), 1);
  EXPECT_EQ(gt::compare_for_ranking(-1.0, false, 2.0, true, true), -1);
  EXPECT_EQ(gt::compare_for_ranking(std::nan(""), false, 2.0, true, true), -1);  // NaN, but solvent
  EXPECT_EQ(gt::compare_for_ranking(0.1, false, 0.2, false, false), -1);         // lower drawdown first
  EXPECT_EQ(gt::compare_for_ranking(0.5, true, 0.5, true, true), 0);
}

TEST(Backtest, ShortSignalsAreIgnoredWhenLongOnly) {
  const auto bars = five_bars();
  const std::vector<std::uint8_t> signals = {kShortEntry, 0, kShortExit, 0, 0};
  const auto r = gt::run_backtest(bars, signals, options_with(1000));
  EXPECT_TRUE(r.trades.empty());
  EXPECT_EQ(r.metrics.total_return, 0.0);
  EXPECT_EQ(r.metrics.sharpe, 0.0);  // flat equity: std 0 gives 0
}

TEST(Backtest, CrossBelowReversesALongIntoAShortAndTheOpenTradeIsNotCounted) {
  const auto bars = five_bars();
  const std::vector<std::uint8_t> signals = {kLongEntry | kShortExit, 0, kLongExit | kShortEntry, 0, 0};
  auto o = options_with(1000);
  o.allow_short = true;
  const auto r = gt::run_backtest(bars, signals, o);
  ASSERT_EQ(r.trades.size(), 2u);
  EXPECT_EQ(r.trades[0].side, 1);
  EXPECT_EQ(r.trades[1].side, -1);
  EXPECT_EQ(r.trades[1].entry_bar, 3u);  // same fill as the long's exit
  EXPECT_TRUE(r.trades[1].open);
  EXPECT_EQ(r.trades[1].bars_held, 2u);
  EXPECT_EQ(r.metrics.trades, 1);  // the open short is marked to market, not counted
  const double long_units = 1000.0 / 11.0;
  const double after_long = long_units * 13.0;
  const double short_units = after_long / 13.0;
  EXPECT_NEAR(r.metrics.final_equity, after_long + short_units * 13.0 - short_units * 14.5, 1e-9);
}

TEST(Backtest, FractionalSizeKeepsTheRestInCash) {
  const auto bars = five_bars();
  const std::vector<std::uint8_t> signals = {kLongEntry, 0, 0, 0, 0};
  auto o = options_with(1000);
  o.size = 0.25;
  const auto r = gt::run_backtest(bars, signals, o);
  EXPECT_NEAR(r.equity[4], 750.0 + 250.0 / 11.0 * 14.5, 1e-9);
  EXPECT_EQ(r.metrics.trades, 0);
  EXPECT_TRUE(r.trades[0].open);
}

TEST(Metrics, FormulasOfSpecSection4) {
  // Equity 100 -> [100, 110, 99, 120]: returns 0, 0.1, -0.1, 120/99 - 1.
  const std::vector<double> equity = {100, 110, 99, 120};
  const std::vector<double> position = {0, 1, 1, 1};
  gt::MetricSums s = gt::sums_of_curve(equity, 100, position);
  s.add_trade(10, 0.1);
  s.add_trade(-4, -0.04);
  const auto m = gt::finalize_metrics(s, 252);
  const std::vector<double> r = {0.0, 0.1, -0.1, 120.0 / 99.0 - 1.0};
  const double mean = std::accumulate(r.begin(), r.end(), 0.0) / 4;
  double ss = 0, down = 0;
  for (double x : r) {
    ss += (x - mean) * (x - mean);
    down += x < 0 ? x * x : 0;
  }
  EXPECT_NEAR(m.total_return, 0.2, kTol);
  EXPECT_NEAR(m.cagr, std::pow(1.2, 252.0 / 4.0) - 1.0, 1e-9 * std::pow(1.2, 63.0));
  EXPECT_NEAR(m.sharpe, mean / std::sqrt(ss / 3) * std::sqrt(252.0), kTol);
  EXPECT_NEAR(m.sortino, mean / std::sqrt(down / 4) * std::sqrt(252.0), kTol);
  EXPECT_NEAR(m.max_drawdown, 1.0 - 99.0 / 110.0, kTol);
  EXPECT_NEAR(m.calmar, m.cagr / m.max_drawdown, 1e-9 * std::fabs(m.calmar));
  EXPECT_EQ(m.trades, 2);
  EXPECT_EQ(m.win_rate, 0.5);
  EXPECT_NEAR(m.profit_factor, 2.5, kTol);
  EXPECT_NEAR(m.avg_trade_return, 0.03, kTol);
  EXPECT_NEAR(m.exposure, 0.75, kTol);
}

TEST(Backtest, OptionsOutOfRangeNameTheOption) {
  const auto bars = five_bars();
  const std::vector<std::uint8_t> signals(5, 0);
  auto o = options_with(1000);
  o.commission = -0.1;
  try {
    gt::run_backtest(bars, signals, o);
    FAIL();
  } catch (const gt::ParamError& e) {
    EXPECT_STREQ(e.what(), "commission = -0.1 is out of range (allowed: 0 <= commission < 1)");
  }
  o.commission = 0;
  o.size = 0;
  EXPECT_THROW(gt::run_backtest(bars, signals, o), gt::ParamError);
}

TEST(Strategies, SchemaValidationNamesTheParameterAndItsRange) {
  const auto& s = gt::find_strategy("ma_cross");
  EXPECT_THROW(gt::find_strategy("nope"), gt::ParamError);
  try {
    gt::parse_params(s, {{"fast", "30"}, {"slow", "20"}});
    FAIL();
  } catch (const gt::ParamError& e) {
    EXPECT_STREQ(e.what(), "ma_cross: fast = 30 must be below slow = 20");
  }
  try {
    gt::parse_params(s, {{"ma_type", "5"}});
    FAIL();
  } catch (const gt::ParamError& e) {
    EXPECT_STREQ(e.what(), "ma_cross: ma_type = 5 is out of range (allowed: int 0 to 2)");
  }
  EXPECT_THROW(gt::parse_params(s, {{"speed", "3"}}), gt::ParamError);
  EXPECT_THROW(gt::parse_params(s, {{"volume_filter", "maybe"}}), gt::ParamError);
  EXPECT_THROW(gt::parse_params(s, {{"fast", "2.5"}}), gt::ParamError);
}

}  // namespace

namespace {

TEST(Metrics, EveryNameMapsToItsOwnFieldByIndex) {
  const auto& names = gt::metric_names();
  gt::Metrics m;
  for (std::size_t i = 0; i < names.size(); ++i) gt::set_metric_value(m, i, static_cast<double>(i + 1));
  for (std::size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(gt::metric_index(names[i]), i);
    EXPECT_EQ(gt::metric_value(m, names[i]), static_cast<double>(i + 1)) << names[i];
  }
  EXPECT_EQ(m.sharpe, 3.0);
  EXPECT_EQ(m.trades, 7);
  EXPECT_EQ(m.final_equity, 12.0);
  EXPECT_THROW(gt::metric_index("alpha"), gt::ParamError);
}

}  // namespace

namespace {

gt::Bars bars_from_closes(const std::vector<double>& closes, double wick = 0.5) {
  gt::Bars b;
  b.symbol = "hand";
  for (std::size_t i = 0; i < closes.size(); ++i) {
    b.time.push_back(86400LL * static_cast<long long>(i + 1));
    b.open.push_back(closes[i]);
    b.close.push_back(closes[i]);
    b.high.push_back(closes[i] + wick);
    b.low.push_back(closes[i] - wick);
    b.volume.push_back(1000);
  }
  return b;
}

std::vector<std::uint8_t> signals_of(const char* strategy, const gt::Bars& bars,
                                     const std::vector<std::pair<std::string, std::string>>& params) {
  const gt::Strategy& s = gt::find_strategy(strategy);
  std::vector<std::uint8_t> out(bars.size());
  gt::SeriesCache cache;
  s.signals(bars, gt::parse_params(s, params), out, cache);
  return out;
}

// Closes 10 10 10 12 14 13 11 9 9 10: SMA(2) crosses above SMA(3) at bar 3 (after a tie at bar 2)
// and below it at bar 6 (tests/spec/ma_cross_fills.test works the averages out).
TEST(Signals, MaCrossEntersWhenTheFastAverageCrossesAboveTheSlowOne) {
  const auto s =
      signals_of("ma_cross", bars_from_closes({10, 10, 10, 12, 14, 13, 11, 9, 9, 10}), {{"fast", "2"}, {"slow", "3"}});
  EXPECT_EQ(s[3], kLongEntry | kShortExit);
  EXPECT_EQ(s[6], kLongExit | kShortEntry);
  EXPECT_EQ(s[9], kLongEntry | kShortExit);
  for (std::size_t t : {0, 1, 2, 4, 5, 7, 8}) EXPECT_EQ(s[t], 0) << "bar " << t;
}

// Highs are closes + 0.5. With a channel of 3 bars, bar 4's close 12 is above the highs of bars 1-3
// (at most 10.5): a breakout. A channel that counted bar 4's own high (12.5) would never break out.
TEST(Signals, DonchianBreaksOutAboveThePriorBarsHighsNotItsOwn) {
  const auto s = signals_of("donchian_breakout", bars_from_closes({10, 10, 10, 10, 12, 12, 8, 8}),
                            {{"entry", "3"}, {"exit", "2"}});
  for (std::size_t t = 0; t < 3; ++t) EXPECT_EQ(s[t] & (kLongEntry | kLongExit), 0) << "bar " << t;
  EXPECT_TRUE(s[4] & kLongEntry);
  EXPECT_FALSE(s[5] & kLongEntry);  // 12 is not above bar 4's high 12.5
  EXPECT_TRUE(s[6] & kLongExit);    // 8 below the lows of bars 4-5 (11.5)
  EXPECT_TRUE(s[6] & kShortEntry);  // and below the 3-bar channel's low
}

// Bollinger bands of 3 bars, 2 deviations, over 10 10 8: middle 9.333, population deviation
// 0.943, lower band 7.448. A close of 8 is below the middle but above the lower band: it ends a
// short and enters nothing. Over 10 10 10 10 4 (5 bars, 1.5 deviations: middle 8.8, deviation 2.4,
// lower band 5.2), a close of 4 is below the lower band: a long entry.
TEST(Signals, BbandsReversionEntersOnlyBelowTheLowerBand) {
  const auto between =
      signals_of("bbands_reversion", bars_from_closes({10, 10, 10, 8}), {{"period", "3"}, {"nbdev", "2"}});
  EXPECT_EQ(between[3], kShortExit);
  const auto below =
      signals_of("bbands_reversion", bars_from_closes({10, 10, 10, 10, 10, 4}), {{"period", "5"}, {"nbdev", "1.5"}});
  EXPECT_EQ(below[5], kLongEntry | kShortExit);
}

// RSI(2) of closes rising then falling: 100 after two rises (above 70), 0 after two falls.
TEST(Signals, RsiReversionBuysOversoldAndSellsOverbought) {
  const auto s = signals_of("rsi_reversion", bars_from_closes({10, 11, 12, 11, 10}), {{"period", "2"}});
  EXPECT_EQ(s[2], kLongExit | kShortEntry);
  EXPECT_EQ(s[4], kLongEntry | kShortExit);
}

}  // namespace

namespace {

// docs/SEMANTICS.md "Metrics": the starting equity is the first peak. Bought at bar 0's close with 1% commission, the
// account is worth 1000 / 1.01 at that close: a drawdown of 1 - 1/1.01 before any price moves.
TEST(Metrics, DrawdownCountsFromTheStartingCash) {
  auto o = options_with(1000);
  o.fill = gt::Fill::kClose;
  o.commission = 0.01;
  const auto r = gt::run_backtest(five_bars(), std::vector<std::uint8_t>{kLongEntry, 0, 0, 0, 0}, o);
  EXPECT_NEAR(r.equity[0], 1000 / 1.01, 1e-9);
  EXPECT_NEAR(r.metrics.max_drawdown, 1 - 1 / 1.01, 1e-12);  // the closes only rise after bar 0
}

TEST(Metrics, AFirstCloseBelowTheStartingEquityIsADrawdown) {
  gt::CurveAccumulator curve(1000);
  curve.add(900, true);
  curve.add(950, true);
  EXPECT_DOUBLE_EQ(curve.sums().max_drawdown, 0.1);
}

// The accumulator divides only where a bar could deepen the drawdown; the drawdown must be the
// very double that dividing at every bar gives (docs/SEMANTICS.md "Metrics"), on curves that
// revisit their deepest point to the last bit, creep a few ulps under it or over it, fall to 0
// (ruin) and stay there.
TEST(Metrics, TheDeepestDrawdownIsEveryBarsDivisionToTheLastBit) {
  std::uint64_t state = 7;
  const auto uniform = [&state] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<double>(state >> 11) * 0x1p-53;
  };
  for (int curve_number = 0; curve_number < 2000; ++curve_number) {
    double equity = 1000 * (0.5 + uniform());
    gt::CurveAccumulator curve(equity);
    double peak = equity, deepest = 0;
    for (int bar = 0; bar < 300; ++bar) {
      const double pick = uniform();
      if (pick < 0.3)
        equity = peak * (1.0 - deepest);  // back to the floor, rounded as it may
      else if (pick < 0.5)
        equity = std::nextafter(peak * (1.0 - deepest), pick < 0.4 ? 0.0 : HUGE_VAL);
      else if (pick < 0.51 && curve_number % 10 == 0)
        equity = 0;  // ruin
      else if (equity > 0)
        equity *= 1.0 + 0.02 * (uniform() - 0.5);
      if (equity > peak) peak = equity;
      deepest = std::max(deepest, 1.0 - equity / peak);
      curve.add(equity, true);
      ASSERT_EQ(curve.sums().max_drawdown, deepest) << "curve " << curve_number << " bar " << bar;
    }
  }
}

}  // namespace

TEST(Strategies, TheSeriesCacheKeepsABoundedSetAndDropsTheOldestFirst) {
  gt::SeriesCache cache(3 * 100 * sizeof(double));  // room for three series of 100 values
  int computed = 0;
  const auto series = [&](double v) {
    return [&computed, v] {
      ++computed;
      return gt::SeriesCache::Group{std::vector<double>(100, v)};
    };
  };
  const auto held = cache.get("a", series(1));
  cache.get("b", series(2));
  cache.get("c", series(3));
  cache.get("b", series(2));
  EXPECT_EQ(computed, 3);  // all three kept
  cache.get("d", series(4));
  cache.get("b", series(2));
  EXPECT_EQ(computed, 4);  // "a" dropped, "b" still there
  cache.get("a", series(1));
  EXPECT_EQ(computed, 5);                                // "a" made again
  EXPECT_EQ((*held)[0], std::vector<double>(100, 1.0));  // a holder keeps its series alive
}
