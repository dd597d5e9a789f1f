// A portfolio study's evaluator (include/gt/optimize.hpp): each combination run by the portfolio
// engine over every symbol (eight at a time in vector lanes where only the rules move positions:
// portfolio_metrics_lanes), its metrics and, for robustness, its equity's returns per block. The
// signals of a crossover of averages (GridEngine::kMaCross) come from each symbol's crossing
// masks, as the one-symbol grid engine finds them; any other strategy's from its rules.
#include <array>
#include <bit>

#include "../rules/program.hpp"
#include "gt/optimize.hpp"
#include "gt/portfolio.hpp"
#include "gt/signal_rules.hpp"
#include "ma_cross_evaluator.hpp"

namespace gt {
namespace {

class PortfolioEvaluator final : public Evaluator {
 public:
  PortfolioEvaluator(const std::vector<Bars>& symbols, const Grid& grid, const ExecutionOptions& options,
                     const PortfolioOptions& portfolio)
      : symbols_(symbols),
        strategy_(grid.strategy()),
        options_(options),
        portfolio_(portfolio),
        layout_(portfolio_layout(symbols, options)),
        series_(std::make_unique<SeriesCache[]>(symbols.size())) {
    if (strategy_.grid_engine != GridEngine::kMaCross) return;
    for (const Bars& b : symbols) crossings_.emplace_back(std::make_unique<MaCrossTables>(b, grid));
    short_rules_ = strategy_.rules_program && strategy_.rules_program->short_entry.has_value();
    for (unsigned i = 0; i < signal_of_.size(); ++i) {
      const bool above = i & 1, below = i & 2, passes = i & 4;
      signal_of_[i] = rule_events(above && passes, below, short_rules_, below && passes, above);
    }
  }

  std::string_view name() const override {
    return crossings_.empty() ? "portfolio reference" : "portfolio, crossings as masks";
  }

  void evaluate(std::span<const double> params, std::size_t stride, std::span<Metrics> out) const override {
    evaluate_with_blocks(params, stride, out, {}, {});
  }

  void evaluate_with_blocks(std::span<const double> params, std::size_t stride, std::span<Metrics> out,
                            std::span<const std::size_t> starts, std::span<ReturnSums> blocks) const override {
    const std::size_t per = starts.empty() ? 0 : starts.size() - 1;
    const std::size_t k = symbols_.size();
    std::vector<SymbolEvents> events(k);
    std::vector<std::vector<std::uint8_t>> signals(crossings_.empty() ? k : 0);  // per bar, for the rules
    for (std::size_t s = 0; s < signals.size(); ++s) signals[s].resize(symbols_[s].size());
    // A crossover's combinations visited by (type, fast, slow): the combinations of one pair of
    // averages (the volume filter on and off) share its crossings, and those of one fast average
    // its bounds; the results go back to their own slots.
    std::vector<PairCrossings> crossings;
    for (const auto& tables : crossings_) crossings.emplace_back(*tables);
    std::vector<std::uint32_t> order(out.size());
    for (std::uint32_t i = 0; i < order.size(); ++i) order[i] = i;
    if (!crossings_.empty()) {
      const MaCrossTables& first = *crossings_.front();  // every symbol's tables have the grid's rows
      std::vector<std::uint64_t> keys(out.size());
      for (std::size_t i = 0; i < keys.size(); ++i)
        keys[i] = first.pair_key(decode_ma_cross(params.data() + i * stride));
      order = order_by_key(keys);
    }
    // Combinations whose positions only the rules move run kPortfolioLanes at a time, side by side
    // (portfolio_metrics_lanes); the others one by one.
    std::vector<SymbolEvents> lane_events(kPortfolioLanes * k);
    std::vector<std::uint32_t> lanes;  // the combinations in them
    std::array<BlockReturns, kPortfolioLanes> lane_blocks;
    std::array<const BlockReturns*, kPortfolioLanes> lane_block_of{};
    std::array<Metrics, kPortfolioLanes> lane_out;
    ExecutionOptions lane_options;
    const auto run_lanes = [&] {
      if (lanes.empty()) return;
      const std::size_t count = lanes.size();
      portfolio_metrics_lanes(symbols_, layout_, std::span<const SymbolEvents>(lane_events).first(count * k),
                              lane_options, portfolio_,
                              per ? std::span<const BlockReturns* const>(lane_block_of).first(count)
                                  : std::span<const BlockReturns* const>(),
                              std::span<Metrics>(lane_out).first(count));
      for (std::size_t c = 0; c < count; ++c) out[lanes[c]] = lane_out[c];
      lanes.clear();
    };
    for (const std::uint32_t i : order) {
      const ParamValues values(params.begin() + static_cast<std::ptrdiff_t>(i * stride),
                               params.begin() + static_cast<std::ptrdiff_t>((i + 1) * stride));
      const ExecutionOptions options = strategy_.options_for(options_, values);
      const bool in_lanes = portfolio_lanes_apply(options, portfolio_, k);
      if (in_lanes && !lanes.empty() && !(options == lane_options)) run_lanes();
      const std::span<SymbolEvents> mine = in_lanes ? std::span<SymbolEvents>(lane_events).subspan(lanes.size() * k, k)
                                                    : std::span<SymbolEvents>(events);
      for (std::size_t s = 0; s < k; ++s)
        if (crossings_.empty()) {
          strategy_.signals(symbols_[s], values, signals[s], series_[s]);
          symbol_events(signals[s], mine[s]);
        } else {
          crossing_events(crossings[s], decode_ma_cross(values.data()), mine[s]);
        }
      const BlockReturns own{starts, blocks.subspan(i * per, per)};
      if (!in_lanes) {
        out[i] = portfolio_metrics(symbols_, layout_, events, options, portfolio_, per ? &own : nullptr);
        continue;
      }
      lane_blocks[lanes.size()] = own;
      lane_block_of[lanes.size()] = &lane_blocks[lanes.size()];
      lane_options = options;
      lanes.push_back(i);
      if (lanes.size() == kPortfolioLanes) run_lanes();
    }
    run_lanes();
  }

