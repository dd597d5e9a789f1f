// The execution model and metrics of SPEC §3-4, pinned by small cases computed by hand.
#include "gt/backtest.hpp"

#include <gtest/gtest.h>

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
