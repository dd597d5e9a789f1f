// The event-driven grid engine for ma_cross (long-only, whole-equity entries): per combination,
// O(bars / 64) to find the crossings and O(1) per trade for every metric.
#pragma once

#include <bit>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "cache_line_array.hpp"
#include "cross_masks.hpp"
#include "gt/indicators.hpp"
#include "gt/optimize.hpp"
#include "gt/signal_rules.hpp"

namespace gt {

// Everything a long-only, whole-equity trade of ma_cross reads of one bar, under given options:
// shared by the CPU engine and its CUDA twin (src/optimize/cuda), so both fill alike. A trade
// entered at bar e and last held at bar k (left at the fill of k+1, or held to the last close
// when k is the last bar) reads entry_* of e and exit_* of k: between them, every return it adds.
struct alignas(64) MaCrossBarFacts {
  double entry_cost = 0;  // price of one unit bought at this bar's fill, costs included
  double next_value = 0;  // cash from one unit sold at the next bar's fill, costs deducted; at the last bar, its close
  // The entry bar's return (close / entry_cost - 1) less the prefix sums of close-to-close returns
  // through this bar: plain, squared, downside squared.
  double entry_r = 0, entry_r2 = 0, entry_down2 = 0;
  // Those prefix sums through this bar plus the next bar's return as an exit bar (its exit value
  // against this close); the plain prefix sums at the last bar.
  double exit_r = 0, exit_r2 = 0, exit_down2 = 0;
};
// Running peak and deepest drawdown of an equity curve. `floor` = peak * (1 - max_drawdown) is
// kept so that most marks cost one comparison and no division.
struct DrawdownTracker {
  double peak, max_drawdown = 0, floor;
  GT_HOST_DEVICE explicit DrawdownTracker(double start) : peak(start), floor(start) {}
  GT_HOST_DEVICE void raise_peak(double value) {
    peak = value;
    floor = peak * (1.0 - max_drawdown);
  }
  GT_HOST_DEVICE void deepen(double drawdown) {
    max_drawdown = drawdown;
    floor = peak * (1.0 - max_drawdown);
  }
  // The equity at one close.
  GT_HOST_DEVICE void mark(double value) {
    if (value > peak)
      raise_peak(value);
    else if (value < floor)
      deepen(1.0 - value / peak);
  }
};

// std::max and std::min as host and device code (same operand order, so the same result on ties).
GT_HOST_DEVICE inline double larger(double a, double b) {
  return a < b ? b : a;
}
GT_HOST_DEVICE inline double smaller(double a, double b) {
  return b < a ? b : a;
}

// Highest and lowest close and the deepest drawdown of a range of closes.
struct RangeStats {
  double high, low, drawdown;
};

// O(1) range queries of RangeStats over a disjoint sparse table (build_range_table): per level,
// the stats from each bar to the middle of its block, so that any range is one left part joined
// to one right part. A view, so that the GPU reads the same table from its own memory.
struct RangeTableView {
  const RangeStats* table;
  std::size_t bars;

  // The two parts whose join is [first, last] (inclusive). Level 0 holds every bar alone, which
  // also serves first == last.
  GT_HOST_DEVICE void parts(std::size_t first, std::size_t last, const RangeStats*& left,
                            const RangeStats*& right) const {
    const std::uint64_t differing = first ^ last;
#ifdef __CUDA_ARCH__
    const unsigned width = 64u - static_cast<unsigned>(__clzll(static_cast<long long>(differing)));
#else
    const auto width = static_cast<unsigned>(std::bit_width(differing));
#endif
    const std::size_t level = (width > 1 ? width : 1) - 1;
    const RangeStats* row = table + level * bars;
    left = row + first;
    right = row + last;
  }
};

// The table RangeTableView reads: bit_width(bars) levels of `bars` entries.
detail::CacheLineVector<RangeStats> build_range_table(std::span<const double> closes);

// One combination's account under ma_cross's fills: every trade in O(1) (prefix sums for the
// returns, the range table for the drawdown), the metrics at the end. The CPU engine and its CUDA
// twin find the trades their own way and both book them here.
//
// An entry commits the whole equity E, so the cash is exactly 0 while long and the equity at a
// close is units * close, units = E / entry_cost[e]. The entry bar and the exit bar return what
// the reference engine computes; every bar in between returns close[k]/close[k-1] - 1; all of them
// together are entry_*[e] + exit_*[k] (MaCrossBarFacts); flat bars return 0. A trade turns E into
// E * next_value[k] / entry_cost[e]. The drawdown inside a held stretch comes from the range
// table, and only when the stretch could deepen the maximum drawdown at all.
struct MaCrossAccount {
  MetricSums sums;
  double equity;
  DrawdownTracker dd;

