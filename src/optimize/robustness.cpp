// The deflated Sharpe ratio and the probability of backtest overfitting (include/gt/robustness.hpp).
#include "gt/robustness.hpp"

#include <fmt/format.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
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

// A split's in-sample sums come from per-subset tables. The first eight blocks are the inner
// group, the rest (up to sixteen) the outer groups; each group keeps its sums over every subset of
// its blocks. The kernels hold one outer subset's sums in registers and visit every inner subset
// that completes it to half the blocks: two loads and two additions a combination and split.
constexpr std::size_t kGroupBlocks = 8, kSubsets = std::size_t{1} << kGroupBlocks;

// Every split, in the order the kernels visit them.
struct SplitPlan {
  std::size_t blocks = 0, inner_blocks = 0, outer_groups = 0;
  std::vector<std::uint32_t> masks;       // per split, its in-sample blocks (the order of the results)
  std::vector<std::uint32_t> complement;  // per split, the split whose in-sample blocks are its out-of-sample ones
  std::vector<double> returns;            // per split, the returns its in-sample blocks count (every combination's)
  struct Outer {
    std::uint32_t subset = 0, first = 0, last = 0;  // an outer subset and its visits [first, last)
  };
  std::vector<Outer> outers;
  std::vector<std::uint32_t> inner_subset, split;  // per visit
};

SplitPlan plan_splits(std::span<const ReturnSums> first_combination, std::size_t blocks) {
  SplitPlan plan;
  plan.blocks = blocks;
  plan.inner_blocks = std::min(blocks, kGroupBlocks);
  const std::size_t outer_blocks = blocks - plan.inner_blocks;
  plan.outer_groups = outer_blocks > kGroupBlocks ? 2 : 1;
  plan.masks = half_subsets(blocks);
  const std::size_t splits = plan.masks.size();
  // A split's index from its mask: masks of as many bits in increasing order are in colexicographic
  // order, whose rank is the sum over the set bits (positions c_0 < c_1 < ...) of C(c_i, i + 1).
  std::vector<std::array<std::uint32_t, 32>> choose(blocks + 1);
  for (std::size_t n = 0; n <= blocks; ++n)
    for (std::size_t k = 0; k <= n; ++k) choose[n][k] = k == 0 || k == n ? 1 : choose[n - 1][k - 1] + choose[n - 1][k];
  const auto index_of = [&](std::uint32_t mask) {
    std::uint32_t rank = 0;
    for (std::size_t i = 1; mask != 0; ++i, mask &= mask - 1)
      rank += choose[static_cast<std::size_t>(std::countr_zero(mask))][i];
    return rank;
  };
  const std::uint32_t all = static_cast<std::uint32_t>((std::uint64_t{1} << blocks) - 1);
  plan.complement.resize(splits);
  plan.returns.resize(splits);
  for (std::size_t m = 0; m < splits; ++m) {
    plan.complement[m] = index_of(~plan.masks[m] & all);
    for (std::size_t b = 0; b < blocks; ++b)
      if ((plan.masks[m] >> b) & 1) plan.returns[m] += first_combination[b].count;
  }
  const auto half = static_cast<int>(blocks / 2);
  for (std::uint32_t outer = 0; outer < (std::uint32_t{1} << outer_blocks); ++outer) {
    const int inner_bits = half - std::popcount(outer);
    if (inner_bits < 0 || inner_bits > static_cast<int>(plan.inner_blocks)) continue;
    SplitPlan::Outer o{outer, static_cast<std::uint32_t>(plan.split.size()), 0};
    for (std::uint32_t inner = 0; inner < (std::uint32_t{1} << plan.inner_blocks); ++inner)
      if (std::popcount(inner) == inner_bits) {
        plan.inner_subset.push_back(inner);
        plan.split.push_back(index_of(inner | outer << plan.inner_blocks));
      }
    o.last = static_cast<std::uint32_t>(plan.split.size());
    plan.outers.push_back(o);
  }
  return plan;
}

// A Sharpe ratio as a fraction that orders the combinations of a split as their Sharpe ratios do,
// without a square root or a division: over n returns summing s (and r^2 summing q), s |s| / (n q -
// s^2) is (n - 1) / n sign(mean) mean^2 / variance; 0 / 1 where the variance is not positive (a
// Sharpe of 0). Keys compare by cross products; the default, -infinity / 1, is below every key.
struct SharpeKey {
  double num = -HUGE_VAL, den = 1;
};
inline SharpeKey sharpe_key(double s, double q, double n) {
  const double num = s * std::fabs(s), den = n * q - s * s;
  return den > 0 ? SharpeKey{num, den} : SharpeKey{0.0, 1.0};
}

