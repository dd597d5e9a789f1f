// docs/SEMANTICS.md "Out-of-sample evidence": the probability of backtest overfitting and the
// deflated Sharpe ratio from the block sums the engines keep, against the contract read plainly
// over every combination's per-bar returns (the reference engine's equity curves).
#include "gt/robustness.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <numeric>
#include <vector>

#include "../../src/optimize/trade_lanes.hpp"
#include "gt/error.hpp"
#include "gt/grid.hpp"
#include "gt/optimize.hpp"
#include "gt/rules.hpp"
#include "gt/strategy.hpp"

namespace {

// Per-bar returns of one ma_cross combination: r_t = E_t / E_{t-1} - 1, E_{-1} the starting cash.
std::vector<double> returns_of(const gt::Bars& bars, int fast, int slow, double stop_loss) {
  const gt::Strategy& s = gt::find_strategy("ma_cross");
  gt::ParamValues values = s.defaults();
  values[s.index_of("fast")] = fast;
  values[s.index_of("slow")] = slow;
  values[s.index_of("stop_loss")] = stop_loss;
  const gt::ExecutionOptions options;
  const auto result = gt::run_strategy(bars, s, values, options);
  std::vector<double> r(result.equity.size());
  double before = options.cash;
  for (std::size_t t = 0; t < r.size(); ++t) {
    r[t] = result.equity[t] / before - 1.0;
    before = result.equity[t];
  }
  return r;
}

double plain_sharpe(const std::vector<double>& x) {
  const double n = static_cast<double>(x.size());
  const double mean = std::accumulate(x.begin(), x.end(), 0.0) / n;
  double v = 0;
  for (const double r : x) v += (r - mean) * (r - mean);
  v /= n - 1;
  return v > 0 ? mean / std::sqrt(v) : 0.0;
}

TEST(Robustness, BlocksAreContiguousTheEarlierLargerAndBadCountsAreRefused) {
  EXPECT_EQ(gt::block_starts(10, 4), (std::vector<std::size_t>{0, 3, 6, 8, 10}));
  EXPECT_EQ(gt::block_starts(16, 16).back(), 16u);
  for (const std::size_t bad : {0, 2, 5, 26}) EXPECT_THROW(gt::block_starts(100, bad), gt::ParamError) << bad;
  EXPECT_THROW(gt::block_starts(5, 6), gt::ParamError);
}

TEST(Robustness, TheNormalQuantileIsTheCdfsInverseToFullPrecision) {
  EXPECT_NEAR(gt::normal_quantile(0.975), 1.959963984540054, 1e-14);
  EXPECT_NEAR(gt::normal_quantile(1e-10), -6.361340902404056, 1e-12);
  for (const double p : {1e-12, 0.001, 0.02425, 0.3, 0.5, 0.77, 0.999, 1 - 1e-9})
    EXPECT_NEAR(gt::normal_cdf(gt::normal_quantile(p)), p, 1e-15 + 1e-13 * p) << p;
}

TEST(Robustness, PboFromBlockSumsIsTheContractReadOverTheReturns) {
  const gt::Bars bars = gt::load_csv(GT_DATA_DIR "/orcl-1995-2014.csv");
  std::vector<std::vector<double>> returns;
  for (const int fast : {5, 10, 15, 20})
    for (const int slow : {30, 40, 50})
      for (const double stop : {0.0, 0.05}) returns.push_back(returns_of(bars, fast, slow, stop));
  for (const std::size_t blocks : {4u, 8u, 10u}) {
    const std::vector<std::size_t> starts = gt::block_starts(bars.size(), blocks);
    std::vector<gt::ReturnSums> sums;
    for (const auto& r : returns) {
      const auto b = gt::block_sums(r, blocks);
      sums.insert(sums.end(), b.begin(), b.end());
    }
    const auto got = gt::probability_of_backtest_overfitting(sums, returns.size(), blocks);
    // Plainly: every choice of half the blocks; each side's returns joined, their Sharpe.
    std::vector<int> in(blocks, 0);
    std::fill(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(blocks / 2), 1);
    std::vector<double> logits;
    do {
      std::vector<double> is_sharpe, oos_sharpe;
      for (const auto& r : returns) {
        std::vector<double> inside, outside;
        for (std::size_t b = 0; b < blocks; ++b)
          (in[b] ? inside : outside)
              .insert(in[b] ? inside.end() : outside.end(), r.begin() + starts[b], r.begin() + starts[b + 1]);
        is_sharpe.push_back(plain_sharpe(inside));
        oos_sharpe.push_back(plain_sharpe(outside));
      }
      const auto best = static_cast<std::size_t>(std::max_element(is_sharpe.begin(), is_sharpe.end()) -
                                                 is_sharpe.begin());  // the first of equals
      const double below = static_cast<double>(
          std::count_if(oos_sharpe.begin(), oos_sharpe.end(), [&](double s) { return s < oos_sharpe[best]; }));
      const double w = (1 + below) / (static_cast<double>(returns.size()) + 1);
      logits.push_back(std::log(w / (1 - w)));
    } while (std::prev_permutation(in.begin(), in.end()));
    ASSERT_EQ(got.splits, logits.size());
    const double pbo =
        static_cast<double>(std::count_if(logits.begin(), logits.end(), [](double l) { return l <= 0; })) /
        static_cast<double>(logits.size());
    EXPECT_EQ(got.pbo, pbo) << blocks;
    std::vector<double> a = got.logits, b = logits;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-12) << blocks;
    EXPECT_LE(got.logit_q1, got.logit_median);
    EXPECT_LE(got.logit_median, got.logit_q3);
  }
  EXPECT_THROW(gt::probability_of_backtest_overfitting(std::span<const gt::ReturnSums>(), 1, 4), gt::ParamError);
}

