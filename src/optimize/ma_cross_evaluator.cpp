// How the metrics come out in O(1) per trade, equal to the reference engine up to rounding:
// an entry commits the whole equity E, so the cash is exactly 0 while long and the equity at a
// close is units * close, units = E / entry_cost[e]. The entry bar and the exit bar return what
// the reference computes; every bar in between returns close[k]/close[k-1] - 1, whose sums
// (plain, squared, downside squared) come from prefix sums; flat bars return 0. A trade turns E
// into E * exit_value[x] / entry_cost[e]. The drawdown inside a held stretch comes from a
// disjoint sparse table over the closes: (highest, lowest, deepest drawdown) of any range in
// O(1), and only when the range could deepen the maximum drawdown at all.
#include "ma_cross_evaluator.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

#include "../strategies/signals.hpp"
#include "cross_masks.hpp"
#include "gt/indicators.hpp"

namespace gt {
namespace {

// Highest and lowest close and the deepest drawdown of a range of closes.
struct RangeStats {
  double high, low, drawdown;
};

// Drawdown of `left` followed by `right`: the deeper of each one's, and of right's low under
// left's high.
inline RangeStats join(const RangeStats& left, const RangeStats& right) {
  return {std::max(left.high, right.high), std::min(left.low, right.low),
          std::max({left.drawdown, right.drawdown, 1.0 - right.low / left.high})};
}

// O(1) range queries of RangeStats (a disjoint sparse table: per level, the stats from each bar
// to the middle of its block, so that any range is one left part joined to one right part).
class RangeTable {
 public:
  RangeTable() = default;
  explicit RangeTable(std::span<const double> x) : n_(x.size()) {
    levels_ = std::max<std::size_t>(1, static_cast<std::size_t>(std::bit_width(n_)));
    table_.resize(levels_ * n_);
    for (std::size_t level = 0; level < levels_; ++level) {
      const std::size_t half = std::size_t{1} << level;
      RangeStats* row = table_.data() + level * n_;
      for (std::size_t mid = half; mid < n_ + half; mid += 2 * half) {
        // Left part: [i, mid-1], built leftwards from mid-1.
        if (mid - 1 < n_) {
          RangeStats acc{x[mid - 1], x[mid - 1], 0.0};
          row[mid - 1] = acc;
          for (std::size_t i = mid - 1; i-- > mid - half;) {
            acc = join({x[i], x[i], 0.0}, acc);
            row[i] = acc;
          }
        }
        // Right part: [mid, j], built rightwards from mid.
        if (mid < n_) {
          RangeStats acc{x[mid], x[mid], 0.0};
          row[mid] = acc;
          for (std::size_t j = mid + 1; j < std::min(n_, mid + half); ++j) {
            acc = join(acc, {x[j], x[j], 0.0});
            row[j] = acc;
          }
        }
      }
    }
    values_.assign(x.begin(), x.end());
  }

  // The two parts whose join is [first, last] (inclusive); first < last.
  std::pair<const RangeStats*, const RangeStats*> parts(std::size_t first, std::size_t last) const {
    const std::size_t level = static_cast<std::size_t>(std::bit_width(first ^ last) - 1);
    const RangeStats* row = table_.data() + level * n_;
    return {row + first, row + last};
  }
  double value(std::size_t i) const { return values_[i]; }

 private:
  std::size_t n_ = 0, levels_ = 0;
  std::vector<RangeStats> table_;
  std::vector<double> values_;
};

// Index of the first set bit at or after `from`, or n.
inline std::size_t next_bit(const std::uint64_t* words, std::size_t count, std::size_t from, std::size_t n) {
  if (from >= n) return n;
  std::size_t w = from / 64;
  std::uint64_t word = words[w] & (~std::uint64_t{0} << (from % 64));
  while (word == 0) {
    if (++w >= count) return n;
    word = words[w];
  }
  return std::min(n, w * 64 + static_cast<std::size_t>(std::countr_zero(word)));
}

class MaCrossEvaluator final : public Evaluator {
 public:
  MaCrossEvaluator(const Bars& bars, const Grid& grid, const ExecutionOptions& options)
      : n_(bars.size()), words_((bars.size() + 63) / 64), padded_(words_ * 64), cash_(options.cash),
        periods_per_year_(resolve_periods_per_year(bars, options)) {
    build_moving_averages(bars, grid);
    const auto volume_ok = signals::volume_above_average(bars);
    volume_words_.assign(words_, 0);
    for (std::size_t t = 0; t < n_; ++t)
      if (volume_ok[t]) volume_words_[t / 64] |= std::uint64_t{1} << (t % 64);

    // Per-bar fill factors of SPEC §3 with these options: what one unit costs on entry
    // (slippage and commission included) and what it returns on exit.
    lag_ = options.fill == Fill::kNextOpen ? 1 : 0;
    const double slip = options.slippage_bps / 10000.0;
    const auto& fill_price = lag_ ? bars.open : bars.close;
    entry_cost_.resize(n_);
    exit_value_.resize(n_);
    entry_return_.resize(n_);
    exit_return_.resize(n_);
    for (std::size_t t = 0; t < n_; ++t) {
      entry_cost_[t] = fill_price[t] * (1.0 + slip) * (1.0 + options.commission);
      const double proceeds = fill_price[t] * (1.0 - slip);
      exit_value_[t] = proceeds - proceeds * options.commission;
      entry_return_[t] = bars.close[t] / entry_cost_[t] - 1.0;
      exit_return_[t] = t ? exit_value_[t] / bars.close[t - 1] - 1.0 : 0.0;
    }
    sum_r_.assign(n_, 0.0);
    sum_r2_.assign(n_, 0.0);
    sum_down2_.assign(n_, 0.0);
    for (std::size_t k = 1; k < n_; ++k) {
      const double r = bars.close[k] / bars.close[k - 1] - 1.0;
      sum_r_[k] = sum_r_[k - 1] + r;
      sum_r2_[k] = sum_r2_[k - 1] + r * r;
      sum_down2_[k] = sum_down2_[k - 1] + (r < 0 ? r * r : 0.0);
    }
    ranges_ = RangeTable(bars.close);
  }