// A combination's in-sample sums over the blocks of `mask`, added exactly as the tables and the
// kernels add them (each group's blocks in order from 0, the outer groups, then inner and outer),
// so that they equal its lane's to the bit.
ReturnSums split_sums(const ReturnSums* blocks, std::uint32_t mask, const SplitPlan& plan) {
  const auto group = [&](std::size_t first, std::size_t count) {
    ReturnSums g{0, 0.0, 0.0};
    for (std::size_t b = first; b < first + count; ++b)
      if ((mask >> b) & 1) {
        g.sum += blocks[b].sum;
        g.sum2 += blocks[b].sum2;
      }
    return g;
  };
  const std::size_t outer_blocks = plan.blocks - plan.inner_blocks;
  const ReturnSums inner = group(0, plan.inner_blocks);
  ReturnSums outer = group(plan.inner_blocks, std::min(outer_blocks, kGroupBlocks));
  if (plan.outer_groups == 2) {
    const ReturnSums second = group(plan.inner_blocks + kGroupBlocks, outer_blocks - kGroupBlocks);
    outer.sum = outer.sum + second.sum;
    outer.sum2 = outer.sum2 + second.sum2;
  }
  return {0, outer.sum + inner.sum, outer.sum2 + inner.sum2};
}

// Combinations in lanes: eight doubles a vector, eight vectors a tile of 64 combinations, whose
// tables (at most 768 KB) stay in the L2 cache while every split visits them.
constexpr std::size_t kLanes = 8, kVectors = 8, kTileSize = kLanes * kVectors;
using Lanes = double __attribute__((vector_size(kLanes * sizeof(double))));

inline void load(Lanes& lanes, const double* row) {
  std::memcpy(&lanes, row, sizeof lanes);  // an unaligned load
}

// Up to 64 combinations: per group and subset of its blocks, each one's sums ([subset][lane]; the
// lanes past `count` zero).
struct Tile {
  std::size_t count = 0;
  std::array<std::uint64_t, kTileSize> index{};  // per lane, the combination's
  std::vector<double> inner_sum, inner_sum2;     // kSubsets rows
  std::vector<double> outer_sum, outer_sum2;     // outer_groups x kSubsets rows

  // One outer subset's sums, per vector of lanes.
  void outer_row(std::uint32_t subset, std::size_t outer_groups, Lanes (&s)[kVectors], Lanes (&q)[kVectors]) const {
    const std::size_t first = (subset & (kSubsets - 1)) * kTileSize;
    for (std::size_t v = 0; v < kVectors; ++v) {
      load(s[v], outer_sum.data() + first + v * kLanes);
      load(q[v], outer_sum2.data() + first + v * kLanes);
    }
    if (outer_groups < 2) return;
    const std::size_t second = (kSubsets + (subset >> kGroupBlocks)) * kTileSize;
    for (std::size_t v = 0; v < kVectors; ++v) {
      Lanes s2, q2;
      load(s2, outer_sum.data() + second + v * kLanes);
      load(q2, outer_sum2.data() + second + v * kLanes);
      s[v] = s[v] + s2;
      q[v] = q[v] + q2;
    }
  }
};

void fill_tile(std::span<const ReturnSums> sums, const SplitPlan& plan, std::span<const std::uint64_t> combinations,
               Tile& tile) {
  tile.count = combinations.size();
  std::copy(combinations.begin(), combinations.end(), tile.index.begin());
  tile.inner_sum.assign(kSubsets * kTileSize, 0.0);
  tile.inner_sum2.assign(kSubsets * kTileSize, 0.0);
  tile.outer_sum.assign(plan.outer_groups * kSubsets * kTileSize, 0.0);
  tile.outer_sum2.assign(plan.outer_groups * kSubsets * kTileSize, 0.0);
  const auto fill = [&](double* s, double* q, std::size_t first_block, std::size_t group_blocks) {
    for (std::size_t subset = 1; subset < (std::size_t{1} << group_blocks); ++subset) {
      // A subset's sums: those of the subset without its highest block, plus that block's.
      const std::size_t high = static_cast<std::size_t>(std::bit_width(subset)) - 1;
      const std::size_t rest = subset & ~(std::size_t{1} << high);
      for (std::size_t j = 0; j < tile.count; ++j) {
        const ReturnSums& x = sums[combinations[j] * plan.blocks + first_block + high];
        s[subset * kTileSize + j] = s[rest * kTileSize + j] + x.sum;
        q[subset * kTileSize + j] = q[rest * kTileSize + j] + x.sum2;
      }
    }
  };
  const std::size_t outer_blocks = plan.blocks - plan.inner_blocks;
  fill(tile.inner_sum.data(), tile.inner_sum2.data(), 0, plan.inner_blocks);
  fill(tile.outer_sum.data(), tile.outer_sum2.data(), plan.inner_blocks, std::min(outer_blocks, kGroupBlocks));
  if (plan.outer_groups == 2)
    fill(tile.outer_sum.data() + kSubsets * kTileSize, tile.outer_sum2.data() + kSubsets * kTileSize,
         plan.inner_blocks + kGroupBlocks, outer_blocks - kGroupBlocks);
}