// The contract read over block sums: per split, each side's sums joined block by block, the
// Sharpe with its square root, the first of equal bests, the out-of-sample count below it.
std::vector<double> plain_logits(const std::vector<gt::ReturnSums>& sums, std::size_t combinations,
                                 std::size_t blocks) {
  std::vector<int> in(blocks, 0);
  std::fill(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(blocks / 2), 1);
  std::vector<double> logits;
  do {
    std::vector<double> is_sharpe(combinations), oos_sharpe(combinations);
    for (std::size_t j = 0; j < combinations; ++j) {
      gt::ReturnSums inside, outside;
      for (std::size_t b = 0; b < blocks; ++b) (in[b] ? inside : outside) += sums[j * blocks + b];
      is_sharpe[j] = inside.sharpe();
      oos_sharpe[j] = outside.sharpe();
    }
    const auto best =
        static_cast<std::size_t>(std::max_element(is_sharpe.begin(), is_sharpe.end()) - is_sharpe.begin());
    const double below = static_cast<double>(
        std::count_if(oos_sharpe.begin(), oos_sharpe.end(), [&](double s) { return s < oos_sharpe[best]; }));
    const double w = (1 + below) / (static_cast<double>(combinations) + 1);
    logits.push_back(std::log(w / (1 - w)));
  } while (std::prev_permutation(in.begin(), in.end()));
  std::sort(logits.begin(), logits.end());
  return logits;
}

// Pseudo-random doubles in [0, 1) (xorshift): the same block sums every run.
struct Uniform {
  std::uint64_t x;
  double operator()() {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return static_cast<double>(x >> 11) / 9007199254740992.0;
  }
};

// The engine's logits are the plain reading's (each sorted: the orders of the splits differ).
void expect_plain_logits(const std::vector<gt::ReturnSums>& sums, std::size_t combinations, std::size_t blocks) {
  std::vector<double> logits = gt::probability_of_backtest_overfitting(sums, combinations, blocks).logits;
  std::sort(logits.begin(), logits.end());
  EXPECT_EQ(logits, plain_logits(sums, combinations, blocks)) << blocks;
}

