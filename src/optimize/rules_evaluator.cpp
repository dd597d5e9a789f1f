// The rules' grid engine (docs/SEMANTICS.md "Rules"): a strategy's rules compiled once per study
// and symbol into a tree of conditions held as bit masks, 64 bars a word: a true mask and a false
// mask (a bar in neither is undefined), so that `and`, `or` and `not` keep the three-valued logic
// word by word. A condition that reads only some of the grid's swept parameters (a crossing of two
// averages, an RSI threshold) is computed once for each of its own combinations, the first time
// one is asked for, and shared by every grid combination that agrees on those parameters; the
// rest are joined per combination, a few word operations each. A crossing of two series without
// gaps takes the crossover engine's route (cross_masks.hpp: float comparisons, doubles near a
// tie), one computation for cross_above and cross_below of the same pair. Trades are then found and booked
// as for ma_cross (long_trades.hpp), so that a rule strategy fills exactly as the reference engine
// fills it.
#include "rules_evaluator.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <optional>
#include <set>

#include "../rules/program.hpp"
#include "cross_masks.hpp"
#include "gt/indicators.hpp"
#include "long_trades.hpp"

namespace gt {
namespace {

using rules::Node;

// Table entries a condition may have, and bytes every table together may take: beyond them a
// condition is computed per combination instead (slower, never wrong).
constexpr std::size_t kMostEntries = std::size_t{1} << 20;
constexpr std::size_t kMostTableBytes = std::size_t{1} << 30;

// A value made on first use by whichever thread asks first; a thread that loses the race to
// publish drops its own copy. (std::call_once woke a futex on every first call, which cost more
// than many of the masks it guarded.)
template <class T>
class Lazy {
 public:
  Lazy() = default;
  Lazy(const Lazy&) = delete;
  Lazy& operator=(const Lazy&) = delete;
  ~Lazy() { delete value_.load(std::memory_order_acquire); }

  template <class Make>
  const T& get(Make make) const {
    if (const T* v = value_.load(std::memory_order_acquire)) return *v;
    auto made = std::make_unique<T>(make());
    T* expected = nullptr;
    if (value_.compare_exchange_strong(expected, made.get(), std::memory_order_acq_rel, std::memory_order_acquire))
      return *made.release();
    return *expected;
  }

 private:
  mutable std::atomic<T*> value_{nullptr};
};

using Masks = std::vector<std::uint64_t>;

class RulesEvaluator final : public Evaluator {
 public:
  RulesEvaluator(const Bars& bars, const Grid& grid, const ExecutionOptions& options,
                 std::shared_ptr<const rules::Program> program)
      : bars_(bars),
        strategy_(grid.strategy()),
        program_holder_(std::move(program)),
        program_(*program_holder_),
        book_(bars, options),
        words_(book_.words()) {
    const Strategy& strategy = grid.strategy();
    values_.resize(strategy.params.size());
    for (std::size_t p = 0; p < values_.size(); ++p) values_[p] = {grid.base()[p]};
    for (const auto& axis : grid.axes()) {
      auto& v = values_[axis.param];
      v = axis.values;
      std::sort(v.begin(), v.end());
      v.erase(std::unique(v.begin(), v.end()), v.end());
    }
    std::size_t table_bytes = 0;
    entry_ = add_condition(program_.entry, grid.size(), table_bytes);
    exit_ = add_condition(program_.exit, grid.size(), table_bytes);
    if (program_.short_entry) short_entry_ = add_condition(*program_.short_entry, grid.size(), table_bytes);
    // What each condition must produce: the rules act where they are true, `not` reads its
    // operand's false mask, `and`/`or` pass on what their own readers ask.
    for (std::size_t id = conditions_.size(); id-- > 0;) {
      const Condition& c = conditions_[id];
      for (const std::size_t child : c.children)
        conditions_[child].needs_false |= c.op == Condition::kNot || c.needs_false;
    }
  }

  std::string_view name() const override { return "rules compiled"; }

  void evaluate(std::span<const double> params, std::size_t stride, std::span<Metrics> out) const override {
    evaluate_with_blocks(params, stride, out, {}, {});
  }

