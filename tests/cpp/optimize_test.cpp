// The grid engine against the reference engine (docs/SEMANTICS.md "Ranking"): every metric of every combination,
// whatever the thread count, chunking or instruction set; and grids that must fail up front.
#include "gt/optimize.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <random>
#include <string>
#include <utility>

#include "../../src/optimize/cross_masks.hpp"
#include "../../src/optimize/trade_lanes.hpp"
#include "engine_agreement.hpp"
#include "gt/data.hpp"
#include "gt/error.hpp"
#include "gt/gpu.hpp"
#include "gt/grid.hpp"
#include "gt/signal_rules.hpp"
#include "require.hpp"

namespace {

const gt::Bars& orcl() {
  static const gt::Bars bars = gt::load_csv(GT_DATA_DIR "/orcl-1995-2014.csv");
  return bars;
}

const gt::Strategy& ma_cross() {
  return gt::find_strategy("ma_cross");
}

gt::Grid seed_grid() {
  return gt::parse_grid(ma_cross(), {"fast=5:19", "slow=20:49", "ma_type=0:2", "volume_filter=false,true"},
                        std::nullopt, {});
}

// Every metric of every combination of `grid`, the ma_cross engine against the reference engine.
void expect_engines_agree(const gt::Bars& bars, const gt::Grid& grid, const gt::ExecutionOptions& options) {
  gt::testing::expect_engines_agree(bars, grid, options, "ma_cross event-driven");
}

TEST(GridEngine, SeedGridEqualsTheReferenceEngine) {
  expect_engines_agree(orcl(), seed_grid(), gt::ExecutionOptions{});
}

TEST(GridEngine, CostsAndCloseFillsEqualTheReferenceEngine) {
  gt::ExecutionOptions options;
  options.commission = 0.001;
  options.slippage_bps = 5;
  options.fill = gt::Fill::kClose;
  const auto grid = gt::parse_grid(
      ma_cross(), {"fast=3,8,13", "slow=21,34,55,89", "ma_type=0:2", "volume_filter=false,true"}, std::nullopt, {});
  expect_engines_agree(orcl(), grid, options);
  options.fill = gt::Fill::kNextOpen;
  expect_engines_agree(gt::load_csv(GT_DATA_DIR "/es-2006-5min.csv"), grid, options);
}

// `count` daily bars with the closes `close_at(i)`: the open `open_below` under the close, high and
// low `half_range` either side of it, volume 5,000 every third bar and 1,000 otherwise.
template <class CloseAt>
gt::Bars daily_bars(std::string symbol, std::size_t count, double open_below, double half_range, CloseAt close_at) {
  gt::Bars b;
  b.symbol = std::move(symbol);
  for (std::size_t i = 0; i < count; ++i) {
    const double close = close_at(i);
    b.time.push_back(86400LL * static_cast<std::int64_t>(i + 1));
    b.open.push_back(close - open_below);
    b.close.push_back(close);
    b.high.push_back(close + half_range);
    b.low.push_back(close - half_range);
    b.volume.push_back(i % 3 ? 1000.0 : 5000.0);
  }
  return b;
}

// Closes that zigzag around a slow rise, so that a 2-bar average crosses a 3- or 4-bar one on
// most bars: words of 64 bars holding far more than the 4 (scalar) or 16 (AVX-512) flips that the
// flip extraction stores without a loop.
gt::Bars zigzag(std::size_t count) {
  return daily_bars("zigzag", count, 0.5, 1.0,
                    [](std::size_t i) { return 100.0 + 0.01 * static_cast<double>(i) + (i % 2 ? 3.0 : 0.0); });
}

// The reference engine's metrics of `grid`'s first combination (every parameter of the strategy,
// its exits included).
gt::Metrics reference_first(const gt::Bars& bars, const gt::Grid& grid, const gt::ExecutionOptions& options) {
  std::vector<double> first(grid.base().size());
  grid.decode(0, first);
  std::vector<gt::Metrics> one(1);
  gt::make_reference_evaluator(bars, grid, options)->evaluate(first, first.size(), one);
  return one[0];
}

TEST(GridEngine, PositionsFlippingOnMostBarsEqualTheReferenceEngine) {
  const auto bars = zigzag(640);
  const auto grid =
      gt::parse_grid(ma_cross(), {"fast=2", "slow=3:4", "ma_type=0:2", "volume_filter=false,true"}, std::nullopt, {});
  EXPECT_GT(reference_first(bars, grid, gt::ExecutionOptions{}).trades, 200);  // fast 2, slow 3: > 40 flips a word
  expect_engines_agree(bars, grid, gt::ExecutionOptions{});
  gt::detail::force_trade_lanes(false);
  expect_engines_agree(bars, grid, gt::ExecutionOptions{});
  gt::detail::force_trade_lanes(true);
}

// Closes whose averages the float pass cannot tell apart: a flat stretch (averages equal but for
// the running sums' residues, which the tie band absorbs), then a zigzag of 1e-7 of the price
// (averages apart by more than the tie band but less than float precision: every bar settled in
// double precision), then ordinary swings.
gt::Bars near_ties(std::size_t count) {
  return daily_bars("near-ties", count, 0.0, 0.5, [](std::size_t i) {
    double close = 100.0;
    if (i >= 200 && i < 600) close += (i % 2 ? 1e-5 : -1e-5) + 2e-7 * static_cast<double>(i % 37);
    if (i >= 600) close += 3.0 * std::sin(static_cast<double>(i) / 9.0);
    return close;
  });
}

TEST(GridEngine, EveryInstructionSetGivesTheSameCrossings) {
  const auto near = near_ties(900);
  const auto near_grid =
      gt::parse_grid(ma_cross(), {"fast=2:4", "slow=5:9", "ma_type=0:2", "volume_filter=false,true"}, std::nullopt, {});
  // Averages whose first values lie past the first 64 bars, on a stride's first bar (65) or inside
  // one: the doubles settled come from resume points in the lanes as well as in the scalar prefix.
  const auto long_grid = gt::parse_grid(
      ma_cross(), {"fast=60:66", "slow=127:131", "ma_type=0:2", "volume_filter=false"}, std::nullopt, {});
  // One slow average: no two pairs share a fast one, whose bounds are then never kept.
  const auto lone_slow_grid =
      gt::parse_grid(ma_cross(), {"fast=2:6", "slow=9", "ma_type=0:2", "volume_filter=false,true"}, std::nullopt, {});
  gt::ExecutionOptions close_fills;
  close_fills.fill = gt::Fill::kClose;
  // The zigzag alone trades (fast 2, slow 5): most crossings are decided in double precision.
  EXPECT_GT(reference_first(near_ties(600), near_grid, close_fills).trades, 50);
  for (const char* isa : {"avx2", "portable", "avx512"}) {
    if (!gt::detail::force_cross_events_isa(isa)) continue;  // this CPU lacks it
    SCOPED_TRACE(isa);
    expect_engines_agree(gt::load_csv(GT_DATA_DIR "/yhoo-1996-2014.csv"), seed_grid(), gt::ExecutionOptions{});
    expect_engines_agree(near, near_grid, close_fills);
    expect_engines_agree(near, long_grid, close_fills);
    expect_engines_agree(near, lone_slow_grid, close_fills);
  }
}

// Every metric of every valid combination of `grid` from the grid engine, with the AVX-512 trade
// lanes on or off.
std::vector<gt::Metrics> grid_engine_metrics(const gt::Bars& bars, const gt::Grid& grid,
                                             const gt::ExecutionOptions& options, bool lanes) {
  gt::detail::force_trade_lanes(lanes);
  const auto engine = gt::make_evaluator(bars, grid, options);
  const std::size_t stride = grid.base().size();
  std::vector<double> params, combo(stride);
  for (std::uint64_t i = 0; i < grid.size(); ++i) {
    grid.decode(i, combo);
    if (grid.is_valid(combo)) params.insert(params.end(), combo.begin(), combo.end());
  }
  std::vector<gt::Metrics> out(params.size() / stride);
  engine->evaluate(params, stride, out);
  gt::detail::force_trade_lanes(true);
  return out;
}

// The lanes repeat the scalar account's arithmetic in its order, so they must give the same
// doubles, not merely close ones; only CAGR's power (and calmar, CAGR over the drawdown) comes
// from a vector pow where libmvec is linked, within a few ulps of std::pow. Returns how many
// combinations were compared.
std::size_t expect_lanes_equal_scalar(const gt::Bars& bars, const gt::Grid& grid, const gt::ExecutionOptions& options) {
  const auto lanes = grid_engine_metrics(bars, grid, options, true);
  const auto scalar = grid_engine_metrics(bars, grid, options, false);
  EXPECT_EQ(lanes.size(), scalar.size());
  for (std::size_t i = 0; i < std::min(lanes.size(), scalar.size()); ++i)
    for (std::size_t m = 0; m < gt::metric_names().size(); ++m) {
      const double a = gt::metric_value(lanes[i], m), b = gt::metric_value(scalar[i], m);
      const std::string& name = gt::metric_names()[m];
      if (name == "cagr" || name == "calmar") {  // the power within 1e-15, divided by the drawdown for calmar
        const double scale = name == "cagr" ? 1.0 : 1.0 / scalar[i].max_drawdown;
        EXPECT_LE(std::fabs(a - b), 1e-15 * scale * (1.0 + std::fabs(scalar[i].cagr)))
            << name << " of combination " << i;
      } else if (!(std::isnan(a) && std::isnan(b))) {
        EXPECT_EQ(a, b) << name << " of combination " << i;
      }
    }
  return lanes.size();
}

// Partial batches (grids of 1 and 2,700 % 8 combinations), trades still open at the end, costs,
// close fills and 5-minute bars included.
TEST(GridEngine, TradeLanesBookExactlyWhatTheScalarAccountBooks) {
  if (!gt::detail::force_trade_lanes(true)) GT_SKIP_OR_FAIL("this CPU has no AVX-512 trade lanes");
  gt::ExecutionOptions costs;
  costs.commission = 0.001;
  costs.slippage_bps = 5;
  gt::ExecutionOptions close_fills = costs;
  close_fills.fill = gt::Fill::kClose;
  EXPECT_EQ(expect_lanes_equal_scalar(orcl(), seed_grid(), gt::ExecutionOptions{}), 2700);
  EXPECT_EQ(expect_lanes_equal_scalar(orcl(), seed_grid(), costs), 2700);
  EXPECT_EQ(expect_lanes_equal_scalar(orcl(), seed_grid(), close_fills), 2700);
  EXPECT_EQ(expect_lanes_equal_scalar(gt::load_csv(GT_DATA_DIR "/es-2006-5min.csv"), seed_grid(), costs), 2700);
  const auto one = gt::parse_grid(ma_cross(), {"fast=7", "slow=30", "ma_type=1"}, std::nullopt, {});
  EXPECT_EQ(expect_lanes_equal_scalar(orcl(), one, gt::ExecutionOptions{}), 1);
}

TEST(GridEngine, ShortsAndFractionalSizeUseTheReferencePath) {
  gt::ExecutionOptions options;
  options.allow_short = true;
  EXPECT_EQ(gt::make_evaluator(orcl(), seed_grid(), options)->name(), "reference");
  options.allow_short = false;
  options.size = 0.5;
  EXPECT_EQ(gt::make_evaluator(orcl(), seed_grid(), options)->name(), "reference");
}

// Collects the CSV text of a run.
class StringSink : public gt::CsvResultSink {
 public:
  StringSink(const gt::Grid& grid, const std::vector<gt::Bars>& symbols)
      : gt::CsvResultSink(grid, gt::symbol_names(symbols), [this](std::string_view t) { text += t; }) {}
  std::string text;
};

TEST(Optimize, ResultsAreIdenticalForAnyThreadCount) {
  const std::vector<gt::Bars> symbols = {orcl(), gt::load_csv(GT_DATA_DIR "/yhoo-1996-2014.csv")};
  const auto grid = gt::parse_grid(ma_cross(), {"fast=5:30", "slow=10:60:5", "ma_type=0:2"}, std::nullopt, {});
  std::string first;
  for (int threads : {1, 2, 5}) {
    gt::OptimizeOptions opt;
    opt.threads = threads;
    StringSink sink(grid, symbols);
    const auto result = gt::optimize(symbols, grid, gt::ExecutionOptions{}, opt, &sink);
    EXPECT_EQ(result.invalid, 2 * (grid.size() - result.valid / 2));
    if (first.empty()) first = sink.text;
    EXPECT_EQ(sink.text, first) << threads << " threads";
  }
}

TEST(Optimize, InvalidCombinationsAreSkippedAndCountedAndTopKIsRanked) {
  const auto grid = gt::parse_grid(ma_cross(), {"fast=10:40:10", "slow=20:40:10"}, std::nullopt, {});
  gt::OptimizeOptions opt;
  opt.top = 3;
  const auto r = gt::optimize({orcl()}, grid, gt::ExecutionOptions{}, opt);
  EXPECT_EQ(r.combinations, 12u);  // fast 10,20,30,40 x slow 20,30,40
  EXPECT_EQ(r.valid, 6u);          // (10,20) (10,30) (10,40) (20,30) (20,40) (30,40)
  EXPECT_EQ(r.invalid, 6u);
  ASSERT_EQ(r.top[0].size(), 3u);
  EXPECT_GE(r.top[0][0].metrics.sharpe, r.top[0][1].metrics.sharpe);
  EXPECT_GE(r.top[0][1].metrics.sharpe, r.top[0][2].metrics.sharpe);
}

TEST(Optimize, TiesRankByParameterOrder) {
  gt::RankedCombination a{0, 7, {}, {}}, b{0, 3, {}, {}};
  a.metrics.sharpe = b.metrics.sharpe = 1.5;
  EXPECT_TRUE(gt::ranks_before(b, a, "sharpe"));
  EXPECT_FALSE(gt::ranks_before(a, b, "sharpe"));
  a.metrics.max_drawdown = 0.1;
  b.metrics.max_drawdown = 0.2;
  EXPECT_TRUE(gt::ranks_before(a, b, "max_drawdown"));  // lower is better
  gt::OptimizeOptions unknown_metric;
  unknown_metric.metric = "nope";
  EXPECT_THROW(gt::optimize({orcl()}, seed_grid(), gt::ExecutionOptions{}, unknown_metric), gt::ParamError);
}

std::string grid_error(const std::vector<std::string>& specs) {
  try {
    gt::parse_grid(ma_cross(), specs, std::nullopt, {});
  } catch (const gt::ParamError& e) {
    return e.what();
  }
  return "no error";
}

TEST(Grid, BadGridsFailBeforeAnyWork) {
  EXPECT_EQ(
      grid_error({"speed=1:3"}),
      "strategy 'ma_cross' has no parameter 'speed' (its parameters: fast, slow, ma_type, volume_filter, stop_loss, "
      "take_profit, trailing_stop, max_bars, risk)");
  EXPECT_EQ(grid_error({"fast=9:5"}), "grid fast=9:5: empty range: 9 is above 5");
  EXPECT_EQ(grid_error({"fast=5:9:0"}), "grid fast=5:9:0: step must be > 0 (got 0)");
  EXPECT_EQ(grid_error({"fast=5.5:9"}), "fast = '5.5' is not an integer");
  EXPECT_EQ(grid_error({"volume_filter=yes,maybe"}), "volume_filter = 'maybe' is not a bool (allowed: true, false)");
  EXPECT_EQ(grid_error({"ma_type=0:5"}), "grid ma_type=0:5: 3 is out of range (allowed: 0 to 2)");
  EXPECT_EQ(grid_error({"fast=2:3", "fast=4"}), "grid: parameter 'fast' is given twice");
  try {
    gt::parse_grid(gt::find_strategy("rsi_reversion"), {"period=2:100000", "lower=0:100:0.01", "upper=0:100:0.01"},
                   std::nullopt, {});
    FAIL() << "a grid over 2^40 was accepted";
  } catch (const gt::ParamError& e) {
    EXPECT_STREQ(e.what(), "the grid has more than 2^40 combinations (limit 1099511627776); split the study");
  }
}

TEST(Grid, CombinationOrderFollowsTheSchemaWhateverTheFlagOrder) {
  const auto grid =
      gt::parse_grid(ma_cross(), {"volume_filter=false,true", "fast=5,6"}, std::nullopt, {{"slow", "40"}});
  ASSERT_EQ(grid.size(), 4u);
  std::vector<double> v(9);  // the four of ma_cross, then the exits every strategy has
  grid.decode(1, v);
  EXPECT_EQ(v, (std::vector<double>{5, 40, 0, 1, 0, 0, 0, 0, 0}));
  grid.decode(2, v);
  EXPECT_EQ(v, (std::vector<double>{6, 40, 0, 0, 0, 0, 0, 0, 0}));
}

}  // namespace

