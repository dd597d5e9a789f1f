// Is the best combination real? The statistics of docs/SEMANTICS.md "Out-of-sample evidence": the
// deflated Sharpe ratio of the best combination and the probability of backtest overfitting by
// combinatorially symmetric cross-validation, from what the engines keep of every combination.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "gt/backtest.hpp"

namespace gt {

// The first bar of each of `blocks` contiguous blocks of `returns` bars, sizes differing by at most
// one, the earlier blocks larger; then `returns` (blocks + 1 values). Throws ParamError naming
// `pbo_blocks` when blocks is odd, below 4 or above the number of returns.
std::vector<std::size_t> block_starts(std::size_t returns, std::size_t blocks);

// The blocks a study's robustness uses, 0 when it is not asked for: `pbo_blocks`, 16 when not given.
// Throws ParamError naming both when pbo_blocks is given without robustness.
std::size_t robustness_blocks(bool robustness, std::optional<std::size_t> pbo_blocks);

// Per block, the sums of `returns` (blocks as block_starts makes them).
std::vector<ReturnSums> block_sums(std::span<const double> returns, std::size_t blocks);

struct OverfittingProbability {
  double pbo = 0;              // share of splits whose in-sample best ranks at or below the median out of sample
  std::uint64_t splits = 0;    // C(S, S/2)
  std::vector<double> logits;  // per split, lambda = ln(w / (1 - w))
  double logit_q1 = 0, logit_median = 0, logit_q3 = 0;  // quartiles (linear interpolation, as NumPy's)
};

// PBO by CSCV over `combinations` combinations' block sums, laid out [combination][block]
// (`blocks` each). Every C(S, S/2) choice of in-sample blocks: the combination with the best
// in-sample Sharpe (ties: the lower index), its relative rank among the out-of-sample Sharpes,
// w = (1 + #{j : OOS_j < OOS_best}) / (N + 1), and lambda = ln(w / (1 - w)); PBO is the share of
// splits with lambda <= 0. Throws ParamError for fewer than two combinations (undefined).
OverfittingProbability probability_of_backtest_overfitting(std::span<const ReturnSums> sums, std::size_t combinations,
                                                           std::size_t blocks);

struct DeflatedSharpe {
  double dsr = 0;                     // the probability that the best's true Sharpe is above SR0
  double sharpe = 0;                  // the best's per-bar Sharpe, SR
  double expected_max = 0;            // SR0: the largest per-bar Sharpe expected of `trials` unskilled trials
  double skewness = 0, kurtosis = 0;  // of the best's returns (population moments; kurtosis not excess)
  double variance = 0;                // of the trials' per-bar Sharpes (ddof = 1)
  std::uint64_t trials = 0, returns = 0;
};

// Bailey and Lopez de Prado's deflated Sharpe ratio of the best combination, from its per-bar
// returns and every valid combination's per-bar Sharpe. Throws ParamError for fewer than two
// trials or returns (undefined). `trials` above 0: the number of trials when it exceeds the Sharpes
// given (a successive-halving search tried combinations it did not run on every bar).
DeflatedSharpe deflated_sharpe(std::span<const double> best_returns, std::span<const double> per_bar_sharpes,
                               std::uint64_t trials = 0);

// The chronological split (the first half of the blocks in sample, the second out of sample):
// each combination's relative rank by per-bar Sharpe on either side, the share of the other
// combinations with a lower Sharpe (1: the best, 0: the worst; equal Sharpes share a rank), and
// the correlation of the two ranks (Spearman's rho). What the report's rank scatter draws.
struct HalfRanks {
  std::vector<double> in_sample, out_of_sample;  // per combination, in the order of the sums
  double rank_correlation = 0;
};
HalfRanks chronological_ranks(std::span<const ReturnSums> sums, std::size_t combinations, std::size_t blocks);

// One symbol's robustness in a study (docs/SEMANTICS.md "Out-of-sample evidence"): the ranking's
// best combination deflated by every valid one, and the overfitting probability of the whole grid.
struct SymbolRobustness {
  std::size_t symbol = 0;
  std::uint64_t best_index = 0;  // the grid index of the combination deflated
  DeflatedSharpe deflated;
  OverfittingProbability overfitting;
  HalfRanks chronological;
};

// The standard normal distribution and its inverse (full double precision).
double normal_cdf(double x);
double normal_quantile(double p);

}  // namespace gt
