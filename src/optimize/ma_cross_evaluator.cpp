// The CPU engine: crossings as bit masks (cross_masks.hpp), trades booked by MaCrossAccount.
#include "ma_cross_evaluator.hpp"

#include <immintrin.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_invoke.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <limits>
#include <optional>
#include <utility>

#include "../strategies/signals.hpp"
#include "cross_masks.hpp"
#include "gt/indicators.hpp"
#include "gt/signal_rules.hpp"
#include "long_trades.hpp"

namespace gt {
namespace {

class MaCrossEvaluator final : public Evaluator {
 public:
  MaCrossEvaluator(const Bars& bars, const Grid& grid, const ExecutionOptions& options) : strategy_(grid.strategy()) {
    // The moving averages and the book's range table are the two large pieces: built side by side.
    tbb::parallel_invoke([&] { tables_.emplace(bars, grid); }, [&] { book_.emplace(bars, options); });
  }

  std::string_view name() const override { return "ma_cross event-driven"; }

  void evaluate(std::span<const double> params, std::size_t stride, std::span<Metrics> out) const override {
    evaluate_with_blocks(params, stride, out, {}, {});
  }

  void evaluate_with_blocks(std::span<const double> params, std::size_t stride, std::span<Metrics> out,
                            std::span<const std::size_t> starts, std::span<ReturnSums> blocks) const override {
    const MaCrossTables& tables = *tables_;
    const std::size_t per = starts.empty() ? 0 : starts.size() - 1;
    // Visit the combinations by (type, fast, slow) so that the fast series' bounds stay in L1 and
    // the slow series in L2 while their crossings are computed; results go back to their own slots.
    std::vector<std::uint64_t> keys(out.size());
    for (std::size_t i = 0; i < keys.size(); ++i) {
      const MaCrossParams p = decode_ma_cross(params.data() + i * stride);
      keys[i] = tables.pair_key(p) * 2 + (p.volume_filter ? 1 : 0);
    }
    const std::vector<std::uint32_t> order = order_by_key(keys);
    detail::LongTradeBook::Batch batch(*book_, out);
    PairCrossings crossings(tables);
    std::size_t next_pair = 0;  // where in `order` the pair after the current one starts
    for (std::size_t at = 0; at < order.size(); ++at) {
      const std::uint32_t i = order[at];
      const MaCrossParams p = decode_ma_cross(params.data() + i * stride);
      if (at == next_pair) {  // a new pair: the next one's rows are fetched while its crossings are found
        while (next_pair < order.size() && keys[order[next_pair]] / 2 == keys[i] / 2) ++next_pair;
        const std::optional<MaCrossParams> next =
            next_pair < order.size() ? std::optional(decode_ma_cross(params.data() + order[next_pair] * stride))
                                     : std::nullopt;
        crossings.find(p, next ? &*next : nullptr);
      }
      const BlockReturns own{starts, blocks.subspan(i * per, per)};
      batch.add(i, crossings.up(), p.volume_filter ? tables.volume_words().data() : nullptr, crossings.down(),
                strategy_.exits_of(params.subspan(i * stride, stride)), per ? &own : nullptr);
    }
    batch.finish();
  }