namespace {

// Without a GPU (CI, laptops): --device cuda fails before any work, saying why and what to do;
// --device auto runs on the CPU with identical results. With one (the GPU machine), cuda runs and
// ranks as the CPU engine does, every metric within 1e-6 relative; bench/gpu/run.sh times it.
TEST(Device, CudaFailsClearlyWithoutAGpuAndAgreesWithTheCpuWithOne) {
  std::string why;
  gt::OptimizeOptions cuda, automatic, cpu;
  cuda.device = "cuda";
  automatic.device = "auto";
  const auto b = gt::optimize({orcl()}, seed_grid(), gt::ExecutionOptions{}, cpu);
  if (gt::cuda_available(&why)) {
    const auto g = gt::optimize({orcl()}, seed_grid(), gt::ExecutionOptions{}, cuda);
    EXPECT_NE(g.device.find("cuda"), std::string::npos) << g.device;
    ASSERT_EQ(g.top[0].size(), b.top[0].size());
    for (std::size_t i = 0; i < b.top[0].size(); ++i) {
      EXPECT_EQ(g.top[0][i].index, b.top[0][i].index) << "rank " << i;
      for (std::size_t m = 0; m < gt::kMetricCount; ++m) {
        const double x = gt::metric_value(g.top[0][i].metrics, m), y = gt::metric_value(b.top[0][i].metrics, m);
        if (!std::isinf(y)) {
          EXPECT_NEAR(x, y, 1e-6 * std::fabs(y) + 1e-12) << gt::metric_names()[m];
        }
      }
    }
    return;
  }
  try {
    gt::optimize({orcl()}, seed_grid(), gt::ExecutionOptions{}, cuda);
    FAIL() << "expected an error";
  } catch (const gt::Error& e) {
    EXPECT_NE(std::string(e.what()).find("device cuda"), std::string::npos) << e.what();
  }
  const auto a = gt::optimize({orcl()}, seed_grid(), gt::ExecutionOptions{}, automatic);
  EXPECT_EQ(a.device, "cpu");
  ASSERT_EQ(a.top[0].size(), b.top[0].size());
  EXPECT_EQ(a.top[0][0].index, b.top[0][0].index);
  gt::OptimizeOptions bad;
  bad.device = "tpu";
  EXPECT_THROW(gt::optimize({orcl()}, seed_grid(), gt::ExecutionOptions{}, bad), gt::ParamError);
}

}  // namespace