  GT_HOST_DEVICE MaCrossAccount(std::size_t bars, double cash) : equity(cash), dd(cash) {
    sums.bars = bars;
    sums.initial_equity = cash;
  }

  // A trade entered at the fill of bar e and left at the fill of bar x; x == bars: still held at
  // the last close. The loop-carried chain is one multiplication (equity *= growth); drawdown
  // updates that need a division are guarded by multiplications and, after the first few trades,
  // rarely taken.
  GT_HOST_DEVICE void trade(const MaCrossBarFacts* facts, RangeTableView ranges, std::size_t e, std::size_t x) {
    const std::size_t n = sums.bars;
    const bool closed = x < n;
    const std::size_t last_held = closed ? x - 1 : n - 1;
    const MaCrossBarFacts& in = facts[e];
    const MaCrossBarFacts& held = facts[last_held];
    sums.sum_r += in.entry_r + held.exit_r;
    sums.sum_r2 += in.entry_r2 + held.exit_r2;
    sums.sum_down2 += in.entry_down2 + held.exit_down2;
    sums.held_bars += last_held - e + 1;

    hold(in, ranges, e, last_held);
    if (!closed) {  // marked to the last close
      equity = equity / in.entry_cost * held.next_value;
      return;
    }
    const double growth = held.next_value / in.entry_cost;
    const double cash = equity * growth;
    dd.mark(cash);
    sums.add_trade(equity * (growth - 1.0), growth - 1.0);  // exactly 0 for a scratch trade
    equity = cash;
  }

  // The drawdown of the closes e..last_held that a trade entered at bar e holds: equity over the
  // stretch is units * close, units = equity / entry_cost.
  GT_HOST_DEVICE void hold(const MaCrossBarFacts& in, RangeTableView ranges, std::size_t e, std::size_t last_held) {
    const RangeStats *left, *right;
    ranges.parts(e, last_held, left, right);
    const double low = smaller(left->low, right->low);
    const double high = larger(left->high, right->high);
    if (equity * low < dd.floor * in.entry_cost)  // its low under the peak carried in
      dd.deepen(1.0 - equity / in.entry_cost * low / dd.peak);
    if (low < high * (1.0 - dd.max_drawdown))  // a drawdown of its own may be deeper
      dd.deepen(
          larger(larger(dd.max_drawdown, left->drawdown), larger(right->drawdown, 1.0 - right->low / left->high)));
    if (equity * high > dd.peak * in.entry_cost)  // its high raises the peak
      dd.raise_peak(equity / in.entry_cost * high);
  }

  GT_HOST_DEVICE Metrics finish(double periods_per_year) {
    sums.final_equity = equity;
    sums.max_drawdown = dd.max_drawdown;
    return finalize_metrics(sums, periods_per_year);
  }
};

// Prefix sums of close-to-close returns through each bar (0 at bar 0): plain, squared, downside
// squared, summed as ma_cross_bar_facts sums them. The returns of any held stretch in O(1).
struct ReturnPrefix {
  double r, r2, down2;
};
std::vector<ReturnPrefix> close_return_prefix(std::span<const double> close);

// One combination's block sums (docs/SEMANTICS.md "Out-of-sample evidence") as host and device
// code write them: `starts` as block_starts makes them (blocks + 1 values), a ReturnSums per block
// whose count the caller sets.
struct BlockSumsView {
  const std::size_t* starts;
  std::size_t blocks;
  ReturnSums* sums;