  void evaluate_with_blocks(std::span<const double> params, std::size_t stride, std::span<Metrics> out,
                            std::span<const std::size_t> starts, std::span<ReturnSums> blocks) const override {
    const std::size_t per = starts.empty() ? 0 : starts.size() - 1;
    std::vector<std::uint64_t> scratch(conditions_.size() * 2 * words_);
    std::vector<std::uint64_t> entries(words_);
    std::vector<std::size_t> positions(values_.size());
    detail::LongTradeBook::Batch batch(book_, out);
    for (std::size_t i = 0; i < out.size(); ++i) {
      const std::span<const double> combination = params.subspan(i * stride, values_.size());
      for (std::size_t p = 0; p < values_.size(); ++p)
        positions[p] = static_cast<std::size_t>(std::lower_bound(values_[p].begin(), values_[p].end(), combination[p]) -
                                                values_[p].begin());
      const Context at{combination, positions, scratch.data()};
      const std::uint64_t* entry = masks(entry_, at);
      if (short_entry_) {
        // Where short_entry holds too, the reference signals take no entry (docs/SEMANTICS.md "Rules").
        const std::uint64_t* short_entry = masks(*short_entry_, at);
        for (std::size_t w = 0; w < words_; ++w) entries[w] = entry[w] & ~short_entry[w];
        entry = entries.data();
      }
      const BlockReturns own{starts, blocks.subspan(i * per, per)};
      batch.add(static_cast<std::uint32_t>(i), entry, nullptr, masks(exit_, at),
                strategy_.exits_of(params.subspan(i * stride, stride)), per ? &own : nullptr);
    }
    batch.finish();
  }

 private:
  // One combination being evaluated: its values, each parameter's position among its values, and
  // room for the conditions computed per combination.
  struct Context {
    std::span<const double> values;
    std::span<const std::size_t> positions;
    std::uint64_t* scratch;
  };
  // Where a value of something that reads the swept parameters `swept` sits in its table.
  struct Layout {
    std::vector<std::size_t> swept, strides;
    std::size_t entries = 1;
    std::size_t index(const Context& at) const {
      std::size_t i = 0;
      for (std::size_t k = 0; k < swept.size(); ++k) i += at.positions[swept[k]] * strides[k];
      return i;
    }
  };
  struct Condition {
    enum Op { kLeaf, kCross, kAnd, kOr, kNot } op = kLeaf;
    const Node* node = nullptr;         // a leaf: a comparison, crossing, condition ago or truth value
    std::vector<std::size_t> children;  // conditions_ indices
    Layout layout;
    std::unique_ptr<Lazy<Masks>[]> table;  // true words, then false words; null: computed per combination
    bool needs_false = false;              // some reader takes its false mask (else only the true one)
    // kCross: cross_above (else cross_below); the pair's crossings (crossings_), shared by
    // cross_above and cross_below of the same two series.
    bool above = true;
    std::optional<std::size_t> crossing;
  };
  // A series prepared for the crossover route: padded to whole words with NaN, a float copy and the
  // float bounds cross_events reads when it is the first series crossed; its first defined bar.
  // `gapless`: no undefined value after that (else the route does not apply).
  struct PaddedSeries {
    const double* exact = nullptr;  // own_exact's, or a row of the slot's moving averages
    detail::CacheLineArray<double> own_exact;
    detail::CacheLineArray<float> coarse, bounds;
    std::size_t first_defined = 0;
    bool gapless = true;
  };
  // Rows of moving averages for every entry of a slot at once (padded like PaddedSeries::exact).
  struct AverageRows {
    std::vector<detail::CacheLineArray<double>> blocks;  // one per type of average
    std::vector<const double*> row;                      // per slot entry
  };
  struct SeriesSlot {
    const Node* node;
    Layout layout;
    std::unique_ptr<Lazy<PaddedSeries>[]> table;
    // sma/ema/wma/ma(x, n[, type]) of a series x that reads no swept parameter: computed for every
    // entry at once, eight periods a pass (ind::ma_many_into), when the first one is asked for.
    bool averages = false;
    std::unique_ptr<Lazy<std::optional<AverageRows>>> rows;
    bool crossed_first = false;  // the first series of some crossing: its entries need float bounds
  };
  // Both crossings of a pair of series: up's true and false words, then down's; empty where a
  // series has gaps.
  struct CrossingTable {
    std::size_t series[2];
    std::unique_ptr<Lazy<Masks>[]> table;
  };