namespace {

// The crossing rule has one definition (signal_rules.hpp); each engine states its inputs its own
// way. The GPU's form ("not above" before, bars before t0 both above and below) and the CPU's
// (at or below before) give the same events as the rule written out bar by bar.
TEST(CrossingRule, EveryEnginesFormGivesTheSameEventsAsTheRuleBarByBar) {
  std::mt19937_64 random(11);
  for (int trial = 0; trial < 2000; ++trial) {
    const std::uint32_t above = static_cast<std::uint32_t>(random()), carry_above = random() & 1;
    const std::uint32_t gpu = gt::cross_event_bits<std::uint32_t>(above, ~above, ~carry_above & 1u);
    const std::uint32_t old_gpu = above & ~((above << 1) | carry_above);
    EXPECT_EQ(gpu, old_gpu);
    for (int j = 0; j < 32; ++j) {
      const bool before = j == 0 ? carry_above == 0 : ((above >> (j - 1)) & 1) == 0;
      EXPECT_EQ(((gpu >> j) & 1) != 0, gt::crosses(((above >> j) & 1) != 0, before)) << j;
    }
  }
}

TEST(CrossingRule, MaCrossDecodesItsParametersInSchemaOrder) {
  const auto& params = gt::find_strategy("ma_cross").params;
  ASSERT_EQ(params.size(), std::size(gt::kMaCrossParamNames) + gt::kExitParamCount);
  for (std::size_t i = 0; i < std::size(gt::kMaCrossParamNames); ++i)
    EXPECT_EQ(params[i].name, gt::kMaCrossParamNames[i]);
  const double values[] = {7, 31, 2, 1};
  const gt::MaCrossParams p = gt::decode_ma_cross(values);
  EXPECT_EQ(p.fast, 7);
  EXPECT_EQ(p.slow, 31);
  EXPECT_EQ(p.ma_type, 2);
  EXPECT_TRUE(p.volume_filter);
  EXPECT_EQ(gt::find_strategy("ma_cross").grid_engine, gt::GridEngine::kMaCross);
  EXPECT_EQ(gt::find_strategy("rsi_reversion").grid_engine, gt::GridEngine::kRules);
}

TEST(CrossingRule, TheModelStrategyDeclaresItsModelFileAndIsNoStub) {
  const auto& model = gt::find_strategy("model");
  EXPECT_EQ(model.model_parameter, "model");
  EXPECT_FALSE(model.signals);
  try {
    model.require_signals();
    FAIL() << "no error";
  } catch (const gt::ParamError& e) {
    EXPECT_NE(std::string(e.what()).find("model=FILE.pt"), std::string::npos) << e.what();
  }
}

}  // namespace
