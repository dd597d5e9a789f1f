// The CPU engine: crossings as bit masks (cross_masks.hpp), trades booked by MaCrossAccount.
#include "ma_cross_evaluator.hpp"

#include <immintrin.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_invoke.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <limits>
#include <new>
#include <utility>

#include "../strategies/signals.hpp"
#include "cross_masks.hpp"
#include "gt/indicators.hpp"
#include "gt/signal_rules.hpp"
#include "trade_lanes.hpp"

namespace gt {
namespace {

// Where the position changes, for entries S and exits R given as bit masks: the position is a
// set-reset latch, state_t = S_t | (state_{t-1} & ~R_t), which is exactly the carry chain of the
// addition (S | ~R) + S (generate S, propagate ~R & ~S). One add per 64 bars yields every state;
// `store_flips(flip, base, out)` writes the bars where it flips and returns their count. The flips
// alternate entry, exit, entry, ...; an odd count leaves the last position open. `flips` needs
// room for words*64 + 4 values. With `filter`, only entries whose bar has a filter bit count.
template <class StoreFlips>
inline std::size_t find_position_flips(const std::uint64_t* entries, const std::uint64_t* filter,
                                       const std::uint64_t* exits, std::size_t words, std::uint32_t* flips,
                                       StoreFlips store_flips) {
  std::size_t count = 0;
  unsigned char carry = 0;  // the state at the previous word's last bar
  for (std::size_t w = 0; w < words; ++w) {
    const std::uint64_t set = filter ? entries[w] & filter[w] : entries[w];
    const std::uint64_t propagate = set | ~exits[w];
    unsigned long long sum;
    carry = _addcarry_u64(carry, propagate, set, &sum);
    const std::uint64_t before = sum ^ propagate ^ set;  // bit t: the state at bar t-1
    const std::uint64_t flip = (set | (~exits[w] & before)) ^ before;
    count += store_flips(flip, static_cast<std::uint32_t>(w * 64), flips + count);
  }
  return count;
}

// The set bits of `flip` as base + index, without a data-dependent branch per bit (the unrolled
// store of simdjson's flatten_bits: most words hold at most four flips).
inline std::size_t store_set_bits(std::uint64_t flip, std::uint32_t base, std::uint32_t* out) {
  const auto n = static_cast<std::size_t>(std::popcount(flip));
  for (std::size_t j = 0; j < 4; ++j) {
    out[j] = base + static_cast<std::uint32_t>(std::countr_zero(flip));
    flip &= flip - 1;
    // Hides that `flip` may now be 0: GCC otherwise branches to a copy of the remaining stores for
    // that case, a branch that mispredicts on most words.
    asm("" : "+r"(flip));
  }
  for (std::size_t j = 4; j < n; ++j) {  // rare: five or more flips in 64 bars
    out[j] = base + static_cast<std::uint32_t>(std::countr_zero(flip));
    flip &= flip - 1;
  }
  return n;
}

__attribute__((target_clones("popcnt", "default"))) std::size_t position_flips(const std::uint64_t* entries,
                                                                               const std::uint64_t* filter,
                                                                               const std::uint64_t* exits,
                                                                               std::size_t words,
                                                                               std::uint32_t* flips) {
  return find_position_flips(entries, filter, exits, words, flips, store_set_bits);
}

// The same with BMI's tzcnt and blsr, which every CPU with the AVX-512 trade lanes has
// (target_clones ranks a "popcnt" clone above an "arch=haswell" one, so it cannot choose this).
__attribute__((target("popcnt,bmi"))) std::size_t position_flips_bmi(const std::uint64_t* entries,
                                                                     const std::uint64_t* filter,
                                                                     const std::uint64_t* exits, std::size_t words,
                                                                     std::uint32_t* flips) {
  return find_position_flips(entries, filter, exits, words, flips, store_set_bits);
}

// The same with AVX-512 VBMI2: the set bits' indices compressed out of 0..63 in one instruction,
// widened and stored eight at a time (a word's stores stay within the words*64 values).
#define GT_VBMI2_TARGET __attribute__((target("popcnt,avx512f,avx512bw,avx512vbmi2")))
// GCC 12 flags the deliberately undefined source operand inside its own AVX-512 intrinsics (GCC
// bug 105593, fixed in GCC 13).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// Eight indices (the low bytes of `indices`) plus the word's first bar, as one 32-byte store: most
// words hold fewer than eight flips, and at a flip's position a 64-byte store crosses a cache line
// fifteen times in sixteen, a 32-byte one seven.
GT_VBMI2_TARGET inline void store_eight(std::uint32_t* out, __m128i indices, __m256i base) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_add_epi32(_mm256_cvtepu8_epi32(indices), base));
}
GT_VBMI2_TARGET inline std::size_t store_set_bits_compressed(std::uint64_t flip, std::uint32_t base,
                                                             std::uint32_t* out) {
  alignas(64) static constexpr std::array<std::uint8_t, 64> kIndices = [] {
    std::array<std::uint8_t, 64> indices{};
    for (std::size_t i = 0; i < indices.size(); ++i) indices[i] = static_cast<std::uint8_t>(i);
    return indices;
  }();
  const __m512i set = _mm512_maskz_compress_epi8(flip, _mm512_load_si512(kIndices.data()));
  const __m256i offset = _mm256_set1_epi32(static_cast<int>(base));
  store_eight(out, _mm512_castsi512_si128(set), offset);
  const auto n = static_cast<std::size_t>(std::popcount(flip));
  if (n > 8) {  // rare: more than eight flips in 64 bars
    alignas(64) std::uint8_t indices[64];
    _mm512_store_si512(indices, set);
    for (std::size_t k = 8; k < n; k += 8)
      store_eight(out + k, _mm_loadl_epi64(reinterpret_cast<const __m128i*>(indices + k)), offset);
  }
  return n;
}