// The keys of vector v of a tile's lanes on one split: its outer sums plus the inner row's, as
// sharpe_key computes one.
inline void lane_keys(const Lanes& outer_s, const Lanes& outer_q, const double* inner_s, const double* inner_q,
                      double n, Lanes& num, Lanes& den) {
  Lanes s, q;
  load(s, inner_s);
  load(q, inner_q);
  s = outer_s + s;
  q = outer_q + q;
  using Bits = std::int64_t __attribute__((vector_size(kLanes * sizeof(std::int64_t))));
  const Lanes magnitude = reinterpret_cast<Lanes>(reinterpret_cast<Bits>(s) & std::numeric_limits<std::int64_t>::max());
  num = s * magnitude;
  den = n * q - s * s;
  const auto positive = den > 0;
  num = positive ? num : 0.0;
  den = positive ? den : 1.0;
}

struct Best {
  SharpeKey key;
  std::uint64_t index = std::numeric_limits<std::uint64_t>::max();
};
// Whether `key` of combination `index` beats `best` in sample: a higher key, or an equal one of a
// lower index (the contract's tie rule).
inline bool beats(const SharpeKey& key, std::uint64_t index, const Best& best) {
  const double mine = key.num * best.key.den, theirs = best.key.num * key.den;
  return mine > theirs || (mine == theirs && index < best.index);
}

// A pass over every split of a tile: on_split(split, keys), where keys(v, num, den) gives vector v's
// lane keys on that split (its outer sums held in registers, its inner row loaded). Inlined into
// each kernel, so that the visit is written once and the kernels' code is the ISA of their clone.
template <class OnSplit>
[[gnu::always_inline]] inline void over_splits(const Tile& tile, const SplitPlan& plan, OnSplit on_split) {
  Lanes outer_s[kVectors], outer_q[kVectors];
  for (const SplitPlan::Outer& o : plan.outers) {
    tile.outer_row(o.subset, plan.outer_groups, outer_s, outer_q);
    for (std::uint32_t visit = o.first; visit < o.last; ++visit) {
      const std::size_t row = plan.inner_subset[visit] * kTileSize;
      const std::uint32_t m = plan.split[visit];
      const double n = plan.returns[m];
      on_split(m, [&](std::size_t v, Lanes& num, Lanes& den) [[gnu::always_inline]] {
        lane_keys(outer_s[v], outer_q[v], tile.inner_sum.data() + row + v * kLanes,
                  tile.inner_sum2.data() + row + v * kLanes, n, num, den);
      });
    }
  }
}

// Pass 1: each split's in-sample best over a tile, into `best` (per split). A vector's keys are
// compared with the best so far by one difference of cross products; only a split where some lane
// may beat it looks at the lanes one by one (few once the best are known: the strongest
// combinations' tile goes first).
__attribute__((target_clones("avx512f", "avx2", "default"))) void best_in_sample(const Tile& tile,
                                                                                 const SplitPlan& plan, Best* best) {
  over_splits(tile, plan, [&](std::uint32_t m, auto keys) [[gnu::always_inline]] {
    Best& b = best[m];
    Lanes top = Lanes{} - 1.0;
    for (std::size_t v = 0; v < kVectors; ++v) {
      Lanes num, den;
      keys(v, num, den);
      const Lanes ahead = num * b.key.den - b.key.num * den;  // >= 0 where the lane's key is at least the best's
      top = top > ahead ? top : ahead;
    }
    bool contender = false;
    for (std::size_t l = 0; l < kLanes; ++l) contender |= top[l] >= 0;
    if (!contender) return;
    for (std::size_t v = 0; v < kVectors; ++v) {
      Lanes num, den;
      keys(v, num, den);
      const Lanes ahead = num * b.key.den - b.key.num * den;
      for (std::size_t l = 0; l < kLanes && v * kLanes + l < tile.count; ++l)
        if (ahead[l] >= 0 && beats({num[l], den[l]}, tile.index[v * kLanes + l], b))
          b = {{num[l], den[l]}, tile.index[v * kLanes + l]};
    }
  });
}

