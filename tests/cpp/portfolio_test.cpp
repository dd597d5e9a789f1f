// Portfolio studies (docs/SEMANTICS.md "Portfolios"): the study's evaluator (a crossover's signals
// from each symbol's crossing masks; the timestamps where nothing can change only marked to market)
// against the portfolio engine stepping every timestamp in full, for every combination of a grid:
// every metric within 1e-9 relative, trade counts and exposure exactly. A time exit too far out to
// ever apply (max_bars = 10^8) keeps every timestamp on the full step without changing a fill.
#include "gt/portfolio.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine_agreement.hpp"
#include "gt/data.hpp"
#include "gt/grid.hpp"
#include "gt/optimize.hpp"

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

}  // namespace