GT_VBMI2_TARGET std::size_t position_flips_vbmi2(const std::uint64_t* entries, const std::uint64_t* filter,
                                                 const std::uint64_t* exits, std::size_t words, std::uint32_t* flips) {
  return find_position_flips(entries, filter, exits, words, flips, store_set_bits_compressed);
}
#pragma GCC diagnostic pop

// position_flips where the AVX-512 trade lanes run.
using PositionFlips = std::size_t (*)(const std::uint64_t*, const std::uint64_t*, const std::uint64_t*, std::size_t,
                                      std::uint32_t*);
PositionFlips position_flips_for_lanes() {
  static const PositionFlips chosen = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vbmi2") && __builtin_cpu_supports("avx512bw") ? position_flips_vbmi2
                                                                                       : position_flips_bmi;
  }();
  return chosen;
}

// The float copies of the averages (cross_masks.hpp): a fifth of the set-up when left to SSE2.
__attribute__((target_clones("avx512f", "avx2", "default"))) void round_to_float(const double* in, float* out,
                                                                                 std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) out[i] = static_cast<float>(in[i]);
}

// Arrays on cache-line boundaries, uninitialized: a 64-byte load from them never spans two lines
// (malloc's 16-byte alignment splits every such load in three allocations of four, and the
// crossing masks make three a step).
struct CacheLineDelete {
  void operator()(void* p) const { ::operator delete[](p, std::align_val_t{64}); }
};
template <class T>
using CacheLineArray = std::unique_ptr<T[], CacheLineDelete>;
template <class T>
CacheLineArray<T> cache_line_array(std::size_t count) {
  return CacheLineArray<T>(static_cast<T*>(::operator new[](count * sizeof(T), std::align_val_t{64})));
}

class MaCrossEvaluator final : public Evaluator {
 public:
  MaCrossEvaluator(const Bars& bars, const Grid& grid, const ExecutionOptions& options)
      : n_(bars.size()),
        words_((bars.size() + 63) / 64),
        padded_(words_ * 64),
        cash_(options.cash),
        periods_per_year_(resolve_periods_per_year(bars, options)) {
    // The moving averages and the range table are the two large pieces: built side by side.
    tbb::parallel_invoke([&] { build_moving_averages(bars, grid); }, [&] { ranges_ = build_range_table(bars.close); });
    const auto volume_ok = signals::volume_above_average(bars);
    volume_words_.assign(words_, 0);
    for (std::size_t t = 0; t < n_; ++t)
      if (volume_ok[t]) volume_words_[t / 64] |= std::uint64_t{1} << (t % 64);

    lag_ = options.fill == Fill::kNextOpen ? 1 : 0;
    facts_ = ma_cross_bar_facts(bars, options);
  }