  static bool same(const Node& a, const Node& b) {
    if (a.kind != b.kind || a.number != b.number || a.text != b.text || a.args.size() != b.args.size()) return false;
    for (std::size_t i = 0; i < a.args.size(); ++i)
      if (!same(a.args[i], b.args[i])) return false;
    return true;
  }

  // The swept parameters (more than one value in the grid) a subtree reads, and its table's layout.
  void read_params(const Node& n, std::set<std::size_t>& out) const {
    if (n.kind == Node::kName)
      for (std::size_t p = 0; p < program_.params.size(); ++p)
        if (program_.params[p].name == n.text && values_[p].size() > 1) out.insert(p);
    for (const auto& a : n.args) read_params(a, out);
  }
  Layout layout_of(const Node& n) const {
    std::set<std::size_t> swept;
    read_params(n, swept);
    Layout layout;
    for (const std::size_t p : swept) {
      layout.swept.push_back(p);
      layout.strides.push_back(layout.entries);
      layout.entries = layout.entries > kMostEntries ? layout.entries : layout.entries * values_[p].size();
    }
    return layout;
  }

  std::size_t add_condition(const Node& n, std::uint64_t combinations, std::size_t& table_bytes) {
    Condition c;
    c.node = &n;
    if (n.kind == Node::kAnd || n.kind == Node::kOr || n.kind == Node::kNot) {
      c.op = n.kind == Node::kAnd ? Condition::kAnd : (n.kind == Node::kOr ? Condition::kOr : Condition::kNot);
      for (const auto& a : n.args) c.children.push_back(add_condition(a, combinations, table_bytes));
    }
    c.layout = layout_of(n);
    const std::size_t bytes = c.layout.entries * 2 * words_ * sizeof(std::uint64_t);
    // Shared by at least two combinations on average, and room left for it.
    if (c.layout.entries <= kMostEntries && 2 * c.layout.entries <= std::max<std::uint64_t>(combinations, 2) &&
        table_bytes + 2 * bytes <= kMostTableBytes) {
      c.table = std::make_unique<Lazy<Masks>[]>(c.layout.entries);
      table_bytes += bytes;
      if (n.kind == Node::kCall && (n.text == "cross_above" || n.text == "cross_below")) {
        c.op = Condition::kCross;
        c.above = n.text == "cross_above";
        c.crossing = crossing_table(n, table_bytes);
      }
    }
    conditions_.push_back(std::move(c));
    return conditions_.size() - 1;
  }

  std::size_t crossing_table(const Node& n, std::size_t& table_bytes) {
    const std::size_t series[2] = {series_slot(n.args[0]), series_slot(n.args[1])};
    series_slots_[series[0]].crossed_first = true;
    for (std::size_t i = 0; i < crossings_.size(); ++i)  // the same pair crossed the other way
      if (crossings_[i].series[0] == series[0] && crossings_[i].series[1] == series[1]) return i;
    const std::size_t entries = layout_of(n).entries;
    table_bytes += entries * 4 * words_ * sizeof(std::uint64_t);
    crossings_.push_back({{series[0], series[1]}, std::make_unique<Lazy<Masks>[]>(entries)});
    return crossings_.size() - 1;
  }

  std::size_t series_slot(const Node& n) {
    for (std::size_t i = 0; i < series_slots_.size(); ++i)
      if (same(*series_slots_[i].node, n)) return i;
    SeriesSlot slot{&n, layout_of(n), nullptr, false, nullptr, false};
    slot.table = std::make_unique<Lazy<PaddedSeries>[]>(slot.layout.entries);
    if (n.kind == Node::kCall && (n.text == "sma" || n.text == "ema" || n.text == "wma" || n.text == "ma") &&
        !slot.layout.swept.empty() && layout_of(n.args[0]).swept.empty()) {
      slot.averages = true;
      slot.rows = std::make_unique<Lazy<std::optional<AverageRows>>>();
    }
    series_slots_.push_back(std::move(slot));
    return series_slots_.size() - 1;
  }

  // The condition's true and false words for this combination.
  const std::uint64_t* masks(std::size_t id, const Context& at) const {
    const Condition& c = conditions_[id];
    if (c.crossing)
      if (const std::uint64_t* m = crossing_masks(c, at)) return m;
    if (!c.table) {
      std::uint64_t* out = at.scratch + id * 2 * words_;
      compute(c, at, out);
      return out;
    }
    return c.table[c.layout.index(at)]
        .get([&] {
          Masks m(2 * words_);
          compute(c, at, m.data());
          return m;
        })
        .data();
  }

