// Portfolio studies (docs/SEMANTICS.md "Portfolios"): the study's evaluator (a crossover's signals
// from each symbol's crossing masks; the timestamps where nothing can change only marked to market)
// against the portfolio engine stepping every timestamp in full, for every combination of a grid:
// every metric within 1e-9 relative, trade counts and exposure exactly. A time exit too far out to
// ever apply (max_bars = 10^8) keeps every timestamp on the full step without changing a fill.
// Then the study's fast path (combinations side by side in vector lanes) against the reference
// engine run one combination at a time, with each instruction set's kernel: equal to the bit.
#include "gt/portfolio.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "../../src/backtest/portfolio_lanes.hpp"
#include "engine_agreement.hpp"
#include "gt/data.hpp"
#include "gt/grid.hpp"
#include "gt/optimize.hpp"
#include "gt/robustness.hpp"

namespace {

const std::vector<gt::Bars>& symbols() {
  static const std::vector<gt::Bars> all = [] {
    gt::Bars orcl = gt::load_csv(GT_DATA_DIR "/orcl-1995-2014.csv");
    gt::Bars yhoo = gt::load_csv(GT_DATA_DIR "/yhoo-1996-2014.csv");
    // A third symbol with gaps, starting later: days when only some symbols trade.
    gt::Bars gaps;
    gaps.symbol = "gaps";
    for (std::size_t t = 700; t < yhoo.size(); ++t)
      if (t % 7 != 3 && t % 11 != 5) {
        gaps.time.push_back(yhoo.time[t]);
        gaps.open.push_back(yhoo.open[t] * 0.5);
        gaps.high.push_back(yhoo.high[t] * 0.5);
        gaps.low.push_back(yhoo.low[t] * 0.5);
        gaps.close.push_back(yhoo.close[t] * 0.5);
        gaps.volume.push_back(yhoo.volume[t]);
      }
    return std::vector<gt::Bars>{orcl, yhoo, gaps};
  }();
  return all;
}

void expect_study_equals_full_steps(const gt::ExecutionOptions& options, const gt::PortfolioOptions& portfolio,
                                    const std::string& engine) {
  const gt::Strategy& strategy = gt::find_strategy("ma_cross");
  const gt::Grid grid = gt::parse_grid(
      strategy, {"fast=5:25:4", "slow=20:60:8", "ma_type=0:2", "volume_filter=false,true"}, std::nullopt, {});
  const auto study = gt::make_portfolio_evaluator(symbols(), grid, options, portfolio);
  ASSERT_EQ(study->name(), engine);
  const std::size_t stride = grid.base().size();
  std::vector<double> params, combo(stride);
  for (std::uint64_t i = 0; i < grid.size(); ++i) {
    grid.decode(i, combo);
    if (grid.is_valid(combo)) params.insert(params.end(), combo.begin(), combo.end());
  }
  const std::size_t count = params.size() / stride;
  std::vector<gt::Metrics> got(count);
  study->evaluate(params, stride, got);
  std::size_t trades = 0;
  for (std::size_t i = 0; i < count; ++i) {
    gt::ParamValues values(params.begin() + static_cast<std::ptrdiff_t>(i * stride),
                           params.begin() + static_cast<std::ptrdiff_t>((i + 1) * stride));
    const std::string where = strategy.describe(values);
    values[strategy.index_of("max_bars")] = 1e8;
    const gt::Metrics want = gt::run_portfolio(symbols(), strategy, values, options, portfolio).metrics;
    ASSERT_EQ(got[i].trades, want.trades) << where;
    EXPECT_EQ(got[i].exposure, want.exposure) << where;
    gt::testing::expect_close(got[i].total_return, want.total_return, "total_return", where);
    gt::testing::expect_close(got[i].sharpe, want.sharpe, "sharpe", where);
    gt::testing::expect_close(got[i].sortino, want.sortino, "sortino", where);
    gt::testing::expect_close(got[i].max_drawdown, want.max_drawdown, "max_drawdown", where);
    gt::testing::expect_close(got[i].win_rate, want.win_rate, "win_rate", where);
    gt::testing::expect_close(got[i].profit_factor, want.profit_factor, "profit_factor", where);
    gt::testing::expect_close(got[i].final_equity, want.final_equity, "final_equity", where);
    trades += static_cast<std::size_t>(want.trades);
  }
  EXPECT_GT(trades, 50 * count) << "a comparison with few trades proves little";
}

TEST(Portfolio, AStudyAtNextOpenFillsEqualsTheEngineSteppingEveryTimestamp) {
  expect_study_equals_full_steps({}, {}, "portfolio, crossings as masks");
}

TEST(Portfolio, AStudyAtCloseFillsWithCostsEqualsTheEngineSteppingEveryTimestamp) {
  gt::ExecutionOptions options;
  options.fill = gt::Fill::kClose;
  options.commission = 0.001;
  options.slippage_bps = 5;
  expect_study_equals_full_steps(options, {}, "portfolio, crossings as masks");
}

TEST(Portfolio, AStudyWithShortsWeightsAndRebalancingEqualsTheEngineSteppingEveryTimestamp) {
  gt::ExecutionOptions options;
  options.allow_short = true;
  options.size = 0.9;
  expect_study_equals_full_steps(options, {{0.5, 0.2, 0.3}, 21}, "portfolio, crossings as masks");
}

TEST(Portfolio, AStudyWithEntriesCashCannotCoverEqualsTheEngineSteppingEveryTimestamp) {
  // Weights summing to 1 with commission: the last entries of a close find less cash than asked.
  gt::ExecutionOptions options;
  options.commission = 0.002;
  expect_study_equals_full_steps(options, {{0.4, 0.4, 0.2}, 0}, "portfolio, crossings as masks");
}

// The fast path (portfolio_metrics_lanes: combinations side by side in vector lanes, where only the
// rules move positions) against the reference engine (portfolio_metrics), one combination at a
// time: every metric and every block's sums equal to the bit, with each instruction set's kernel,
// for groups of eight lanes and of fewer.
void expect_lanes_equal_reference(const gt::ExecutionOptions& options, const gt::PortfolioOptions& portfolio,
                                  const std::vector<gt::Bars>& bars, std::size_t combinations) {
  const gt::Strategy& strategy = gt::find_strategy("ma_cross");
  const std::size_t k = bars.size();
  const gt::PortfolioLayout layout = gt::portfolio_layout(bars, options);
  ASSERT_TRUE(gt::portfolio_lanes_apply(options, portfolio, k));
  // Each combination's events on every symbol.
  std::vector<gt::SymbolEvents> events;
  for (std::size_t c = 0; c < combinations; ++c) {
    gt::ParamValues values = strategy.defaults();
    values[strategy.index_of("fast")] = static_cast<double>(4 + 3 * (c % 6));
    values[strategy.index_of("slow")] = static_cast<double>(22 + 7 * (c % 5));
    values[strategy.index_of("ma_type")] = static_cast<double>(c % 3);
    values[strategy.index_of("volume_filter")] = static_cast<double>(c % 2);
    for (const gt::Bars& b : bars) {
      std::vector<std::uint8_t> signals(b.size());
      gt::SeriesCache cache;
      strategy.signals(b, values, signals, cache);
      gt::symbol_events(signals, events.emplace_back());
    }
  }
  const std::vector<std::size_t> starts = gt::block_starts(layout.time.size(), 16);
  const auto blocks_of = [&](std::vector<gt::ReturnSums>& sums) {
    sums.assign(16, gt::ReturnSums{});
    return gt::BlockReturns{starts, sums};
  };
  std::vector<gt::Metrics> want(combinations);
  std::vector<std::vector<gt::ReturnSums>> want_sums(combinations);
  std::size_t trades = 0;
  for (std::size_t c = 0; c < combinations; ++c) {
    const gt::BlockReturns blocks = blocks_of(want_sums[c]);
    want[c] = gt::portfolio_metrics(bars, layout, std::span(events).subspan(c * k, k), options, portfolio, &blocks);
    trades += static_cast<std::size_t>(want[c].trades);
  }
  EXPECT_GT(trades, 20 * combinations) << "a comparison with few trades proves little";
  // Each kernel; with the x86-64-v4 one (or the widest here), the timeline in windows of 64 and
  // of 1,000 timestamps as well as in one.
  struct Run {
    const char* isa;
    std::size_t window;
  };
  for (const Run run : {Run{"baseline", 0}, Run{"x86-64-v3", 0}, Run{"x86-64-v4", 0}, Run{"x86-64-v4", 64},
                        Run{"x86-64-v4", 1000}, Run{"x86-64-v3", 1000}}) {
    if (!gt::detail::force_portfolio_lanes_isa(run.isa)) continue;  // this CPU lacks it
    gt::detail::force_portfolio_lanes_window(run.window);
    SCOPED_TRACE(std::string(run.isa) + ", window " + std::to_string(run.window));
    for (std::size_t first = 0; first < combinations; first += gt::kPortfolioLanes) {
      const std::size_t lanes = std::min(gt::kPortfolioLanes, combinations - first);
      std::vector<gt::Metrics> got(lanes);
      std::vector<std::vector<gt::ReturnSums>> got_sums(lanes);
      std::vector<gt::BlockReturns> blocks;
      for (auto& sums : got_sums) blocks.push_back(blocks_of(sums));
      std::vector<const gt::BlockReturns*> block_of;
      for (const auto& b : blocks) block_of.push_back(&b);
      gt::portfolio_metrics_lanes(bars, layout, std::span(events).subspan(first * k, lanes * k), options, portfolio,
                                  block_of, got);
      for (std::size_t l = 0; l < lanes; ++l) {
        SCOPED_TRACE("combination " + std::to_string(first + l));
        for (std::size_t m = 0; m < gt::kMetricCount; ++m)
          EXPECT_EQ(gt::metric_value(got[l], m), gt::metric_value(want[first + l], m)) << gt::metric_names()[m];
        for (std::size_t i = 0; i < 16; ++i) {
          EXPECT_EQ(got_sums[l][i].sum, want_sums[first + l][i].sum) << "block " << i;
          EXPECT_EQ(got_sums[l][i].sum2, want_sums[first + l][i].sum2) << "block " << i;
        }
      }
    }
  }
  gt::detail::force_portfolio_lanes_window(0);
  gt::detail::force_portfolio_lanes_isa("x86-64-v4") || gt::detail::force_portfolio_lanes_isa("x86-64-v3");
}

TEST(PortfolioLanes, NextOpenFillsEqualTheReferenceEngineToTheBit) {
  expect_lanes_equal_reference({}, {}, symbols(), 21);
}

TEST(PortfolioLanes, CloseFillsWithCostsEqualTheReferenceEngineToTheBit) {
  gt::ExecutionOptions options;
  options.fill = gt::Fill::kClose;
  options.commission = 0.001;
  options.slippage_bps = 5;
  expect_lanes_equal_reference(options, {}, symbols(), 13);
}

TEST(PortfolioLanes, ShortsAndWeightsWithAZeroEqualTheReferenceEngineToTheBit) {
  gt::ExecutionOptions options;
  options.allow_short = true;
  options.size = 0.9;
  expect_lanes_equal_reference(options, {{0.6, 0.0, 0.4}, 0}, symbols(), 16);
  options.fill = gt::Fill::kClose;
  expect_lanes_equal_reference(options, {{0.5, 0.2, 0.3}, 0}, symbols(), 9);
}

TEST(PortfolioLanes, EntriesCashCannotCoverEqualTheReferenceEngineToTheBit) {
  gt::ExecutionOptions options;
  options.commission = 0.002;
  expect_lanes_equal_reference(options, {{0.4, 0.4, 0.2}, 0}, symbols(), 11);
}

// A thread's workspace serves studies of any number of symbols in turn: after four symbols, whose
// windows of events are half as long, two over a timeline longer than those windows.
TEST(PortfolioLanes, AStudyOfFewerSymbolsAfterOneOfMoreEqualsTheReferenceEngine) {
  const std::vector<gt::Bars> four = {symbols()[0], symbols()[1], symbols()[2], symbols()[0]};
  expect_lanes_equal_reference({}, {}, four, 3);
  {  // the engine's own windows (the comparison ends with forced ones)
    const gt::PortfolioLayout layout = gt::portfolio_layout(four, {});
    std::vector<gt::SymbolEvents> events(4);
    events[0].add(10, gt::kLongEntry);
    std::vector<gt::Metrics> got(1);
    gt::portfolio_metrics_lanes(four, layout, events, {}, {}, {}, got);
    EXPECT_GT(got[0].exposure, 0.0);  // the one entry held
  }
  // ORCL's and YHOO's first 4,700 bars laid end to end, eight times over: 37,600 timestamps.
  std::vector<gt::Bars> long_bars(2);
  for (std::size_t s = 0; s < 2; ++s) {
    const gt::Bars& from = symbols()[s];
    long_bars[s].symbol = from.symbol;
    for (std::int64_t copy = 0; copy < 8; ++copy)
      for (std::size_t t = 0; t < 4700; ++t) {
        long_bars[s].time.push_back(from.time[0] + (copy * 4700 + static_cast<std::int64_t>(t)) * 86400);
        long_bars[s].open.push_back(from.open[t]);
        long_bars[s].high.push_back(from.high[t]);
        long_bars[s].low.push_back(from.low[t]);
        long_bars[s].close.push_back(from.close[t]);
        long_bars[s].volume.push_back(from.volume[t]);
      }
  }
  expect_lanes_equal_reference({}, {}, long_bars, 3);
}

TEST(PortfolioLanes, ARuinedCombinationIsTheReferenceEnginesRun) {
  // Short both symbols from the second close; the second then rises tenfold: the equity goes below
  // 0 in the lane that holds the shorts, which the reference engine runs instead.
  std::vector<gt::Bars> bars = {symbols()[0], symbols()[0]};
  bars[1].symbol = "soaring";
  for (std::size_t t = 300; t < bars[1].size(); ++t)
    for (auto* price : {&bars[1].open, &bars[1].high, &bars[1].low, &bars[1].close}) (*price)[t] *= 10.0;
  gt::ExecutionOptions options;
  options.allow_short = true;
  options.fill = gt::Fill::kClose;
  const gt::PortfolioLayout layout = gt::portfolio_layout(bars, options);
  std::vector<gt::SymbolEvents> events(4);
  events[0].add(1, gt::kShortEntry);
  events[1].add(1, gt::kShortEntry);
  events[2].add(1, gt::kLongEntry);  // the second combination holds the first symbol long: no ruin
  const gt::Metrics ruined = gt::portfolio_metrics(bars, layout, std::span(events).first(2), options, {});
  const gt::Metrics spared = gt::portfolio_metrics(bars, layout, std::span(events).last(2), options, {});
  ASSERT_EQ(ruined.final_equity, 0.0);
  ASSERT_GT(spared.final_equity, 0.0);
  std::vector<gt::Metrics> got(2);
  gt::portfolio_metrics_lanes(bars, layout, events, options, {}, {}, got);
  EXPECT_EQ(got[0].final_equity, 0.0);
  EXPECT_EQ(got[0].sharpe, ruined.sharpe);
  EXPECT_EQ(got[0].trades, ruined.trades);
  EXPECT_EQ(got[1].final_equity, spared.final_equity);
  EXPECT_EQ(got[1].sharpe, spared.sharpe);
}

}  // namespace