  std::string_view name() const override { return "ma_cross event-driven"; }

  void evaluate(std::span<const double> params, std::size_t stride, std::span<Metrics> out) const override {
    // Visit the combinations by (type, fast, slow) so that the fast series' bounds stay in L1 and
    // the slow series in L2 while their crossings are computed; results go back to their own slots.
    std::vector<std::uint64_t> keys(out.size());
    const std::uint64_t rows = first_defined_.size();  // types x periods; a row's index orders by type
    for (std::size_t i = 0; i < keys.size(); ++i) {
      const MaCrossParams p = decode_ma_cross(params.data() + i * stride);
      keys[i] = (row(p.ma_type, p.fast) * rows + row(p.ma_type, p.slow)) * 2 + (p.volume_filter ? 1 : 0);
    }
    const std::vector<std::uint32_t> order = order_by_key(keys);
    std::vector<std::uint64_t> masks(2 * words_);
    std::uint64_t* up = masks.data();
    std::uint64_t* down = up + words_;
    const bool lanes = detail::trade_lanes_supported();
    const PositionFlips lane_flips = position_flips_for_lanes();
    FlipStore stored(lanes ? out.size() : 0, 64);
    std::vector<std::uint32_t> flips(lanes ? 0 : padded_ + 4);
    const auto fast_bounds = cache_line_array<float>(2 * padded_);
    std::size_t last_fast_row = rows, last_slow_row = rows;
    for (const std::uint32_t i : order) {
      const MaCrossParams p = decode_ma_cross(params.data() + i * stride);
      const std::size_t f = row(p.ma_type, p.fast), s = row(p.ma_type, p.slow);
      if (f != last_fast_row || s != last_slow_row) {
        detail::cross_events({series_.get() + f * padded_, coarse_.get() + f * padded_},
                             {series_.get() + s * padded_, coarse_.get() + s * padded_}, fast_bounds.get(),
                             f == last_fast_row, n_, std::max(first_defined_[f], first_defined_[s]), up, down);
        last_fast_row = f;
        last_slow_row = s;
      }
      const std::uint64_t* filter = p.volume_filter ? volume_words_.data() : nullptr;
      if (lanes) {
        stored.add(i, lane_flips(up, filter, down, words_, stored.next(padded_ + 4)));
      } else {
        const std::size_t count = position_flips(up, filter, down, words_, flips.data());
        out[i] = simulate({flips.data(), count});
      }
    }
    if (lanes) book_in_lanes(stored, out);
  }

 private:
  // The flips of every combination of one evaluate() call, one combination after another, until
  // they are booked in lanes.
  class FlipStore {
   public:
    // Room for `combinations` of about `typical` flips each, so that most calls never grow it.
    FlipStore(std::size_t combinations, std::size_t typical)
        : flips_(std::make_unique_for_overwrite<std::uint32_t[]>(combinations * typical)),
          capacity_(combinations * typical) {
      combinations_.reserve(combinations);
    }
    // Where the next combination's flips go: room for `most` values. Grows without zero-filling.
    std::uint32_t* next(std::size_t most) {
      if (capacity_ < used_ + most) {
        capacity_ = 2 * (used_ + most);
        auto grown = std::make_unique_for_overwrite<std::uint32_t[]>(capacity_);
        std::copy_n(flips_.get(), used_, grown.get());
        flips_ = std::move(grown);
      }
      return flips_.get() + used_;
    }
    // The flips just written at next() belong to result `slot`.
    void add(std::uint32_t slot, std::size_t count) {
      combinations_.push_back({slot, static_cast<std::uint32_t>(count), used_});
      used_ += count;
    }
    struct Combination {
      std::uint32_t slot, count;
      std::size_t first;
    };
    std::span<const Combination> combinations() const { return combinations_; }
    const std::uint32_t* flips(const Combination& c) const { return flips_.get() + c.first; }