  std::string_view name() const override { return "ma_cross event-driven"; }

  void evaluate(std::span<const double> params, std::size_t stride, std::span<Metrics> out) const override {
    std::vector<std::uint64_t> masks(5 * words_);
    std::uint64_t* above = masks.data();
    std::uint64_t* below = above + words_;
    std::uint64_t* up = below + words_;
    std::uint64_t* down = up + words_;
    std::uint64_t* entries = down + words_;
    int last_type = -1, last_fast = -1, last_slow = -1;
    for (std::size_t i = 0; i < out.size(); ++i) {
      const double* p = params.data() + i * stride;
      const int fast = static_cast<int>(p[0]), slow = static_cast<int>(p[1]), type = static_cast<int>(p[2]);
      if (type != last_type || fast != last_fast || slow != last_slow) {
        crossings(type, fast, slow, above, below, up, down);
        last_type = type;
        last_fast = fast;
        last_slow = slow;
      }
      const std::uint64_t* entry_words = up;
      if (p[3] != 0) {
        for (std::size_t w = 0; w < words_; ++w) entries[w] = up[w] & volume_words_[w];
        entry_words = entries;
      }
      out[i] = simulate(entry_words, down);
    }
  }

 private:
  void build_moving_averages(const Bars& bars, const Grid& grid) {
    auto values_of = [&](std::size_t param) {
      for (const auto& axis : grid.axes())
        if (axis.param == param) return axis.values;
      return std::vector<double>{grid.base()[param]};
    };
    std::vector<int> periods;
    for (double v : values_of(0)) periods.push_back(static_cast<int>(v));
    for (double v : values_of(1)) periods.push_back(static_cast<int>(v));
    std::sort(periods.begin(), periods.end());
    periods.erase(std::unique(periods.begin(), periods.end()), periods.end());
    max_period_ = periods.back();
    std::vector<double> types = values_of(2);
    row_of_.assign(3 * static_cast<std::size_t>(max_period_ + 1), -1);
    // One padded row per (type, period), NaN beyond the last bar so whole words compare false.
    series_.assign(types.size() * periods.size() * padded_, std::numeric_limits<double>::quiet_NaN());
    int row = 0;
    for (double t : types) {
      const int type = static_cast<int>(t);
      const auto matrix = ind::ma_many(static_cast<ind::MaType>(type), bars.close, periods);
      for (std::size_t r = 0; r < periods.size(); ++r, ++row) {
        const auto values = matrix.row(r);
        std::copy(values.begin(), values.end(), series_.begin() + static_cast<std::ptrdiff_t>(row * padded_));
        std::size_t first = 0;
        while (first < n_ && std::isnan(values[first])) ++first;
        first_defined_.push_back(first);
        row_of_[static_cast<std::size_t>(type * (max_period_ + 1) + periods[r])] = row;
      }
    }
  }

