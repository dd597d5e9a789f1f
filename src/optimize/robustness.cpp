// The deflated Sharpe ratio and the probability of backtest overfitting (include/gt/robustness.hpp).
#include "gt/robustness.hpp"

#include <fmt/format.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <map>
#include <numbers>

#include "gt/error.hpp"

namespace gt {

double ReturnSums::sharpe() const {
  return count < 2 ? 0.0 : per_bar_sharpe(count, sum, sum2);
}

std::vector<std::size_t> block_starts(std::size_t returns, std::size_t blocks) {
  // C(S, S/2) splits: 24 blocks already make 2.7 million of them.
  constexpr std::size_t kMostBlocks = 24;
  if (blocks < 4 || blocks % 2 != 0 || blocks > kMostBlocks || blocks > returns)
    throw ParamError({"pbo_blocks"},
                     fmt::format("pbo_blocks = {} (allowed: an even number from 4 to {}, and at most the {} bars)",
                                 blocks, std::min(kMostBlocks, returns), returns));
  std::vector<std::size_t> starts(blocks + 1);
  const std::size_t base = returns / blocks, larger = returns % blocks;
  for (std::size_t b = 0; b < blocks; ++b) starts[b + 1] = starts[b] + base + (b < larger ? 1 : 0);
  return starts;
}

std::size_t robustness_blocks(bool robustness, std::optional<std::size_t> pbo_blocks) {
  if (pbo_blocks && !robustness)
    throw ParamError({"pbo_blocks", "robustness"}, "pbo_blocks sets the blocks of robustness: give robustness too");
  return robustness ? pbo_blocks.value_or(16) : 0;
}

std::vector<ReturnSums> block_sums(std::span<const double> returns, std::size_t blocks) {
  const std::vector<std::size_t> starts = block_starts(returns.size(), blocks);
  std::vector<ReturnSums> out(blocks);
  for (std::size_t b = 0; b < blocks; ++b)
    for (std::size_t t = starts[b]; t < starts[b + 1]; ++t) out[b].add(returns[t]);
  return out;
}

namespace {

// Every choice of half the blocks, as bit masks in increasing order (Gosper's hack).
std::vector<std::uint32_t> half_subsets(std::size_t blocks) {
  std::vector<std::uint32_t> out;
  const std::uint64_t limit = std::uint64_t{1} << blocks;
  for (std::uint64_t m = (std::uint64_t{1} << (blocks / 2)) - 1; m < limit;) {
    out.push_back(static_cast<std::uint32_t>(m));
    const std::uint64_t low = m & (~m + 1), ripple = m + low;  // the next mask with as many bits
    m = (((ripple ^ m) >> 2) / low) | ripple;
  }
  return out;
}

// NumPy's default percentile of `sorted` values (linear interpolation between them).
double quantile(std::span<const double> sorted, double q) {
  const double at = q * static_cast<double>(sorted.size() - 1);
  const auto below = static_cast<std::size_t>(std::floor(at));
  const std::size_t above = std::min(below + 1, sorted.size() - 1);
  return sorted[below] + (sorted[above] - sorted[below]) * (at - static_cast<double>(below));
}

// The blocks in groups of at most eight; a split's in-sample sums are, per group, the sums of its
// chosen blocks of that group, kept for every subset: a few loads a combination instead of one per
// chosen block.
constexpr std::size_t kGroupBlocks = 8, kSubsets = std::size_t{1} << kGroupBlocks;

// One tile of combinations: per group and subset of the group's blocks, each combination's sums
// over them ([group][subset][combination]), and each one's totals.
struct Tile {
  std::size_t first = 0, count = 0, groups = 0;
  std::vector<double> sum, sum2, total, total2;
};

// Sharpe ratios compared without their square root: sign(mean) mean^2 / variance orders the
// combinations as mean / sqrt(variance) does, and is 0 where the Sharpe is 0 (variance <= 0).
// Per combination of a tile, over the blocks of `mask` (in sample), or the others (`outside`:
// the totals less those), their returns counting `n`. Loops over the tile's combinations, so that
// they run in vector lanes.
__attribute__((target_clones("avx512f", "avx2", "default"))) void sharpe_keys(const Tile& tile, std::uint32_t mask,
                                                                              double n, bool outside, double* out) {
  const std::size_t count = tile.count;
  const double inverse_n = 1.0 / n, inverse_dof = 1.0 / (n - 1.0);
  const double* s0 = tile.sum.data() + (mask & (kSubsets - 1)) * count;
  const double* q0 = tile.sum2.data() + (mask & (kSubsets - 1)) * count;
  if (tile.groups == 1) {
    for (std::size_t j = 0; j < count; ++j) {
      const double s = outside ? tile.total[j] - s0[j] : s0[j];
      const double s2 = outside ? tile.total2[j] - q0[j] : q0[j];
      const double mean = s * inverse_n, variance = (s2 - s * mean) * inverse_dof;
      out[j] = variance > 0 ? mean * std::fabs(mean) / variance : 0.0;
    }
    return;
  }
  const double* s1 = tile.sum.data() + (kSubsets + (mask >> kGroupBlocks & (kSubsets - 1))) * count;
  const double* q1 = tile.sum2.data() + (kSubsets + (mask >> kGroupBlocks & (kSubsets - 1))) * count;
  const double* s2p = tile.groups > 2 ? tile.sum.data() + (2 * kSubsets + (mask >> (2 * kGroupBlocks))) * count : s0;
  const double* q2p = tile.groups > 2 ? tile.sum2.data() + (2 * kSubsets + (mask >> (2 * kGroupBlocks))) * count : q0;
  const double third = tile.groups > 2 ? 1.0 : 0.0;
  for (std::size_t j = 0; j < count; ++j) {
    const double in = s0[j] + s1[j] + third * s2p[j], in2 = q0[j] + q1[j] + third * q2p[j];
    const double s = outside ? tile.total[j] - in : in;
    const double s2 = outside ? tile.total2[j] - in2 : in2;
    const double mean = s * inverse_n, variance = (s2 - s * mean) * inverse_dof;
    out[j] = variance > 0 ? mean * std::fabs(mean) / variance : 0.0;
  }
}

}  // namespace

OverfittingProbability probability_of_backtest_overfitting(std::span<const ReturnSums> sums, std::size_t combinations,
                                                           std::size_t blocks) {
  if (combinations < 2)
    throw ParamError(
        fmt::format("the probability of backtest overfitting needs at least two valid combinations "
                    "(this study has {}): with one there is no choice to overfit",
                    combinations));
  if (sums.size() != combinations * blocks)
    throw Error(
        fmt::format("internal: {} block sums for {} combinations of {} blocks", sums.size(), combinations, blocks));
  // Every split as its in-sample blocks; the returns each side counts (the same for every
  // combination: they share the bars).
  const std::vector<std::uint32_t> masks = half_subsets(blocks);
  const std::size_t splits = masks.size();
  std::vector<double> n_in(splits), n_out(splits);
  for (std::size_t m = 0; m < splits; ++m)
    for (std::size_t b = 0; b < blocks; ++b) ((masks[m] >> b) & 1 ? n_in[m] : n_out[m]) += sums[b].count;
  const std::size_t groups = (blocks + kGroupBlocks - 1) / kGroupBlocks;
  // Combinations in tiles whose subset sums stay in the L2 cache over every split.
  const std::size_t tile_size = groups == 1 ? 512 : 64;
  const std::size_t tiles = (combinations + tile_size - 1) / tile_size;
  // Combinations first .. first + count - 1 (at most a tile) as a tile.
  const auto tile_of = [&](std::size_t first, std::size_t count) {
    Tile tile;
    tile.first = first;
    tile.count = count;
    tile.groups = groups;
    tile.sum.assign(groups * kSubsets * count, 0.0);
    tile.sum2.assign(groups * kSubsets * count, 0.0);
    tile.total.assign(count, 0.0);
    tile.total2.assign(count, 0.0);
    for (std::size_t g = 0; g < groups; ++g) {
      const std::size_t in_group = std::min(kGroupBlocks, blocks - g * kGroupBlocks);
      for (std::size_t subset = 1; subset < (std::size_t{1} << in_group); ++subset) {
        // A subset's sums: those of the subset without its highest block, plus that block's.
        const std::size_t high = static_cast<std::size_t>(std::bit_width(subset)) - 1;
        const std::size_t rest = subset & ~(std::size_t{1} << high);
        double* s = tile.sum.data() + (g * kSubsets + subset) * count;
        double* s2 = tile.sum2.data() + (g * kSubsets + subset) * count;
        const double* r = tile.sum.data() + (g * kSubsets + rest) * count;
        const double* r2 = tile.sum2.data() + (g * kSubsets + rest) * count;
        for (std::size_t j = 0; j < count; ++j) {
          const ReturnSums& x = sums[(first + j) * blocks + g * kGroupBlocks + high];
          s[j] = r[j] + x.sum;
          s2[j] = r2[j] + x.sum2;
        }
      }
    }
    for (std::size_t j = 0; j < count; ++j)
      for (std::size_t b = 0; b < blocks; ++b) {
        tile.total[j] += sums[(first + j) * blocks + b].sum;
        tile.total2[j] += sums[(first + j) * blocks + b].sum2;
      }
    return tile;
  };

  // Pass 1: each split's in-sample best, per tile, then over the tiles (ties: the lower index).
  struct Best {
    double key;
    std::size_t index;
  };
  std::vector<Best> tile_best(tiles * splits);
  tbb::parallel_for(std::size_t{0}, tiles, [&](std::size_t t) {
    const Tile tile = tile_of(t * tile_size, std::min(tile_size, combinations - t * tile_size));
    std::vector<double> key(tile.count);
    for (std::size_t m = 0; m < splits; ++m) {
      sharpe_keys(tile, masks[m], n_in[m], false, key.data());
      const auto best = std::max_element(key.begin(), key.end());  // the first of equals
      tile_best[t * splits + m] = {*best, tile.first + static_cast<std::size_t>(best - key.begin())};
    }
  });
  std::vector<double> best_outside(splits);
  std::map<std::size_t, Tile> alone;  // the few combinations that are ever best, each as a tile of one
  for (std::size_t m = 0; m < splits; ++m) {
    Best best = tile_best[m];
    for (std::size_t t = 1; t < tiles; ++t)
      if (tile_best[t * splits + m].key > best.key) best = tile_best[t * splits + m];
    // Its out-of-sample key, computed as pass 2 computes everyone's.
    auto it = alone.find(best.index);
    if (it == alone.end()) it = alone.emplace(best.index, tile_of(best.index, 1)).first;
    sharpe_keys(it->second, masks[m], n_out[m], true, &best_outside[m]);
  }

  // Pass 2: per split, how many combinations do worse out of sample than the in-sample best.
  std::vector<std::uint64_t> tile_below(tiles * splits);
  tbb::parallel_for(std::size_t{0}, tiles, [&](std::size_t t) {
    const Tile tile = tile_of(t * tile_size, std::min(tile_size, combinations - t * tile_size));
    std::vector<double> key(tile.count);
    for (std::size_t m = 0; m < splits; ++m) {
      sharpe_keys(tile, masks[m], n_out[m], true, key.data());
      std::uint64_t below = 0;
      for (const double k : key) below += k < best_outside[m];
      tile_below[t * splits + m] = below;
    }
  });

  OverfittingProbability out;
  out.splits = splits;
  out.logits.resize(splits);
  std::uint64_t overfit = 0;
  for (std::size_t m = 0; m < splits; ++m) {
    std::uint64_t below = 0;
    for (std::size_t t = 0; t < tiles; ++t) below += tile_below[t * splits + m];
    const double w = (1.0 + static_cast<double>(below)) / (static_cast<double>(combinations) + 1.0);
    out.logits[m] = std::log(w / (1.0 - w));
    overfit += out.logits[m] <= 0;
  }
  out.pbo = static_cast<double>(overfit) / static_cast<double>(splits);
  std::vector<double> sorted = out.logits;
  std::sort(sorted.begin(), sorted.end());
  out.logit_q1 = quantile(sorted, 0.25);
  out.logit_median = quantile(sorted, 0.5);
  out.logit_q3 = quantile(sorted, 0.75);
  return out;
}

HalfRanks chronological_ranks(std::span<const ReturnSums> sums, std::size_t combinations, std::size_t blocks) {
  if (combinations < 2 || sums.size() != combinations * blocks)
    throw Error(fmt::format("internal: chronological ranks of {} block sums for {} combinations of {} blocks",
                            sums.size(), combinations, blocks));
  // Each side's share of others below: position in the sorted Sharpes of the first equal one.
  const auto ranks = [&](std::size_t first_block, std::size_t last_block) {
    std::vector<double> sharpe(combinations);
    for (std::size_t i = 0; i < combinations; ++i) {
      ReturnSums side;
      for (std::size_t b = first_block; b < last_block; ++b) side += sums[i * blocks + b];
      sharpe[i] = side.sharpe();
    }
    std::vector<double> sorted = sharpe;
    std::sort(sorted.begin(), sorted.end());
    std::vector<double> rank(combinations);
    for (std::size_t i = 0; i < combinations; ++i)
      rank[i] = static_cast<double>(std::lower_bound(sorted.begin(), sorted.end(), sharpe[i]) - sorted.begin()) /
                static_cast<double>(combinations - 1);
    return rank;
  };
  HalfRanks out;
  out.in_sample = ranks(0, blocks / 2);
  out.out_of_sample = ranks(blocks / 2, blocks);
  double mx = 0, my = 0;
  for (std::size_t i = 0; i < combinations; ++i) {
    mx += out.in_sample[i];
    my += out.out_of_sample[i];
  }
  mx /= static_cast<double>(combinations);
  my /= static_cast<double>(combinations);
  double sxy = 0, sxx = 0, syy = 0;
  for (std::size_t i = 0; i < combinations; ++i) {
    const double dx = out.in_sample[i] - mx, dy = out.out_of_sample[i] - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  out.rank_correlation = sxx > 0 && syy > 0 ? sxy / std::sqrt(sxx * syy) : 0.0;
  return out;
}

double normal_cdf(double x) {
  return 0.5 * std::erfc(-x / std::numbers::sqrt2);
}

double normal_quantile(double p) {
  if (!(p > 0 && p < 1)) return p == 0 ? -HUGE_VAL : (p == 1 ? HUGE_VAL : std::nan(""));
  // Acklam's rational approximation (relative error 1.15e-9), then one Halley step on erfc.
  static constexpr double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,  -2.759285104469687e+02,
                                 1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  static constexpr double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                                 6.680131188771972e+01, -1.328068155288572e+01};
  static constexpr double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                                 -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  static constexpr double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                                 3.754408661907416e+00};
  constexpr double kLow = 0.02425;
  double x = 0;
  if (p < kLow) {
    const double q = std::sqrt(-2 * std::log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else if (p <= 1 - kLow) {
    const double q = p - 0.5, r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  } else {
    const double q = std::sqrt(-2 * std::log(1 - p));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  const double e = normal_cdf(x) - p;
  const double u = e * std::sqrt(2 * std::numbers::pi) * std::exp(x * x / 2);
  return x - u / (1 + x * u / 2);
}

DeflatedSharpe deflated_sharpe(std::span<const double> best_returns, std::span<const double> per_bar_sharpes,
                               std::uint64_t trials) {
  if (per_bar_sharpes.size() < 2)
    throw ParamError(
        fmt::format("the deflated Sharpe ratio needs at least two valid combinations (this study has "
                    "{}): it deflates the best of several trials",
                    per_bar_sharpes.size()));
  if (best_returns.size() < 2)
    throw ParamError(
        fmt::format("the deflated Sharpe ratio needs at least two returns ({} here)", best_returns.size()));
  DeflatedSharpe out;
  out.trials = std::max<std::uint64_t>(trials, per_bar_sharpes.size());
  out.returns = best_returns.size();
  const auto mean_of = [](std::span<const double> x) {
    double s = 0;
    for (const double v : x) s += v;
    return s / static_cast<double>(x.size());
  };
  const double mean = mean_of(best_returns);
  double m2 = 0, m3 = 0, m4 = 0;
  for (const double r : best_returns) {
    const double d = r - mean, d2 = d * d;
    m2 += d2;
    m3 += d2 * d;
    m4 += d2 * d2;
  }
  const auto t = static_cast<double>(best_returns.size());
  m2 /= t;
  m3 /= t;
  m4 /= t;
  const double sample_std = std::sqrt(m2 * t / (t - 1));
  out.sharpe = sample_std > 0 ? mean / sample_std : 0.0;
  out.skewness = m2 > 0 ? m3 / std::pow(m2, 1.5) : 0.0;
  out.kurtosis = m2 > 0 ? m4 / (m2 * m2) : 0.0;
  const double trial_mean = mean_of(per_bar_sharpes);
  double v = 0;
  for (const double s : per_bar_sharpes) v += (s - trial_mean) * (s - trial_mean);
  out.variance = v / static_cast<double>(per_bar_sharpes.size() - 1);
  constexpr double kEulerGamma = 0.5772156649;
  const auto n = static_cast<double>(out.trials);
  out.expected_max = std::sqrt(out.variance) * ((1 - kEulerGamma) * normal_quantile(1 - 1 / n) +
                                                kEulerGamma * normal_quantile(1 - 1 / (n * std::numbers::e)));
  const double spread = 1 - out.skewness * out.sharpe + (out.kurtosis - 1) / 4 * out.sharpe * out.sharpe;
  if (!(spread > 0))
    throw ParamError(
        fmt::format("the deflated Sharpe ratio is undefined for these returns: 1 - skewness x SR + "
                    "(kurtosis - 1) / 4 x SR^2 = {} is not positive",
                    spread));
  out.dsr = normal_cdf((out.sharpe - out.expected_max) * std::sqrt(t - 1) / std::sqrt(spread));
  return out;
}

}  // namespace gt