   private:
    std::unique_ptr<std::uint32_t[]> flips_;
    std::size_t capacity_ = 0;
    std::vector<Combination> combinations_;
    std::size_t used_ = 0;
  };

  // Books the stored combinations eight at a time (detail::book_trade_lanes) and writes their
  // metrics. A batch runs as many steps as its busiest lane has trades, so the combinations are
  // batched in order of their flip counts: grid order left a third of the lanes' steps idle (a
  // volume-filtered combination trades about half as often as its unfiltered neighbour).
  void book_in_lanes(const FlipStore& stored, std::span<Metrics> out) const {
    const auto combinations = stored.combinations();
    std::vector<std::uint64_t> counts(combinations.size());
    for (std::size_t c = 0; c < counts.size(); ++c) counts[c] = combinations[c].count;
    const std::vector<std::uint32_t> by_count = order_by_key(counts);
    constexpr std::size_t kLanes = detail::kTradeLanes;
    std::vector<std::uint32_t> lane_major;  // flip j of lane l at [j * kLanes + l] (trade_lanes.hpp)
    for (std::size_t first = 0; first < by_count.size(); first += kLanes) {
      const std::size_t used = std::min(kLanes, by_count.size() - first);
      const std::size_t steps = (combinations[by_count[first + used - 1]].count + 1) / 2;  // the busiest lane's
      lane_major.resize(std::max(lane_major.size(), (2 * steps + 7) / 8 * 8 * kLanes));
      const std::uint32_t* lane_flips[kLanes];
      std::uint32_t lane_counts[kLanes];
      for (std::size_t l = 0; l < kLanes; ++l) {
        lane_flips[l] = l < used ? stored.flips(combinations[by_count[first + l]]) : nullptr;
        lane_counts[l] = l < used ? combinations[by_count[first + l]].count : 0;
      }
      detail::lay_out_lanes(lane_flips, lane_counts, static_cast<std::uint32_t>(n_), steps, lane_major.data());
      detail::LaneAccounts accounts;
      detail::book_trade_lanes(facts_.data(), {ranges_.data(), n_}, n_, lag_, cash_, {lane_major.data(), steps},
                               accounts);
      double annual_growth[kLanes];
      detail::annual_growth_lanes(accounts, periods_per_year_, annual_growth);
      for (std::size_t l = 0; l < used; ++l)
        out[combinations[by_count[first + l]].slot] =
            finalize_metrics(accounts.sums[l], periods_per_year_, annual_growth[l]);
    }
  }

  void build_moving_averages(const Bars& bars, const Grid& grid) {
    const std::vector<int> periods = ma_cross_periods(grid);
    max_period_ = periods.back();
    const std::vector<int> types = ma_cross_types(grid);
    row_of_.assign(3 * static_cast<std::size_t>(max_period_ + 1), -1);
    const std::size_t rows = types.size() * periods.size();
    for (std::size_t ti = 0; ti < types.size(); ++ti)
      for (std::size_t r = 0; r < periods.size(); ++r)
        row_of_[static_cast<std::size_t>(types[ti] * (max_period_ + 1) + periods[r])] =
            static_cast<int>(ti * periods.size() + r);
    series_ = cache_line_array<double>(rows * padded_);  // written below
    coarse_ = cache_line_array<float>(rows * padded_);
    first_defined_.assign(rows, 0);
    // Blocks of eight periods (ma_many_into's SIMD width) of every type side by side, so that the
    // cores share the work evenly.
    constexpr std::size_t kBlock = 8;
    const std::size_t blocks = (periods.size() + kBlock - 1) / kBlock;
    tbb::parallel_for(std::size_t{0}, types.size() * blocks, [&](std::size_t task) {
      const std::size_t first_row = task / blocks * periods.size() + task % blocks * kBlock;
      const auto block = std::span<const int>(periods).subspan(task % blocks * kBlock);
      const std::size_t count = std::min(kBlock, block.size());
      double* rows_out = series_.get() + first_row * padded_;
      ind::ma_many_into(static_cast<ind::MaType>(types[task / blocks]), bars.close, block.first(count), rows_out,
                        padded_);
      for (std::size_t r = 0; r < count; ++r) {
        double* values = rows_out + r * padded_;
        // NaN past the last bar, so that whole words compare false there.
        std::fill(values + n_, values + padded_, std::numeric_limits<double>::quiet_NaN());
        round_to_float(values, coarse_.get() + (values - series_.get()), padded_);
        std::size_t first = 0;
        while (first < n_ && std::isnan(values[first])) ++first;
        first_defined_[first_row + r] = first;
      }
    });
  }