  // The block of `bar`, searching forward from block `from` (trades visit bars in order).
  GT_HOST_DEVICE std::size_t block_of(std::size_t bar, std::size_t from = 0) const {
    while (from + 1 < blocks && starts[from + 1] <= bar) ++from;
    return from;
  }
  GT_HOST_DEVICE void add(std::size_t block, double r) const {
    sums[block].sum += r;
    sums[block].sum2 += r * r;
  }
  // The close-to-close returns of bars a..b (a >= 1), split at the blocks' ends by prefix sums.
  GT_HOST_DEVICE void add_held(const ReturnPrefix* prefix, std::size_t a, std::size_t b) const {
    for (std::size_t block = block_of(a); a <= b; ++block) {
      const std::size_t end = b < starts[block + 1] - 1 ? b : starts[block + 1] - 1;
      sums[block].sum += prefix[end].r - prefix[a - 1].r;
      sums[block].sum2 += prefix[end].r2 - prefix[a - 1].r2;
      a = end + 1;
    }
  }
  // The returns MaCrossAccount::trade books for a trade entered at the fill of bar e and left at
  // the fill of bar x (x == bars: held to the last close): the entry bar's against its cost, the
  // held closes', and the exit bar's.
  GT_HOST_DEVICE void add_trade(const double* close, const MaCrossBarFacts* facts, const ReturnPrefix* prefix,
                                std::size_t e, std::size_t x, std::size_t bars) const {
    add(block_of(e), close[e] / facts[e].entry_cost - 1.0);
    const std::size_t last_held = x < bars ? x - 1 : bars - 1;
    if (e + 1 <= last_held) add_held(prefix, e + 1, last_held);
    if (x < bars) add(block_of(x), facts[x - 1].next_value / close[x - 1] - 1.0);
  }
};

inline BlockSumsView view_of(const BlockReturns& blocks) {
  return {blocks.starts.data(), blocks.sums.size(), blocks.sums.data()};
}

// The indices 0..keys.size()-1 ordered by key, ties in index order: an LSD radix sort over the
// keys' width, up to 11 bits a pass (std::sort of tuples cost the CUDA engine's host 180 ms a
// million combinations). The engines visit combinations grouped by MA pair.
std::vector<std::uint32_t> order_by_key(std::span<const std::uint64_t> keys);

std::vector<MaCrossBarFacts> ma_cross_bar_facts(const Bars& bars, const ExecutionOptions& options);
// The moving-average periods and types an ma_cross grid needs (fast and slow values together),
// each sorted and without repeats.
std::vector<int> ma_cross_periods(const Grid& grid);
std::vector<int> ma_cross_types(const Grid& grid);

// An ma_cross grid's moving averages over one symbol's bars, every (type, period) row it reads as
// floats (cross_masks.hpp) with the resume points that give any 64 bars of it again in double
// precision (ind::ma_resume: the few bars near a tie need them; 4 bytes a bar and 16 a word
// instead of 12 a bar), and the bars whose volume passes the filter: what any combination's
// crossings are found from, O(bars / 64) each.
class MaCrossTables {
 public:
  MaCrossTables(const Bars& bars, const Grid& grid);
  ~MaCrossTables();
  std::size_t bars() const { return n_; }
  std::size_t words() const { return words_; }  // 64 bars a word
  std::size_t rows() const { return first_defined_.size(); }
  std::size_t row(int type, int period) const {
    return static_cast<std::size_t>(row_of_[static_cast<std::size_t>(type * (max_period_ + 1) + period)]);
  }
  // Bit t: the volume filter lets an entry at bar t through (volume above its 20-bar average).
  const std::vector<std::uint64_t>& volume_words() const { return volume_words_; }
  // The scratch `crossings` keeps a fast row's bounds in, for the slow rows crossed with it next.
  detail::CacheLineArray<float> bounds_scratch() const;
  // The crossings of the fast row over the slow one (cross_masks.hpp cross_events): `words()`
  // words each of up and down; `fast_bounds` holds, keeps or skips the fast row's bounds as
  // `bounds` says. `next_fast` and `next_slow`: the rows crossed next (SIZE_MAX: none), fetched
  // meanwhile.
  void crossings(std::size_t fast_row, std::size_t slow_row, float* fast_bounds, detail::FastBounds bounds,
                 std::uint64_t* up, std::uint64_t* down, std::size_t next_fast = SIZE_MAX,
                 std::size_t next_slow = SIZE_MAX) const;
  // Bars 64w .. 64w + count - 1 of a row in double precision (NaN where undefined).
  void exact_word(std::size_t row, std::size_t w, std::size_t count, double* out) const;
  // A combination's pair of averages as one number that orders the pairs by (type, fast, slow):
  // the order the crossover engines visit combinations in (order_by_key), so that a pair's
  // crossings serve all its combinations and a fast average's bounds all its pairs.
  std::uint64_t pair_key(const MaCrossParams& p) const {
    return row(p.ma_type, p.fast) * rows() + row(p.ma_type, p.slow);
  }