 private:
  // ma_cross's rules (strategies/ma_cross.yaml) from the crossing masks: entry on a cross above
  // (and the volume filter), exit on a cross below; the short rules mirrored. Straight to the
  // engine's events, without a signal a bar.
  void crossing_events(PairCrossings& c, const MaCrossParams& p, SymbolEvents& out) const {
    const MaCrossTables& tables = c.tables();
    const std::size_t words = tables.words();
    c.find(p);
    const std::uint64_t *up = c.up(), *down = c.down();
    const std::vector<std::uint64_t>& volume = tables.volume_words();
    // Each crossing written, and kept where it is an event (a cross above the filter stops, with
    // no short rules, is none): no branch on what the crossing turns out to be.
    std::size_t crossings = 0;
    for (std::size_t w = 0; w < words; ++w) crossings += static_cast<std::size_t>(std::popcount(up[w] | down[w]));
    out.bar.resize(crossings);
    out.signal.resize(crossings);
    std::size_t kept = 0;
    for (std::size_t w = 0; w < words; ++w) {
      const std::uint64_t filter = p.volume_filter ? volume[w] : ~std::uint64_t{0};
      for (std::uint64_t bits = up[w] | down[w]; bits; bits &= bits - 1) {
        const auto b = static_cast<unsigned>(std::countr_zero(bits));
        const unsigned above = (up[w] >> b) & 1, below = (down[w] >> b) & 1, passes = (filter >> b) & 1;
        const std::uint8_t signal = signal_of_[above | below << 1 | passes << 2];
        out.bar[kept] = static_cast<std::uint32_t>(w * 64 + b);
        out.signal[kept] = signal;
        kept += signal != 0;
      }
    }
    out.bar.resize(kept);
    out.signal.resize(kept);
  }

  const std::vector<Bars>& symbols_;
  const Strategy& strategy_;
  ExecutionOptions options_;
  PortfolioOptions portfolio_;
  PortfolioLayout layout_;
  // Each symbol's indicator series, computed once for every combination that asks for them.
  std::unique_ptr<SeriesCache[]> series_;
  std::vector<std::unique_ptr<MaCrossTables>> crossings_;  // per symbol, for a crossover of averages
  bool short_rules_ = false;
  std::array<std::uint8_t, 8> signal_of_{};  // a crossing's events by above | below << 1 | passes << 2
};

}  // namespace

std::unique_ptr<Evaluator> make_portfolio_evaluator(const std::vector<Bars>& symbols, const Grid& grid,
                                                    const ExecutionOptions& options,
                                                    const PortfolioOptions& portfolio) {
  check_portfolio(symbols, portfolio);
  return std::make_unique<PortfolioEvaluator>(symbols, grid, options, portfolio);
}

}  // namespace gt