  void compute(const Condition& c, const Context& at, std::uint64_t* out) const {
    std::uint64_t* t = out;
    std::uint64_t* f = out + words_;
    if (c.op == Condition::kLeaf || c.op == Condition::kCross) {
      const auto values = rules::evaluate_over_bars(program_, *c.node, bars_, at.values, series_);
      const std::vector<double>& v = *values;
      std::fill(out, out + 2 * words_, 0);
      for (std::size_t bar = 0; bar < v.size(); ++bar) {
        const std::uint64_t bit = std::uint64_t{1} << (bar % 64);
        if (v[bar] == 0)
          f[bar / 64] |= bit;
        else if (!std::isnan(v[bar]))
          t[bar / 64] |= bit;
      }
      return;
    }
    const std::uint64_t* a = masks(c.children[0], at);
    if (c.op == Condition::kNot) {
      std::copy(a + words_, a + 2 * words_, t);
      if (c.needs_false) std::copy(a, a + words_, f);
      return;
    }
    const std::uint64_t* b = masks(c.children[1], at);
    // and: false if either side is, true if both are; or: the mirror image.
    const bool conjunction = c.op == Condition::kAnd;
    for (std::size_t w = 0; w < words_; ++w) t[w] = conjunction ? a[w] & b[w] : a[w] | b[w];
    if (c.needs_false)
      for (std::size_t w = 0; w < words_; ++w)
        f[w] = conjunction ? a[words_ + w] | b[words_ + w] : a[words_ + w] & b[words_ + w];
  }

  // A crossing's true and false words by the crossover route; null when a series has gaps, which
  // the route does not handle.
  const std::uint64_t* crossing_masks(const Condition& c, const Context& at) const {
    const CrossingTable& pair = crossings_[*c.crossing];
    const Masks& m = pair.table[c.layout.index(at)].get([&] {
      const PaddedSeries& a = padded(pair.series[0], at);
      const PaddedSeries& b = padded(pair.series[1], at);
      if (!a.gapless || !b.gapless) return Masks();
      Masks out(4 * words_);
      std::uint64_t* up = out.data();
      std::uint64_t* down = up + 2 * words_;
      const std::size_t from = std::max(a.first_defined, b.first_defined);
      detail::cross_events({a.exact, a.coarse.get()}, {b.exact, b.coarse.get()}, a.bounds.get(),
                           detail::FastBounds::kReady, bars_.size(), from, up, down);
      for (std::size_t w = 0; w < words_; ++w) {  // false: both defined at t and t-1, and no crossing
        const std::uint64_t defined = detail::live_bits(w, bars_.size(), from + 1);
        up[words_ + w] = defined & ~up[w];
        down[words_ + w] = defined & ~down[w];
      }
      return out;
    });
    if (m.empty()) return nullptr;
    return m.data() + (c.above ? 0 : 2 * words_);
  }

  const PaddedSeries& padded(std::size_t slot_id, const Context& at) const {
    const SeriesSlot& slot = series_slots_[slot_id];
    const std::size_t index = slot.layout.index(at);
    return slot.table[index].get([&] {
      const std::size_t length = words_ * 64, n = bars_.size();
      PaddedSeries p;
      const std::optional<AverageRows>* rows =
          slot.averages ? &slot.rows->get([&] { return average_rows(slot, at.values); }) : nullptr;
      if (rows && rows->has_value()) {
        p.exact = (*rows)->row[index];
      } else {
        p.own_exact = detail::cache_line_array<double>(length);
        const auto values = rules::evaluate_over_bars(program_, *slot.node, bars_, at.values, series_);
        std::copy(values->begin(), values->end(), p.own_exact.get());
        std::fill(p.own_exact.get() + n, p.own_exact.get() + length, std::numeric_limits<double>::quiet_NaN());
        p.exact = p.own_exact.get();
      }
      p.coarse = detail::cache_line_array<float>(length);
      while (p.first_defined < n && std::isnan(p.exact[p.first_defined])) ++p.first_defined;
      if (!rows || !rows->has_value()) {  // an average of a series without gaps has none past its lookback
        bool gap = false;
        for (std::size_t i = p.first_defined; i < n; ++i) gap |= std::isnan(p.exact[i]);
        p.gapless = !gap;
      }
      detail::round_to_float(p.exact, p.coarse.get(), length);
      if (!slot.crossed_first) return p;
      // cross_events writes a first series' float bounds as it goes: crossed with itself from
      // past the last bar (no events), it writes them once here for every crossing to read.
      p.bounds = detail::cache_line_array<float>(2 * length);
      std::vector<std::uint64_t> none(2 * words_);
      detail::cross_events({p.exact, p.coarse.get()}, {p.exact, p.coarse.get()}, p.bounds.get(),
                           detail::FastBounds::kKeep, bars_.size(), bars_.size(), none.data(), none.data() + words_);
      return p;
    });
  }