 private:
  struct RowAverage {
    ind::MaType type;
    int period;
  };
  std::size_t n_, words_, padded_;
  std::vector<double> close_;  // what the rows average
  int max_period_ = 0;
  detail::CacheLineArray<float> coarse_;           // padded MA rows, rounded to float
  detail::CacheLineVector<ind::MaResume> resume_;  // [row][word]
  std::vector<RowAverage> row_average_;            // per row
  std::vector<std::size_t> first_defined_;         // per row
  std::vector<int> row_of_;                        // [type][period] -> row
  std::vector<std::uint64_t> volume_words_;
};

// The crossings of the last pair of averages asked for, found again only when the pair changes
// (and the fast average's bounds only when it changes): what a visit in pair_key order reads. A
// fast average that the next pair does not share has its bounds computed in registers and not
// kept: a search's scattered pairs mostly change their fast average.
class PairCrossings {
 public:
  explicit PairCrossings(const MaCrossTables& tables)
      : tables_(tables), masks_(2 * tables.words()), bounds_(tables.bounds_scratch()) {}
  // `next`: the pair the caller asks for after this one, if it knows it (its rows are fetched
  // while this pair's are compared, and this fast average's bounds kept only if it shares it).
  void find(const MaCrossParams& p, const MaCrossParams* next = nullptr) {
    const std::size_t f = tables_.row(p.ma_type, p.fast), s = tables_.row(p.ma_type, p.slow);
    if (f == fast_row_ && s == slow_row_) return;
    std::size_t next_fast = SIZE_MAX, next_slow = SIZE_MAX;
    if (next != nullptr) {
      next_slow = tables_.row(next->ma_type, next->slow);
      if (const std::size_t nf = tables_.row(next->ma_type, next->fast); nf != f) next_fast = nf;
    }
    using detail::FastBounds;
    const FastBounds bounds = f == bounds_row_                           ? FastBounds::kReady
                              : next == nullptr || next_fast == SIZE_MAX ? FastBounds::kKeep
                                                                         : FastBounds::kOnce;
    tables_.crossings(f, s, bounds == FastBounds::kOnce ? nullptr : bounds_.get(), bounds, up(), down(), next_fast,
                      next_slow);
    if (bounds == FastBounds::kKeep) bounds_row_ = f;
    fast_row_ = f;
    slow_row_ = s;
  }
  const MaCrossTables& tables() const { return tables_; }
  std::uint64_t* up() { return masks_.data(); }
  std::uint64_t* down() { return masks_.data() + tables_.words(); }

 private:
  const MaCrossTables& tables_;
  std::vector<std::uint64_t> masks_;  // up, then down
  detail::CacheLineArray<float> bounds_;
  std::size_t fast_row_ = SIZE_MAX, slow_row_ = SIZE_MAX;
  std::size_t bounds_row_ = SIZE_MAX;  // the fast row whose bounds `bounds_` holds
};

// True for the studies the event-driven engines (this one and its CUDA twin) reproduce exactly:
// ma_cross, long-only, whole-equity entries.
bool ma_cross_engine_supports(const Grid& grid, const ExecutionOptions& options);

// nullptr when !ma_cross_engine_supports(grid, options): the caller then uses the reference path.
std::unique_ptr<Evaluator> make_ma_cross_evaluator(const Bars& bars, const Grid& grid, const ExecutionOptions& options);

}  // namespace gt
