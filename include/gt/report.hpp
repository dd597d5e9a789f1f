// Reports: one self-contained HTML file per optimization or backtest, charts drawn by Vega-Lite
// (its JavaScript bundle, from PyPI's vl-convert-python, is inlined, so the file opens offline).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "gt/backtest.hpp"
#include "gt/data.hpp"
#include "gt/portfolio.hpp"
#include "gt/robustness.hpp"
#include "gt/strategy.hpp"
#include "gt/walk_forward.hpp"

namespace gt::report {

// An optimization's results file (`gtrader optimize --out`), as columns.
struct ResultsTable {
  std::vector<std::string> params;                 // parameter columns, in file order
  std::vector<std::string> metrics;                // metric columns, in file order
  std::vector<std::string> symbols;                // one per row ("" without a symbol column)
  std::vector<std::vector<double>> param_values;   // [param][row]; booleans as 0/1
  std::vector<std::vector<double>> metric_values;  // [metric][row]; NaN when empty
  std::vector<bool> boolean_params;                // [param] the column holds true/false
  std::size_t rows() const { return symbols.size(); }
};
// Throws DataError naming the file and line of anything it cannot read.
ResultsTable read_results(const std::filesystem::path& path);

// How a heatmap treats the parameters that are not on its axes.
enum class Others { kBest, kMean, kMax };
Others parse_others(std::string_view name);  // best | mean | max

// The position of `name` among `names` (parameter or metric columns); throws ParamError listing them.
std::size_t column_of(const std::vector<std::string>& names, const std::string& name, std::string_view what);
// The rows of one symbol, in file order; throws ParamError when it has none.
std::vector<std::size_t> rows_of_symbol(const ResultsTable& results, const std::string& symbol);
// `rows` best first by metric column `metric` (docs/SEMANTICS.md "Ranking"; ties keep file order).
std::vector<std::size_t> ranked_rows(const ResultsTable& results, const std::vector<std::size_t>& rows,
                                     std::size_t metric);
// One cell of a heatmap over parameter columns px and py: with kBest the metric of the row that has
// (x, y) and the best row's values of every other parameter; with kMean and kMax the mean or the
// best value over all rows with (x, y), NaN values left out (NaN when none is left). In (x, y) order.
struct HeatmapCell {
  double x, y, value;
};
std::vector<HeatmapCell> heatmap_cells(const ResultsTable& results, const std::vector<std::size_t>& rows,
                                       std::size_t px, std::size_t py, std::size_t metric, Others others,
                                       std::size_t best);

struct OptimizationReportOptions {
  std::string x, y;  // heatmap axes; empty: the first two parameters with several values
  std::string metric = "sharpe";
  Others others = Others::kBest;
  std::string symbol;    // empty: every symbol in the file, a section each
  std::size_t top = 20;  // rows of the best-combinations table
  std::string title;     // defaults to the file name
};

struct BacktestReportInput {
  const Bars* bars = nullptr;
  const BacktestResult* result = nullptr;
  std::string strategy, parameters;  // e.g. "ma_cross", "fast=10 slow=30 ..."
  double cash = 100000;
};

// The charts' JavaScript (vega, vega-lite, vega-embed): GT_REPORT_JS when set, else the bundle
// the build made. Throws Error saying how to get it when neither exists.
std::string chart_library();

// A PNG of a written report, for terminals and documents: the page drawn by headless chromium
// (Debian's `chromium`, or GT_CHROMIUM), written atomically. Throws Error when it cannot.
void render_png(const std::filesystem::path& html, const std::filesystem::path& png, int width = 1300,
                int height = 1800);
std::string chromium_path();  // the browser render_png would start; throws Error saying how to get one

// One symbol's robustness (optimize --robustness), for the report's panel on it: the deflated
// Sharpe ratio and PBO, the histogram of the CSCV logits, the in-sample/out-of-sample rank scatter.
struct RobustnessPanel {
  std::string symbol;  // as the results file's symbol column names it ("" without that column)
  SymbolRobustness figures;
  std::size_t blocks = 0;
};

// `robustness`: panels by symbol; each symbol's section shows its own, if any.
std::string optimization_report_html(const ResultsTable& results, const OptimizationReportOptions& options,
                                     std::string_view chart_js, const std::vector<RobustnessPanel>& robustness = {});
std::string backtest_report_html(const std::vector<BacktestReportInput>& runs, std::string_view chart_js);

struct PortfolioReportInput {
  const std::vector<Bars>* symbols = nullptr;
  const PortfolioResult* result = nullptr;
  std::string strategy, parameters;
  double cash = 100000;
};
// Each symbol's position value stacked over time, the portfolio's equity and its drawdown.
std::string portfolio_report_html(const PortfolioReportInput& run, std::string_view chart_js);

struct WalkForwardReportInput {
  const Bars* bars = nullptr;
  const WalkForwardResult* result = nullptr;
  const Strategy* strategy = nullptr;
  std::string metric;  // what the training windows were ranked by
  double cash = 100000;
};
// Per symbol: the stitched out-of-sample equity against buy-and-hold over the same bars, in- and
// out-of-sample sharpe per window, the parameters chosen over time, and the windows as a table.
std::string walk_forward_report_html(const std::vector<WalkForwardReportInput>& runs, std::string_view chart_js);

}  // namespace gt::report