TEST(Robustness, PboOverManyCombinationsWithTwinsAndIdleOnesIsTheContractRead) {
  // 150 combinations (the engine's tiles hold 64: two whole and one part) of pseudo-random block
  // sums, some exact twins of others (equal Sharpes on every split: ties to the lower index, none
  // below the other) and some idle (no returns but zeros: a Sharpe of 0), in 16 and in 18 blocks
  // (more than sixteen take a second outer group of blocks).
  for (const std::size_t blocks : {16u, 18u}) {
    constexpr std::size_t kCombinations = 150;
    Uniform uniform{88172645463325252ull};
    std::vector<gt::ReturnSums> sums(kCombinations * blocks);
    for (std::size_t j = 0; j < kCombinations; ++j)
      for (std::size_t b = 0; b < blocks; ++b) {
        gt::ReturnSums& s = sums[j * blocks + b];
        s.count = 40 + static_cast<double>(b % 3);
        if (j % 37 == 5) continue;  // idle
        s.sum = (uniform() - 0.45) * 0.2;
        s.sum2 = 0.05 + uniform() * 0.05;
        if (j % 10 == 9) s = sums[(j - 7) * blocks + b];  // a twin of an earlier combination
      }
    // Combinations 3 and 140 the strongest on the first half of the blocks, equally: that split's
    // best is 3 (the lower index), whose out-of-sample rank differs from 140's.
    for (std::size_t b = 0; b < blocks / 2; ++b)
      for (const std::size_t j : {3u, 140u}) {
        sums[j * blocks + b].sum = 0.5;
        sums[j * blocks + b].sum2 = 0.07;
      }
    expect_plain_logits(sums, kCombinations, blocks);
  }
}

TEST(Robustness, PboOverEveryShapeOfBlocksIsTheContractRead) {
  // Fewer blocks than one group of eight, one outer group, and the most (24: two whole outer
  // groups, 2,704,156 splits), over five combinations.
  for (const std::size_t blocks : {6u, 12u, 24u}) {
    constexpr std::size_t kCombinations = 5;
    Uniform uniform{2463534242ull};
    std::vector<gt::ReturnSums> sums(kCombinations * blocks);
    for (std::size_t i = 0; i < sums.size(); ++i)
      sums[i] = {30 + static_cast<double>(i % blocks % 2), (uniform() - 0.45) * 0.2, 0.05 + uniform() * 0.05};
    expect_plain_logits(sums, kCombinations, blocks);
  }
}

TEST(Robustness, DeflatedSharpeIsTheContractsFormula) {
  const gt::Bars bars = gt::load_csv(GT_DATA_DIR "/yhoo-1996-2014.csv");
  std::vector<double> sharpes;
  std::vector<std::vector<double>> returns;
  for (const int fast : {5, 8, 12, 16})
    for (const int slow : {25, 35, 45}) {
      returns.push_back(returns_of(bars, fast, slow, 0.0));
      sharpes.push_back(plain_sharpe(returns.back()));
    }
  const auto best = static_cast<std::size_t>(std::max_element(sharpes.begin(), sharpes.end()) - sharpes.begin());
  const auto got = gt::deflated_sharpe(returns[best], sharpes);
  // Plainly, as docs/SEMANTICS.md writes it.
  const std::vector<double>& r = returns[best];
  const double t = static_cast<double>(r.size());
  const double mean = std::accumulate(r.begin(), r.end(), 0.0) / t;
  double m2 = 0, m3 = 0, m4 = 0;
  for (const double x : r) {
    m2 += std::pow(x - mean, 2) / t;
    m3 += std::pow(x - mean, 3) / t;
    m4 += std::pow(x - mean, 4) / t;
  }
  const double sr = plain_sharpe(r), g3 = m3 / std::pow(m2, 1.5), g4 = m4 / (m2 * m2);
  const double n = static_cast<double>(sharpes.size());
  const double sm = std::accumulate(sharpes.begin(), sharpes.end(), 0.0) / n;
  double v = 0;
  for (const double s : sharpes) v += (s - sm) * (s - sm) / (n - 1);
  const double gamma = 0.5772156649;
  const double sr0 = std::sqrt(v) * ((1 - gamma) * gt::normal_quantile(1 - 1 / n) +
                                     gamma * gt::normal_quantile(1 - 1 / (n * std::numbers::e)));
  const double dsr = gt::normal_cdf((sr - sr0) * std::sqrt(t - 1) / std::sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr * sr));
  EXPECT_NEAR(got.sharpe, sr, 1e-12);
  EXPECT_NEAR(got.skewness, g3, 1e-9 * std::fabs(g3));
  EXPECT_NEAR(got.kurtosis, g4, 1e-9 * g4);
  EXPECT_NEAR(got.expected_max, sr0, 1e-12);
  EXPECT_NEAR(got.dsr, dsr, 1e-9);
  EXPECT_GT(got.dsr, 0);
  EXPECT_LT(got.dsr, 1);
  EXPECT_THROW(gt::deflated_sharpe(r, std::vector<double>{sr}), gt::ParamError);
}

}  // namespace