  // Every entry's average of an `averages` slot; none (the entries are then computed one by one,
  // with the functions' own checks and messages) unless each period is a whole number from 1 to
  // the bar count, each type one of TA-Lib's, and the averaged series has no undefined value.
  std::optional<AverageRows> average_rows(const SeriesSlot& slot, std::span<const double> combination) const {
    const Node& n = *slot.node;
    const auto x = rules::evaluate_over_bars(program_, n.args[0], bars_, combination, series_);
    if (std::any_of(x->begin(), x->end(), [](double v) { return std::isnan(v); })) return std::nullopt;
    const int fixed_type = n.text == "sma" ? 0 : (n.text == "ema" ? 1 : 2);
    std::vector<double> values(combination.begin(), combination.end());
    std::vector<std::pair<int, int>> type_period(slot.layout.entries);
    for (std::size_t e = 0; e < slot.layout.entries; ++e) {
      for (std::size_t k = 0; k < slot.layout.swept.size(); ++k) {
        const std::size_t p = slot.layout.swept[k];
        values[p] = values_[p][e / slot.layout.strides[k] % values_[p].size()];
      }
      const double period = rules::evaluate_scalar(program_, n.args[1], values);
      const double type = n.text == "ma" ? rules::evaluate_scalar(program_, n.args[2], values) : fixed_type;
      if (period != std::floor(period) || period < 1 || period > static_cast<double>(bars_.size()) ||
          type != std::floor(type) || type < 0 || type > 4)
        return std::nullopt;
      type_period[e] = {static_cast<int>(type), static_cast<int>(period)};
    }
    AverageRows rows;
    rows.row.resize(slot.layout.entries);
    const std::size_t length = words_ * 64;
    for (int type = 0; type <= 4; ++type) {
      std::vector<int> periods;
      std::vector<std::size_t> entries;
      for (std::size_t e = 0; e < type_period.size(); ++e)
        if (type_period[e].first == type) {
          periods.push_back(type_period[e].second);
          entries.push_back(e);
        }
      if (periods.empty()) continue;
      auto block = detail::cache_line_array<double>(periods.size() * length);
      std::fill(block.get(), block.get() + periods.size() * length, std::numeric_limits<double>::quiet_NaN());
      ind::ma_many_into(static_cast<ind::MaType>(type), *x, periods, block.get(), length);
      for (std::size_t r = 0; r < entries.size(); ++r) rows.row[entries[r]] = block.get() + r * length;
      rows.blocks.push_back(std::move(block));
    }
    return rows;
  }

  const Bars& bars_;
  const Strategy& strategy_;
  std::shared_ptr<const rules::Program> program_holder_;
  const rules::Program& program_;
  detail::LongTradeBook book_;
  std::size_t words_;
  std::vector<std::vector<double>> values_;  // per parameter: its values in the grid, sorted
  std::vector<Condition> conditions_;
  std::vector<CrossingTable> crossings_;
  std::vector<SeriesSlot> series_slots_;
  std::size_t entry_ = 0, exit_ = 0;
  std::optional<std::size_t> short_entry_;
  mutable SeriesCache series_;  // the functions' series, shared by every table entry
};

}  // namespace

bool rules_engine_supports(const Grid& grid, const ExecutionOptions& options) {
  return grid.strategy().grid_engine == GridEngine::kRules && grid.strategy().rules_program &&
         detail::LongTradeBook::serves(options);
}

std::unique_ptr<Evaluator> make_rules_evaluator(const Bars& bars, const Grid& grid, const ExecutionOptions& options) {
  if (!rules_engine_supports(grid, options)) return nullptr;
  return std::make_unique<RulesEvaluator>(bars, grid, options, grid.strategy().rules_program);
}

}  // namespace gt