  // Cross-above and cross-below bits of fast over slow (SPEC §5): above at t and at-or-below
  // (both defined) at t-1, and the mirror image.
  void crossings(int type, int fast, int slow, std::uint64_t* above, std::uint64_t* below, std::uint64_t* up,
                 std::uint64_t* down) const {
    const auto f = static_cast<std::size_t>(row_of_[static_cast<std::size_t>(type * (max_period_ + 1) + fast)]);
    const auto s = static_cast<std::size_t>(row_of_[static_cast<std::size_t>(type * (max_period_ + 1) + slow)]);
    detail::cross_masks(series_.data() + f * padded_, series_.data() + s * padded_, padded_, above, below);
    const std::size_t defined_from = std::max(first_defined_[f], first_defined_[s]);
    std::uint64_t carry_le = 0, carry_ge = 0;
    for (std::size_t w = 0; w < words_; ++w) {
      std::uint64_t defined = ~std::uint64_t{0};
      if (defined_from >= (w + 1) * 64) defined = 0;
      else if (defined_from > w * 64) defined = ~std::uint64_t{0} << (defined_from - w * 64);
      const std::uint64_t le = defined & ~above[w];
      const std::uint64_t ge = defined & ~below[w];
      up[w] = above[w] & ((le << 1) | carry_le);
      down[w] = below[w] & ((ge << 1) | carry_ge);
      carry_le = le >> 63;
      carry_ge = ge >> 63;
    }
  }

  Metrics simulate(const std::uint64_t* entries, const std::uint64_t* exits) const {
    MetricSums sums;
    sums.bars = n_;
    sums.initial_equity = cash_;
    double equity = cash_;
    double peak = cash_;
    double max_dd = 0;
    double floor = peak;  // peak * (1 - max_dd): an equity below it deepens the drawdown
    auto add_return = [&](double r) {
      sums.sum_r += r;
      sums.sum_r2 += r * r;
      if (r < 0) sums.sum_down2 += r * r;
    };
    auto touch = [&](double value) {  // an equity value at a close, in time order
      if (value > peak) {
        peak = value;
        floor = peak * (1.0 - max_dd);
      } else if (value < floor) {
        max_dd = 1.0 - value / peak;
        floor = peak * (1.0 - max_dd);
      }
    };
    std::size_t from = 0;
    for (;;) {
      const std::size_t entry_signal = next_bit(entries, words_, from, n_);
      const std::size_t e = entry_signal + lag_;
      if (entry_signal >= n_ || e >= n_) break;
      const double units = equity / entry_cost_[e];
      const std::size_t exit_signal = next_bit(exits, words_, entry_signal + 1, n_);
      const std::size_t x = exit_signal + lag_;
      const bool closed = exit_signal < n_ && x < n_;
      const std::size_t last_held = closed ? x - 1 : n_ - 1;

      add_return(entry_return_[e]);
      if (last_held > e) {
        sums.sum_r += sum_r_[last_held] - sum_r_[e];
        sums.sum_r2 += sum_r2_[last_held] - sum_r2_[e];
        sums.sum_down2 += sum_down2_[last_held] - sum_down2_[e];
      }
      sums.held_bars += last_held - e + 1;

      // Equity over the stretch is units * close: its own drawdown, and its low under the peak
      // carried in; then its high may raise the peak.
      double low = ranges_.value(e), high = low;
      if (last_held > e) {
        const auto [left, right] = ranges_.parts(e, last_held);
        low = std::min(left->low, right->low);
        high = std::max(left->high, right->high);
        if (low < high * (1.0 - max_dd)) {  // the stretch alone may hold a deeper drawdown
          max_dd = std::max({max_dd, left->drawdown, right->drawdown, 1.0 - right->low / left->high});
          floor = peak * (1.0 - max_dd);
        }
      }
      if (units * low < floor) {
        max_dd = 1.0 - units * low / peak;
        floor = peak * (1.0 - max_dd);
      }
      if (units * high > peak) {
        peak = units * high;
        floor = peak * (1.0 - max_dd);
      }

      if (!closed) {
        equity = units * ranges_.value(n_ - 1);
        break;
      }
      const double cash = units * exit_value_[x];
      add_return(exit_return_[x]);
      touch(cash);
      const double growth = exit_value_[x] / entry_cost_[e];
      sums.add_trade(cash - equity, growth - 1.0);
      equity = cash;
      from = exit_signal + 1;
    }
    sums.final_equity = equity;
    sums.max_drawdown = max_dd;
    return finalize_metrics(sums, periods_per_year_);
  }

  std::size_t n_, words_, padded_, lag_ = 1;
  double cash_, periods_per_year_;
  int max_period_ = 0;
  std::vector<double> series_;             // padded MA rows
  std::vector<std::size_t> first_defined_; // per row
  std::vector<int> row_of_;                // [type][period] -> row
  std::vector<std::uint64_t> volume_words_;
  std::vector<double> entry_cost_, exit_value_, entry_return_, exit_return_;
  std::vector<double> sum_r_, sum_r2_, sum_down2_;  // prefix sums of close-to-close returns
  RangeTable ranges_;
};

}  // namespace

std::unique_ptr<Evaluator> make_ma_cross_evaluator(const Bars& bars, const Grid& grid, const ExecutionOptions& options) {
  if (grid.strategy().name != "ma_cross" || options.allow_short || options.size != 1.0) return nullptr;
  return std::make_unique<MaCrossEvaluator>(bars, grid, options);
}

}  // namespace gt