 private:
  const Strategy& strategy_;
  std::optional<MaCrossTables> tables_;        // set in the constructor
  std::optional<detail::LongTradeBook> book_;  // set in the constructor
};

}  // namespace

MaCrossTables::MaCrossTables(const Bars& bars, const Grid& grid)
    : n_(bars.size()), words_((bars.size() + 63) / 64), padded_(words_ * 64), close_(bars.close) {
  const std::vector<int> periods = ma_cross_periods(grid);
  max_period_ = periods.back();
  const std::vector<int> types = ma_cross_types(grid);
  row_of_.assign(3 * static_cast<std::size_t>(max_period_ + 1), -1);
  const std::size_t rows = types.size() * periods.size();
  for (std::size_t ti = 0; ti < types.size(); ++ti)
    for (std::size_t r = 0; r < periods.size(); ++r) {
      row_of_[static_cast<std::size_t>(types[ti] * (max_period_ + 1) + periods[r])] =
          static_cast<int>(ti * periods.size() + r);
      row_average_.push_back({static_cast<ind::MaType>(types[ti]), periods[r]});
    }
  coarse_ = detail::cache_line_array<float>(rows * padded_);
  resume_.resize(rows * words_);
  first_defined_.assign(rows, 0);
  // Blocks of eight periods (ma_many_into's SIMD width) of every type side by side, so that the
  // cores share the work evenly. Each block's doubles go through a scratch of its thread: only
  // their floats and resume points are kept.
  constexpr std::size_t kBlock = 8;
  const std::size_t blocks = (periods.size() + kBlock - 1) / kBlock;
  tbb::enumerable_thread_specific<std::vector<double>> scratch;
  tbb::parallel_for(std::size_t{0}, types.size() * blocks, [&](std::size_t task) {
    const std::size_t first_row = task / blocks * periods.size() + task % blocks * kBlock;
    const auto block = std::span<const int>(periods).subspan(task % blocks * kBlock);
    const std::size_t count = std::min(kBlock, block.size());
    std::vector<double>& rows_out = scratch.local();
    rows_out.resize(kBlock * padded_);
    ind::ma_many_into(static_cast<ind::MaType>(types[task / blocks]), bars.close, block.first(count), rows_out.data(),
                      padded_, resume_.data() + first_row * words_);
    for (std::size_t r = 0; r < count; ++r) {
      double* values = rows_out.data() + r * padded_;
      // NaN past the last bar, so that whole words compare false there.
      std::fill(values + n_, values + padded_, std::numeric_limits<double>::quiet_NaN());
      detail::round_to_float(values, coarse_.get() + (first_row + r) * padded_, padded_);
      std::size_t first = 0;
      while (first < n_ && std::isnan(values[first])) ++first;
      first_defined_[first_row + r] = first;
    }
  });
  const auto volume_ok = signals::volume_above_average(bars);
  volume_words_.assign(words_, 0);
  for (std::size_t t = 0; t < n_; ++t)
    if (volume_ok[t]) volume_words_[t / 64] |= std::uint64_t{1} << (t % 64);
}

MaCrossTables::~MaCrossTables() = default;

detail::CacheLineArray<float> MaCrossTables::bounds_scratch() const {
  return detail::cache_line_array<float>(2 * padded_);
}

// A word of the crossing masks is one stride of the resume points.
static_assert(ind::kResumeStride == 64);

void MaCrossTables::exact_word(std::size_t row, std::size_t w, std::size_t count, double* out) const {
  const std::size_t to = std::min(n_, w * 64 + count);
  const RowAverage& a = row_average_[row];
  if (to > w * 64) ind::ma_resume(a.type, close_, a.period, resume_[row * words_ + w], w, to, out);
  std::fill(out + (to > w * 64 ? to - w * 64 : 0), out + count, std::numeric_limits<double>::quiet_NaN());
}

namespace {
// One row's doubles for cross_events, computed again from the tables' resume points.
class RowDoubles final : public detail::ExactSource {
 public:
  RowDoubles(const MaCrossTables& tables, std::size_t row) : tables_(tables), row_(row) {}
  void word(std::size_t w, std::size_t count, double* out) const override { tables_.exact_word(row_, w, count, out); }

 private:
  const MaCrossTables& tables_;
  std::size_t row_;
};
}  // namespace

void MaCrossTables::crossings(std::size_t fast_row, std::size_t slow_row, float* fast_bounds, detail::FastBounds bounds,
                              std::uint64_t* up, std::uint64_t* down, std::size_t next_fast,
                              std::size_t next_slow) const {
  const std::size_t f = fast_row, s = slow_row;
  const RowDoubles fast(*this, f), slow(*this, s);
  const auto row_or_null = [&](std::size_t row) { return row == SIZE_MAX ? nullptr : coarse_.get() + row * padded_; };
  detail::cross_events({nullptr, coarse_.get() + f * padded_, &fast}, {nullptr, coarse_.get() + s * padded_, &slow},
                       fast_bounds, bounds, n_, std::max(first_defined_[f], first_defined_[s]), up, down,
                       {{row_or_null(next_slow), row_or_null(next_fast)}});
}

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

detail::CacheLineVector<RangeStats> build_range_table(std::span<const double> x) {
  // Drawdown of `left` followed by `right`: the deeper of each one's, and of right's low under
  // left's high.
  const auto join = [](const RangeStats& left, const RangeStats& right) {
    return RangeStats{std::max(left.high, right.high), std::min(left.low, right.low),
                      std::max({left.drawdown, right.drawdown, 1.0 - right.low / left.high})};
  };
  const std::size_t n = x.size();
  const std::size_t levels = std::max<std::size_t>(1, static_cast<std::size_t>(std::bit_width(n)));
  detail::CacheLineVector<RangeStats> table(levels * n);
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

std::vector<ReturnPrefix> close_return_prefix(std::span<const double> close) {
  std::vector<ReturnPrefix> prefix(close.size(), ReturnPrefix{0, 0, 0});
  for (std::size_t t = 1; t < close.size(); ++t) {
    const double r = close[t] / close[t - 1] - 1.0;
    const ReturnPrefix& before = prefix[t - 1];
    prefix[t] = {before.r + r, before.r2 + r * r, before.down2 + (r < 0 ? r * r : 0.0)};
  }
  return prefix;
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
  const std::vector<ReturnPrefix> prefix = close_return_prefix(close);
  for (std::size_t t = 0; t < n; ++t) {
    const double sum_r = prefix[t].r, sum_r2 = prefix[t].r2, sum_down2 = prefix[t].down2;
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
  return grid.strategy().grid_engine == GridEngine::kMaCross && detail::LongTradeBook::serves(options);
}

std::unique_ptr<Evaluator> make_ma_cross_evaluator(const Bars& bars, const Grid& grid,
                                                   const ExecutionOptions& options) {
  if (!ma_cross_engine_supports(grid, options)) return nullptr;
  return std::make_unique<MaCrossEvaluator>(bars, grid, options);
}

}  // namespace gt