  std::size_t row(int type, int period) const {
    return static_cast<std::size_t>(row_of_[static_cast<std::size_t>(type * (max_period_ + 1) + period)]);
  }

  // One combination's trades and metrics, from the bars where its signal position flips.
  Metrics simulate(std::span<const std::uint32_t> flips) const {
    MaCrossAccount account(n_, cash_);
    const RangeTableView ranges{ranges_.data(), n_};
    for (std::size_t j = 0; j < flips.size(); j += 2) {
      const std::size_t e = flips[j] + lag_;
      if (e >= n_) break;  // an entry whose fill would come after the last bar
      const std::size_t x = j + 1 < flips.size() ? std::min<std::size_t>(flips[j + 1] + lag_, n_) : n_;
      account.trade(facts_.data(), ranges, e, x);
    }
    return account.finish(periods_per_year_);
  }

  std::size_t n_, words_, padded_, lag_ = 1;
  double cash_, periods_per_year_;
  int max_period_ = 0;
  CacheLineArray<double> series_;           // padded MA rows
  CacheLineArray<float> coarse_;            // the same rows rounded to float
  std::vector<std::size_t> first_defined_;  // per row
  std::vector<int> row_of_;                 // [type][period] -> row
  std::vector<std::uint64_t> volume_words_;
  std::vector<MaCrossBarFacts> facts_;  // one cache line per bar
  std::vector<RangeStats> ranges_;      // build_range_table(closes)
};

}  // namespace