namespace {

// The grid engines' per-block return sums are the reference engine's, for every combination of a
// grid with every exit axis (the walk over entries books them; without exits, the trades booked
// from the position flips, in the AVX-512 lanes and without them), on both fills.
void expect_block_sums_agree(const gt::Bars& bars, const gt::Grid& grid, const gt::ExecutionOptions& options,
                             std::string_view engine) {
  const auto fast = gt::make_evaluator(bars, grid, options);
  ASSERT_EQ(fast->name(), engine);
  const auto reference = gt::make_reference_evaluator(bars, grid, options);
  const std::size_t stride = grid.base().size(), blocks = 8;
  std::vector<double> params, combo(stride);
  for (std::uint64_t i = 0; i < grid.size(); ++i) {
    grid.decode(i, combo);
    if (grid.is_valid(combo)) params.insert(params.end(), combo.begin(), combo.end());
  }
  const std::size_t count = params.size() / stride;
  const std::vector<std::size_t> starts = gt::block_starts(bars.size(), blocks);
  std::vector<gt::Metrics> a(count), b(count);
  std::vector<gt::ReturnSums> x(count * blocks), y(count * blocks);
  fast->evaluate_with_blocks(params, stride, a, starts, x);
  reference->evaluate_with_blocks(params, stride, b, starts, y);
  for (std::size_t i = 0; i < x.size(); ++i) {
    EXPECT_NEAR(x[i].sum, y[i].sum, 1e-11) << i;
    EXPECT_NEAR(x[i].sum2, y[i].sum2, 1e-12) << i;
  }
  for (std::size_t i = 0; i < count; ++i) EXPECT_NEAR(a[i].sharpe, b[i].sharpe, 1e-9 * std::fabs(b[i].sharpe)) << i;
}

TEST(Robustness, TheGridEnginesKeepTheReferenceEnginesBlockSums) {
  const gt::Bars bars = gt::load_csv(GT_DATA_DIR "/orcl-1995-2014.csv");
  const auto trend = gt::rules::compile(gt::rules::read_strategy_file(GT_SOURCE_DIR "/strategies/trend_rsi.yaml"));
  for (const auto& [fill, lanes] : {std::pair{gt::Fill::kNextOpen, true}, std::pair{gt::Fill::kClose, false}}) {
    gt::detail::force_trade_lanes(lanes);
    gt::ExecutionOptions options;
    options.fill = fill;
    options.commission = 0.001;
    expect_block_sums_agree(bars,
                            gt::parse_grid(gt::find_strategy("ma_cross"),
                                           {"fast=5,12", "slow=30,45", "volume_filter=false,true", "stop_loss=0,0.03",
                                            "take_profit=0,0.08", "max_bars=0,12"},
                                           std::nullopt, {}),
                            options, "ma_cross event-driven");
    expect_block_sums_agree(
        bars, gt::parse_grid(*trend, {"fast=5,12", "slow=40", "stop_loss=0.03", "risk=0,0.01"}, std::nullopt, {}),
        options, "rules compiled");
  }
  gt::detail::force_trade_lanes(true);
}

}  // namespace