// Pass 2: per split (as its in-sample blocks), how many of a tile's combinations have a lower key
// than `bar` (per split), added to `below`.
__attribute__((target_clones("avx512f", "avx2", "default"))) void count_below(const Tile& tile, const SplitPlan& plan,
                                                                              const SharpeKey* bar,
                                                                              std::uint64_t* below) {
  using Counts = std::int64_t __attribute__((vector_size(kLanes * sizeof(std::int64_t))));
  const auto padding = static_cast<std::int64_t>(kTileSize - tile.count);  // zero lanes: keys of 0
  over_splits(tile, plan, [&](std::uint32_t m, auto keys) [[gnu::always_inline]] {
    const SharpeKey limit = bar[m];
    Counts lower = {};
    for (std::size_t v = 0; v < kVectors; ++v) {
      Lanes num, den;
      keys(v, num, den);
      lower -= num * limit.den < limit.num * den;  // -1 where true
    }
    std::int64_t total = limit.num > 0 ? -padding : 0;
    for (std::size_t l = 0; l < kLanes; ++l) total += lower[l];
    below[m] += static_cast<std::uint64_t>(total);
  });
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
  const SplitPlan plan = plan_splits(sums.first(blocks), blocks);
  const std::size_t splits = plan.masks.size();

  // The tiles, the combinations with the highest Sharpe over every block first: their in-sample
  // bests are the bar the other tiles' combinations seldom reach.
  std::vector<std::uint64_t> order(combinations);
  std::vector<double> overall(combinations);
  for (std::size_t i = 0; i < combinations; ++i) {
    ReturnSums total;
    for (std::size_t b = 0; b < blocks; ++b) total += sums[i * blocks + b];
    overall[i] = total.sharpe();
    order[i] = i;
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](std::uint64_t a, std::uint64_t b) { return overall[a] > overall[b]; });
  const std::size_t tiles = (combinations + kTileSize - 1) / kTileSize;
  const auto tile_combinations = [&](std::size_t t) {
    return std::span<const std::uint64_t>(order).subspan(t * kTileSize,
                                                         std::min(kTileSize, combinations - t * kTileSize));
  };
  tbb::enumerable_thread_specific<Tile> tile_of_thread;

  // Pass 1: the strongest tile alone, then the others from its bests on every thread, merged.
  std::vector<Best> first_bests(splits);
  fill_tile(sums, plan, tile_combinations(0), tile_of_thread.local());
  best_in_sample(tile_of_thread.local(), plan, first_bests.data());
  tbb::enumerable_thread_specific<std::vector<Best>> bests_of_thread(first_bests);
  tbb::parallel_for(std::size_t{1}, tiles, [&](std::size_t t) {
    Tile& tile = tile_of_thread.local();
    fill_tile(sums, plan, tile_combinations(t), tile);
    best_in_sample(tile, plan, bests_of_thread.local().data());
  });
  std::vector<Best> best = first_bests;
  for (const std::vector<Best>& thread : bests_of_thread)
    for (std::size_t m = 0; m < splits; ++m)
      if (beats(thread[m].key, thread[m].index, best[m])) best[m] = thread[m];

  // Pass 2: per split, the in-sample best's key out of sample (the complement's in-sample blocks),
  // and how many combinations fall below it there.
  std::vector<SharpeKey> bar(splits);
  for (std::size_t m = 0; m < splits; ++m) {
    const std::uint32_t out = plan.complement[m];
    const ReturnSums s = split_sums(sums.data() + best[m].index * blocks, plan.masks[out], plan);
    bar[out] = sharpe_key(s.sum, s.sum2, plan.returns[out]);
  }
  tbb::enumerable_thread_specific<std::vector<std::uint64_t>> below_of_thread(std::vector<std::uint64_t>(splits, 0));
  tbb::parallel_for(std::size_t{0}, tiles, [&](std::size_t t) {
    Tile& tile = tile_of_thread.local();
    fill_tile(sums, plan, tile_combinations(t), tile);
    count_below(tile, plan, bar.data(), below_of_thread.local().data());
  });
  std::vector<std::uint64_t> below(splits, 0);
  for (const std::vector<std::uint64_t>& thread : below_of_thread)
    for (std::size_t m = 0; m < splits; ++m) below[m] += thread[m];

  OverfittingProbability out;
  out.splits = splits;
  out.logits.resize(splits);
  std::uint64_t overfit = 0;
  for (std::size_t m = 0; m < splits; ++m) {
    const double w = (1.0 + static_cast<double>(below[plan.complement[m]])) / (static_cast<double>(combinations) + 1.0);
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