std::vector<std::uint32_t> order_by_key(std::span<const std::uint64_t> keys) {
  // Digits of up to 11 bits, fewer for fewer keys: clearing 2^11 counters a pass would cost more
  // than sorting the few hundred combinations of an optimizer chunk.
  const int bits = std::clamp(static_cast<int>(std::bit_width(keys.size())), 4, 11);
  const std::size_t buckets = std::size_t{1} << bits;
  std::vector<std::uint32_t> order(keys.size()), next(keys.size());
  for (std::uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::uint64_t all = 0;
  for (const std::uint64_t k : keys) all |= k;
  std::vector<std::size_t> start(buckets);
  const auto width = static_cast<int>(std::bit_width(all));
  for (int shift = 0; shift < width; shift += bits) {
    std::fill(start.begin(), start.end(), 0);
    for (const std::uint64_t k : keys) ++start[(k >> shift) & (buckets - 1)];
    std::size_t at = 0;
    for (auto& s : start) at += std::exchange(s, at);
    for (const std::uint32_t i : order) next[start[(keys[i] >> shift) & (buckets - 1)]++] = i;
    order.swap(next);
  }
  return order;
}

std::vector<RangeStats> build_range_table(std::span<const double> x) {
  // Drawdown of `left` followed by `right`: the deeper of each one's, and of right's low under
  // left's high.
  const auto join = [](const RangeStats& left, const RangeStats& right) {
    return RangeStats{std::max(left.high, right.high), std::min(left.low, right.low),
                      std::max({left.drawdown, right.drawdown, 1.0 - right.low / left.high})};
  };
  const std::size_t n = x.size();
  const std::size_t levels = std::max<std::size_t>(1, static_cast<std::size_t>(std::bit_width(n)));
  std::vector<RangeStats> table(levels * n);
  for (std::size_t level = 0; level < levels; ++level) {
    const std::size_t half = std::size_t{1} << level;
    RangeStats* row = table.data() + level * n;
    for (std::size_t mid = half; mid < n + half; mid += 2 * half) {
      // Left part: [i, mid-1], built leftwards from mid-1.
      if (mid - 1 < n) {
        RangeStats acc{x[mid - 1], x[mid - 1], 0.0};
        row[mid - 1] = acc;
        for (std::size_t i = mid - 1; i-- > mid - half;) {
          acc = join({x[i], x[i], 0.0}, acc);
          row[i] = acc;
        }
      }
      // Right part: [mid, j], built rightwards from mid.
      if (mid < n) {
        RangeStats acc{x[mid], x[mid], 0.0};
        row[mid] = acc;
        for (std::size_t j = mid + 1; j < std::min(n, mid + half); ++j) {
          acc = join(acc, {x[j], x[j], 0.0});
          row[j] = acc;
        }
      }
    }
  }
  return table;
}

std::vector<MaCrossBarFacts> ma_cross_bar_facts(const Bars& bars, const ExecutionOptions& options) {
  // Per-bar fill factors of docs/SEMANTICS.md "Fills and costs" with these options: what one unit costs on entry
  // (slippage and commission included) and what it returns on exit.
  const bool next_open = options.fill == Fill::kNextOpen;
  const double slip = options.slippage_bps / 10000.0;
  const auto& fill_price = next_open ? bars.open : bars.close;
  const auto& close = bars.close;
  const std::size_t n = bars.size();
  std::vector<MaCrossBarFacts> facts(n);
  double sum_r = 0, sum_r2 = 0, sum_down2 = 0;  // prefix sums of close-to-close returns
  for (std::size_t t = 0; t < n; ++t) {
    if (t) {
      const double r = close[t] / close[t - 1] - 1.0;
      sum_r += r;
      sum_r2 += r * r;
      sum_down2 += r < 0 ? r * r : 0.0;
    }
    MaCrossBarFacts& f = facts[t];
    f.entry_cost = fill_price[t] * (1.0 + slip) * (1.0 + options.commission);
    const double entry_return = close[t] / f.entry_cost - 1.0;
    f.entry_r = entry_return - sum_r;
    f.entry_r2 = entry_return * entry_return - sum_r2;
    f.entry_down2 = (entry_return < 0 ? entry_return * entry_return : 0.0) - sum_down2;
    f.next_value = close[t];
    f.exit_r = sum_r;
    f.exit_r2 = sum_r2;
    f.exit_down2 = sum_down2;
    if (t + 1 < n) {
      const double proceeds = fill_price[t + 1] * (1.0 - slip);
      f.next_value = proceeds - proceeds * options.commission;
      const double exit_return = f.next_value / close[t] - 1.0;
      f.exit_r += exit_return;
      f.exit_r2 += exit_return * exit_return;
      f.exit_down2 += exit_return < 0 ? exit_return * exit_return : 0.0;
    }
  }
  return facts;
}

namespace {
std::vector<double> axis_values(const Grid& grid, std::size_t param) {
  for (const auto& axis : grid.axes())
    if (axis.param == param) return axis.values;
  return {grid.base()[param]};
}
}  // namespace

std::vector<int> ma_cross_periods(const Grid& grid) {
  std::vector<int> periods;
  for (double v : axis_values(grid, 0)) periods.push_back(static_cast<int>(v));
  for (double v : axis_values(grid, 1)) periods.push_back(static_cast<int>(v));
  std::sort(periods.begin(), periods.end());
  periods.erase(std::unique(periods.begin(), periods.end()), periods.end());
  return periods;
}

std::vector<int> ma_cross_types(const Grid& grid) {
  std::vector<int> types;
  for (double v : axis_values(grid, 2)) types.push_back(static_cast<int>(v));
  std::sort(types.begin(), types.end());
  types.erase(std::unique(types.begin(), types.end()), types.end());
  return types;
}

bool ma_cross_engine_supports(const Grid& grid, const ExecutionOptions& options) {
  return grid.strategy().grid_engine == GridEngine::kMaCross && !options.allow_short && options.size == 1.0;
}

std::unique_ptr<Evaluator> make_ma_cross_evaluator(const Bars& bars, const Grid& grid,
                                                   const ExecutionOptions& options) {
  if (!ma_cross_engine_supports(grid, options)) return nullptr;
  return std::make_unique<MaCrossEvaluator>(bars, grid, options);
}

}  // namespace gt
