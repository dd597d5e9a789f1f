// A portfolio study's evaluator (include/gt/optimize.hpp): each combination run by the portfolio
// engine over every symbol, its metrics and, for robustness, its equity's returns per block.
#include "gt/optimize.hpp"
#include "gt/portfolio.hpp"

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
        series_(std::make_unique<SeriesCache[]>(symbols.size())) {}

  std::string_view name() const override { return "portfolio reference"; }

  void evaluate(std::span<const double> params, std::size_t stride, std::span<Metrics> out) const override {
    evaluate_with_blocks(params, stride, out, {}, {});
  }

  void evaluate_with_blocks(std::span<const double> params, std::size_t stride, std::span<Metrics> out,
                            std::span<const std::size_t> starts, std::span<ReturnSums> blocks) const override {
    const std::size_t per = starts.empty() ? 0 : starts.size() - 1;
    std::vector<std::vector<std::uint8_t>> signals(symbols_.size());
    for (std::size_t i = 0; i < out.size(); ++i) {
      const ParamValues values(params.begin() + static_cast<std::ptrdiff_t>(i * stride),
                               params.begin() + static_cast<std::ptrdiff_t>((i + 1) * stride));
      for (std::size_t s = 0; s < symbols_.size(); ++s) {
        signals[s].resize(symbols_[s].size());
        strategy_.signals(symbols_[s], values, signals[s], series_[s]);
      }
      const BlockReturns own{starts, blocks.subspan(i * per, per)};
      out[i] = portfolio_metrics(symbols_, layout_, signals, strategy_.options_for(options_, values), portfolio_,
                                 per ? &own : nullptr);
    }
  }

 private:
  const std::vector<Bars>& symbols_;
  const Strategy& strategy_;
  ExecutionOptions options_;
  PortfolioOptions portfolio_;
  PortfolioLayout layout_;
  // Each symbol's indicator series, computed once for every combination that asks for them.
  std::unique_ptr<SeriesCache[]> series_;
};

}  // namespace

std::unique_ptr<Evaluator> make_portfolio_evaluator(const std::vector<Bars>& symbols, const Grid& grid,
                                                    const ExecutionOptions& options,
                                                    const PortfolioOptions& portfolio) {
  check_portfolio(symbols, portfolio);
  return std::make_unique<PortfolioEvaluator>(symbols, grid, options, portfolio);
}

}  // namespace gt
