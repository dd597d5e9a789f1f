// HTML reports: the numbers come from results_table.cpp (ranking, heatmap cells), the drawing is
// Vega-Lite's.
// Every chart reports back when it has drawn, into #gt-status, so that a headless browser (the
// tests) can tell a drawn chart from an empty one.
#include "gt/report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "gt/error.hpp"

namespace gt::report {
namespace {

using nlohmann::json;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// The Vega-Lite version every chart spec is written for (the embedded bundle must render it).
constexpr const char* kVegaLiteSchema = "https://vega.github.io/schema/vega-lite/v6.json";

// A Vega-Lite chart of one mark over `values`: every chart of the reports but the layered and the
// side-by-side ones.
json mark_chart(std::size_t width, std::size_t height, json values, json mark, json encoding) {
  json chart = {{"$schema", kVegaLiteSchema}, {"width", width}, {"height", height}};
  chart["data"] = {{"values", std::move(values)}};
  chart["mark"] = std::move(mark);
  chart["encoding"] = std::move(encoding);
  return chart;
}

std::string escape_html(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// JSON inside <script>: "</" would end the script element early.
std::string script_json(const json& j) {
  std::string text = j.dump();
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '<' && i + 1 < text.size() && text[i + 1] == '/') {
      out += "<\\/";
      ++i;
    } else {
      out += text[i];
    }
  }
  return out;
}

json number_or_null(double v) {
  return std::isfinite(v) ? json(v) : json(nullptr);
}

std::string format_metric(double v) {
  if (!std::isfinite(v)) return "";
  return fmt::format("{:.4g}", v);
}

struct Chart {
  std::string id, title;
  json spec;
};

// A time axis over `field`, untitled (the dates speak for themselves).
json time_axis(const std::string& field = "time") {
  return {{"field", field}, {"type", "temporal"}, {"title", nullptr}};
}

// How far `equity` lies under its highest value so far (`peak`, updated), as a negative share: the
// drawdown charts' values.
double drawdown_below_peak(double equity, double& peak) {
  peak = std::max(peak, equity);
  return -(1.0 - equity / peak);
}

// The equity line and the drawdown area under it, over `curve`'s time, equity and drawdown fields:
// the backtest and portfolio reports draw them alike.
void add_equity_and_drawdown(std::vector<Chart>& charts, const std::string& prefix, const std::string& equity_title,
                             const json& curve) {
  charts.push_back(
      {prefix + "equity", equity_title,
       mark_chart(1000, 200, curve, {{"type", "line"}, {"strokeWidth", 1}, {"tooltip", true}},
                  {{"x", time_axis()},
                   {"y", {{"field", "equity"}, {"type", "quantitative"}, {"scale", {{"zero", false}}}}}})});
  charts.push_back(
      {prefix + "drawdown", "Drawdown",
       mark_chart(1000, 150, curve, {{"type", "area"}, {"color", "#c0392b"}, {"opacity", 0.6}},
                  {{"x", time_axis()},
                   {"y", {{"field", "drawdown"}, {"type", "quantitative"}, {"axis", {{"format", "%"}}}}}})});
}

// The page: styles, the chart library, the charts, and the script that reports their drawing.
std::string page(std::string_view title, std::string_view body_html, const std::vector<Chart>& charts,
                 std::string_view chart_js) {
  json list = json::array();
  for (const auto& c : charts) list.push_back({{"id", c.id}, {"spec", c.spec}});
  std::string html;
  html.reserve(chart_js.size() + body_html.size() + 65536);
  html += "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>";
  html += escape_html(title);
  html += R"(</title>
<style>
body { font-family: system-ui, sans-serif; margin: 24px 32px; color: #1d2330; max-width: 1200px; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
.note { color: #566; font-size: 13px; }
.chart { margin: 8px 0 18px; }
table { border-collapse: collapse; font-size: 12px; width: 100%; }
th, td { padding: 3px 5px; border-bottom: 1px solid #dde; text-align: right; }
th { background: #f3f5f8; }
#gt-status { color: #889; font-size: 11px; }
</style>
<script>)";
  html += chart_js;
  html += "</script>\n</head><body>\n";
  html += body_html;
  html += R"(<pre id="gt-status">drawing</pre>
<script>
const gtCharts = )";
  html += script_json(list);
  html += R"(;
(function () {
  const status = document.getElementById('gt-status');
  const fail = (what) => { status.textContent = 'error: ' + what; };
  window.addEventListener('error', (e) => fail(e.message));
  Promise.all(gtCharts.map((c) => vegaEmbed('#' + c.id, c.spec, { renderer: 'svg', actions: false })))
    .then(() => {
      // A chart has drawn when its SVG holds data marks, not just axes.
      const drawn = gtCharts.filter((c) => document.querySelectorAll('#' + c.id + ' svg g.role-mark > *').length > 0);
      status.textContent = 'charts=' + gtCharts.length + ' drawn=' + drawn.length +
        ' ms=' + Math.round(performance.now());
    })
    .catch((e) => fail(e && e.message ? e.message : String(e)));
})();
</script>
</body></html>
)";
  return html;
}

std::string chart_div(const Chart& c) {
  return fmt::format("<h2>{}</h2>\n<div class=\"chart\" id=\"{}\"></div>\n", escape_html(c.title), c.id);
}

std::string value_text(const ResultsTable& r, std::size_t param, double v) {
  if (r.boolean_params[param]) return v != 0 ? "true" : "false";
  return fmt::format("{}", v);
}

}  // namespace

std::string chart_library() {
  std::filesystem::path path;
  if (const char* env = std::getenv("GT_REPORT_JS"); env && *env) {
    path = env;
  } else {
    path = GT_BUILT_REPORT_JS;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw Error(fmt::format(
        "the charts' JavaScript ({}) is missing: scripts/setup.sh makes it from PyPI's vl-convert-python; or point "
        "GT_REPORT_JS at a vega + vega-lite + vega-embed bundle",
        path.string()));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

namespace {

// The robustness panel: a line of figures, the logits' histogram (binned here, so that millions
// of splits stay a few bars) with PBO's threshold at 0, and the chronological split's rank scatter
// (at most kMostPoints combinations, evenly spread over the grid).
std::string robustness_panel(const RobustnessPanel& panel, const std::string& suffix, std::vector<Chart>& charts) {
  const SymbolRobustness& x = panel.figures;
  const OverfittingProbability& o = x.overfitting;
  std::string html = "<h2>Is the best combination real?</h2>\n";
  html += fmt::format(
      "<p class=\"note\">Deflated Sharpe ratio {:.3f}: the best's per-bar sharpe {:.4f} against {:.4f} expected of the "
      "best of {} unskilled trials. Probability of backtest overfitting {:.3f}: the share of the {} CSCV splits of {} "
      "blocks whose in-sample best ranks at or below the out-of-sample median (docs/SEMANTICS.md \"Out-of-sample "
      "evidence\").</p>\n",
      x.deflated.dsr, x.deflated.sharpe, x.deflated.expected_max, x.deflated.trials, o.pbo, o.splits, panel.blocks);
  // Bins (from, to] with 0 on an edge, so that every bar is either overfit (to <= 0) or not.
  const auto [low, high] = std::minmax_element(o.logits.begin(), o.logits.end());
  constexpr double kBins = 40;
  const double width = *high > *low ? (*high - *low) / kBins : 1.0;
  const double origin = (std::ceil(*low / width) - 1) * width;
  std::map<long long, std::uint64_t> counts;
  for (const double l : o.logits) ++counts[static_cast<long long>(std::ceil((l - origin) / width)) - 1];
  json bins = json::array();
  for (const auto& [b, count] : counts)
    bins.push_back({{"from", origin + width * static_cast<double>(b)},
                    {"to", origin + width * static_cast<double>(b + 1)},
                    {"splits", count}});
  charts.push_back(
      {"logits" + suffix,
       fmt::format("Logits of the {} splits' relative ranks (at or below 0: overfit; median {:.2f})", o.splits,
                   o.logit_median),
       {{"$schema", kVegaLiteSchema},
        {"width", 560},
        {"height", 200},
        {"layer",
         {{{"data", {{"values", bins}}},
           {"mark", {{"type", "bar"}, {"tooltip", true}}},
           {"encoding",
            {{"x", {{"field", "from"}, {"type", "quantitative"}, {"title", "logit λ = ln(w / (1 - w))"}}},
             {"x2", {{"field", "to"}}},
             {"y", {{"field", "splits"}, {"type", "quantitative"}}},
             {"y2", {{"datum", 0}}},
             {"color", {{"condition", {{"test", "datum.to <= 0"}, {"value", "#c0392b"}}}, {"value", "#4c78a8"}}}}}},
          {{"data", {{"values", json::array({json{{"zero", 0}}})}}},
           {"mark", {{"type", "rule"}, {"strokeDash", {4, 3}}}},
           {"encoding", {{"x", {{"field", "zero"}, {"type", "quantitative"}}}}}}}}}});
  const HalfRanks& h = x.chronological;
  constexpr std::size_t kMostPoints = 5000;
  const std::size_t n = h.in_sample.size(), step = std::max<std::size_t>(1, (n + kMostPoints - 1) / kMostPoints);
  json points = json::array();
  for (std::size_t i = 0; i < n; i += step)
    points.push_back({{"in_sample", h.in_sample[i]}, {"out_of_sample", h.out_of_sample[i]}});
  charts.push_back(
      {"ranks" + suffix,
       fmt::format("Relative rank by per-bar sharpe, first half of the bars (in sample) against the second (out of "
                   "sample): rank correlation {:.2f}{}",
                   h.rank_correlation, step > 1 ? fmt::format(" ({} of {} combinations shown)", points.size(), n) : ""),
       mark_chart(420, 420, points, {{"type", "circle"}, {"size", 14}, {"opacity", 0.5}},
                  {{"x", {{"field", "in_sample"}, {"type", "quantitative"}, {"title", "in-sample rank (1 = best)"}}},
                   {"y", {{"field", "out_of_sample"}, {"type", "quantitative"}, {"title", "out-of-sample rank"}}}})});
  return html + chart_div(charts[charts.size() - 2]) + chart_div(charts.back());
}

// One symbol's part of the optimization report (its heatmap, distributions, robustness panel and
// best combinations), its charts added to `charts` with ids ending in `suffix`; under a heading of
// its name where the report has several.
std::string symbol_section(const ResultsTable& r, const OptimizationReportOptions& o, const std::string& symbol,
                           const std::vector<RobustnessPanel>& robustness, bool headed, const std::string& suffix,
                           std::vector<Chart>& charts) {
  const std::size_t metric = column_of(r.metrics, o.metric, "metric");
  const bool higher_better = metric_higher_is_better(o.metric);
  const std::vector<std::size_t> rows = rows_of_symbol(r, symbol);

  // Axes: as asked, else the first two parameters that take several values.
  const auto distinct = [&](std::size_t p) {
    std::vector<double> v;
    for (std::size_t i : rows) v.push_back(r.param_values[p][i]);
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
  };
  std::vector<std::size_t> varying;
  for (std::size_t p = 0; p < r.params.size(); ++p)
    if (distinct(p).size() > 1) varying.push_back(p);
  const auto pick = [&](const std::string& name, std::size_t nth) -> std::size_t {
    if (!name.empty()) return column_of(r.params, name, "parameter");
    if (varying.size() <= nth)
      throw ParamError({"x", "y"}, "the heatmap needs two parameters that take several values; give x and y");
    return varying[nth];
  };
  const std::size_t px = pick(o.x, 0);
  const std::size_t py = pick(o.y, o.x.empty() || varying.empty() || varying[0] != px ? 1 : 0);
  if (px == py) throw ParamError({"x", "y"}, "x and y must be two different parameters");

  const std::vector<std::size_t> ranked = ranked_rows(r, rows, metric);
  const std::size_t best = ranked.front();

  std::string others_text;
  std::vector<std::string> fixed;
  for (const std::size_t p : varying)  // a parameter with one value in every row is no dimension of the study
    if (p != px && p != py) fixed.push_back(r.params[p] + "=" + value_text(r, p, r.param_values[p][best]));
  json cell_values = json::array();
  for (const auto& cell : heatmap_cells(r, rows, px, py, metric, o.others, best))
    cell_values.push_back({{r.params[px], value_text(r, px, cell.x)},
                           {r.params[py], value_text(r, py, cell.y)},
                           {o.metric, number_or_null(cell.value)}});
  if (o.others == Others::kBest)
    others_text = fixed.empty() ? "no other parameters"
                                : "other parameters at the best combination's values: " +
                                      fmt::format("{}", fmt::join(fixed, ", "));
  else
    others_text = fmt::format("{} over the other parameters{}", o.others == Others::kMean ? "mean" : "best value",
                              fixed.empty() ? "" : " (" + std::to_string(fixed.size()) + ")");
  const auto sort_numeric = [&](std::size_t p) {
    json order = json::array();
    for (double v : distinct(p)) order.push_back(value_text(r, p, v));
    return order;
  };
  const std::size_t first_chart = charts.size();
  charts.push_back({"heatmap" + suffix,
                    fmt::format("{} over {} x {} ({})", o.metric, r.params[px], r.params[py], others_text),
                    mark_chart(std::min<std::size_t>(900, 28 * distinct(px).size() + 40),
                               std::min<std::size_t>(700, 18 * distinct(py).size() + 40), cell_values,
                               {{"type", "rect"}, {"tooltip", true}},
                               {{"x", {{"field", r.params[px]}, {"type", "ordinal"}, {"sort", sort_numeric(px)}}},
                                {"y", {{"field", r.params[py]}, {"type", "ordinal"}, {"sort", sort_numeric(py)}}},
                                {"color",
                                 {{"field", o.metric},
                                  {"type", "quantitative"},
                                  {"scale", {{"scheme", "redyellowgreen"}, {"reverse", !higher_better}}}}}})});

  // Distributions of the main metrics over every combination of this symbol.
  json dist_rows = json::array();
  const std::vector<std::string> shown = {"sharpe", "total_return", "max_drawdown", "trades"};
  std::vector<std::size_t> shown_columns;
  for (const auto& name : shown)
    if (std::find(r.metrics.begin(), r.metrics.end(), name) != r.metrics.end())
      shown_columns.push_back(column_of(r.metrics, name, "metric"));
  for (std::size_t i : rows) {
    json row = json::object();
    for (std::size_t m : shown_columns) row[r.metrics[m]] = number_or_null(r.metric_values[m][i]);
    dist_rows.push_back(row);
  }
  json histograms = json::array();
  for (std::size_t m : shown_columns)
    histograms.push_back({{"mark", {{"type", "bar"}, {"tooltip", true}}},
                          {"width", 230},
                          {"height", 150},
                          {"encoding",
                           {{"x", {{"field", r.metrics[m]}, {"bin", {{"maxbins", 40}}}, {"type", "quantitative"}}},
                            {"y", {{"aggregate", "count"}, {"type", "quantitative"}}}}}});
  charts.push_back({"distributions" + suffix,
                    fmt::format("Distributions over {} combinations", rows.size()),
                    {{"$schema", kVegaLiteSchema}, {"data", {{"values", dist_rows}}}, {"hconcat", histograms}}});

  // The best combinations, as a table.
  std::string table = "<h2>Best combinations by " + escape_html(o.metric) + "</h2>\n<table><tr><th>#</th>";
  // Column names may wrap at their underscores, so that every column fits the page (and the PNG).
  const auto header = [](const std::string& column) {
    std::string name = escape_html(column);
    for (std::size_t at = name.find('_'); at != std::string::npos; at = name.find('_', at + 6))
      name.insert(at + 1, "<wbr>");
    return "<th>" + name + "</th>";
  };
  for (const auto& p : r.params) table += header(p);
  for (const auto& m : r.metrics) table += header(m);
  table += "</tr>\n";
  for (std::size_t k = 0; k < std::min(o.top, ranked.size()); ++k) {
    const std::size_t i = ranked[k];
    table += fmt::format("<tr><td>{}</td>", k + 1);
    for (std::size_t p = 0; p < r.params.size(); ++p)
      table += "<td>" + value_text(r, p, r.param_values[p][i]) + "</td>";
    for (std::size_t m = 0; m < r.metrics.size(); ++m) table += "<td>" + format_metric(r.metric_values[m][i]) + "</td>";
    table += "</tr>\n";
  }
  table += "</table>\n";

  std::string body = headed ? "<h2>" + escape_html(symbol) + "</h2>\n" : "";
  std::vector<std::string> params_of_best;
  for (std::size_t p = 0; p < r.params.size(); ++p)
    params_of_best.push_back(r.params[p] + "=" + value_text(r, p, r.param_values[p][best]));
  body +=
      fmt::format("<p class=\"note\">{}{} combinations; ranked by {} ({} is better); best: {} with {} = {}</p>\n",
                  symbol.empty() ? "" : escape_html(symbol) + ": ", rows.size(), escape_html(o.metric),
                  higher_better ? "higher" : "lower", escape_html(fmt::format("{}", fmt::join(params_of_best, " "))),
                  escape_html(o.metric), format_metric(r.metric_values[metric][best]));
  body += chart_div(charts[first_chart]) + chart_div(charts[first_chart + 1]);
  for (const RobustnessPanel& panel : robustness)
    if (panel.symbol == symbol || (robustness.size() == 1 && symbol.empty()))
      body += robustness_panel(panel, suffix, charts);
  return body + table;
}

}  // namespace

std::string optimization_report_html(const ResultsTable& r, const OptimizationReportOptions& o,
                                     std::string_view chart_js, const std::vector<RobustnessPanel>& robustness) {
  column_of(r.metrics, o.metric, "metric");
  // Every symbol of the file in its order, or the one asked for.
  std::vector<std::string> symbols;
  if (!o.symbol.empty())
    symbols.push_back(o.symbol);
  else
    for (const std::string& symbol : r.symbols)
      if (std::find(symbols.begin(), symbols.end(), symbol) == symbols.end()) symbols.push_back(symbol);
  const std::string title = o.title.empty() ? "Optimization report" : o.title;
  std::string body = "<h1>" + escape_html(title) + "</h1>\n";
  std::vector<Chart> charts;
  for (std::size_t k = 0; k < symbols.size(); ++k)
    body += symbol_section(r, o, symbols[k], robustness, symbols.size() > 1,
                           symbols.size() > 1 ? fmt::format("-{}", k + 1) : std::string(), charts);
  return page(title, body, charts, chart_js);
}

std::string portfolio_report_html(const PortfolioReportInput& run, std::string_view chart_js) {
  const std::vector<Bars>& symbols = *run.symbols;
  const PortfolioResult& r = *run.result;
  const bool intraday = symbols.front().intraday;
  json values = json::array(), curve = json::array();
  double peak = run.cash;
  for (std::size_t u = 0; u < r.time.size(); ++u) {
    const std::string time = format_time(r.time[u], intraday);
    for (std::size_t s = 0; s < symbols.size(); ++s)
      values.push_back({{"time", time}, {"symbol", symbols[s].symbol}, {"value", r.value[s][u]}});
    curve.push_back({{"time", time}, {"equity", r.equity[u]}, {"drawdown", drawdown_below_peak(r.equity[u], peak)}});
  }
  std::vector<Chart> charts;
  charts.push_back({"values", "Value held in each symbol (stacked; the rest of the equity is cash)",
                    mark_chart(1000, 260, values, {{"type", "area"}, {"tooltip", true}},
                               {{"x", time_axis()},
                                {"y", {{"field", "value"}, {"type", "quantitative"}, {"stack", "zero"}}},
                                {"color", {{"field", "symbol"}, {"type", "nominal"}}}})});
  add_equity_and_drawdown(charts, "", "Portfolio equity", curve);
  const Metrics& m = r.metrics;
  std::string body = "<h1>Portfolio report</h1>\n";
  body += fmt::format(
      "<p class=\"note\">{} symbols, one account: {} {}. Total return {:.2f} %, sharpe {:.3f}, max drawdown {:.2f} %, "
      "{} trades{}.</p>\n",
      symbols.size(), escape_html(run.strategy), escape_html(run.parameters), 100 * m.total_return, m.sharpe,
      100 * m.max_drawdown, m.trades,
      r.skipped_entries ? fmt::format(", {} entries skipped for lack of cash", r.skipped_entries) : "");
  for (const auto& c : charts) body += chart_div(c);
  return page("Portfolio report", body, charts, chart_js);
}

std::string backtest_report_html(const std::vector<BacktestReportInput>& runs, std::string_view chart_js) {
  std::vector<Chart> charts;
  std::string body = "<h1>Backtest report</h1>\n";
  for (std::size_t k = 0; k < runs.size(); ++k) {
    const Bars& bars = *runs[k].bars;
    const BacktestResult& result = *runs[k].result;
    json series = json::array();
    double peak = runs[k].cash;
    for (std::size_t t = 0; t < bars.size(); ++t) {
      series.push_back({{"time", format_time(bars.time[t], bars.intraday)},
                        {"close", bars.close[t]},
                        {"equity", result.equity[t]},
                        {"drawdown", drawdown_below_peak(result.equity[t], peak)}});
    }
    // Every fill: buys and sells by shape, entries and each reason an exit happened for by colour
    // (a stop-loss stands out from a target or a rule's exit).
    json fills = json::array();
    const TradeColumns trades = trade_columns(result.trades);
    for (std::size_t i = 0; i < trades.size(); ++i) {
      const bool is_long = trades.side[i] > 0;
      fills.push_back({{"time", format_time(bars.time[static_cast<std::size_t>(trades.entry_bar[i])], bars.intraday)},
                       {"price", trades.entry_price[i]},
                       {"order", is_long ? "buy" : "sell"},
                       {"fill", is_long ? "long entry" : "short entry"}});
      if (!std::isnan(trades.exit_bar[i]))
        fills.push_back({{"time", format_time(bars.time[static_cast<std::size_t>(trades.exit_bar[i])], bars.intraday)},
                         {"price", trades.exit_price[i]},
                         {"order", is_long ? "sell" : "buy"},
                         {"fill", fmt::format("exit: {}", trades.exit_reason[i])}});
    }
    const std::string prefix = fmt::format("s{}", k);
    charts.push_back({prefix + "-price",
                      "Price and fills",
                      {{"$schema", kVegaLiteSchema},
                       {"width", 1000},
                       {"height", 260},
                       {"layer",
                        {{{"data", {{"values", series}}},
                          {"mark", {{"type", "line"}, {"strokeWidth", 1}}},
                          {"encoding",
                           {{"x", time_axis()},
                            {"y", {{"field", "close"}, {"type", "quantitative"}, {"scale", {{"zero", false}}}}}}}},
                         {{"data", {{"values", fills}}},
                          {"mark", {{"type", "point"}, {"filled", true}, {"size", 36}, {"tooltip", true}}},
                          {"encoding",
                           {{"x", time_axis()},
                            {"y", {{"field", "price"}, {"type", "quantitative"}}},
                            {"shape",
                             {{"field", "order"},
                              {"type", "nominal"},
                              {"scale", {{"domain", {"buy", "sell"}}, {"range", {"triangle-up", "triangle-down"}}}}}},
                            {"color",
                             {{"field", "fill"},
                              {"type", "nominal"},
                              {"scale",
                               {{"domain",
                                 {"long entry", "short entry", "exit: rule", "exit: stop_loss", "exit: take_profit",
                                  "exit: trailing_stop", "exit: max_bars", "exit: ruin"}},
                                {"range",
                                 {"#1a9850", "#762a83", "#4d4d4d", "#d73027", "#2166ac", "#f46d43", "#b8860b",
                                  "#000000"}}}}}}}}}}}}});
    add_equity_and_drawdown(charts, prefix + "-", "Equity", series);
    const Metrics& m = result.metrics;
    body += fmt::format("<h2>{} | {} {}</h2>\n<p class=\"note\">{} bars, {} to {}</p>\n", escape_html(bars.symbol),
                        escape_html(runs[k].strategy), escape_html(runs[k].parameters), bars.size(),
                        format_time(bars.time.front(), bars.intraday), format_time(bars.time.back(), bars.intraday));
    body += "<table><tr>";
    const auto& names = metric_names();
    for (const auto& n : names) body += "<th>" + escape_html(n) + "</th>";
    body += "</tr><tr>";
    for (std::size_t i = 0; i < names.size(); ++i) body += "<td>" + format_metric(metric_value(m, i)) + "</td>";
    body += "</tr></table>\n";
    for (std::size_t c = charts.size() - 3; c < charts.size(); ++c) body += chart_div(charts[c]);
  }
  return page("Backtest report", body, charts, chart_js);
}

std::string walk_forward_report_html(const std::vector<WalkForwardReportInput>& runs, std::string_view chart_js) {
  std::vector<Chart> charts;
  std::string body = "<h1>Walk-forward report</h1>\n";
  for (std::size_t k = 0; k < runs.size(); ++k) {
    const Bars& bars = *runs[k].bars;
    const WalkForwardResult& r = *runs[k].result;
    const Strategy& strategy = *runs[k].strategy;
    const auto time = [&](std::size_t t) { return format_time(bars.time[t], bars.intraday); };
    // Buy-and-hold over the same bars: the starting cash in at the close before the first test bar.
    json equity = json::array();
    const double base = bars.close[r.equity_bars.front() - 1];
    for (std::size_t i = 0; i < r.equity.size(); ++i) {
      const std::size_t t = r.equity_bars[i];
      equity.push_back({{"time", time(t)}, {"series", "walk-forward (out of sample)"}, {"equity", r.equity[i]}});
      equity.push_back(
          {{"time", time(t)}, {"series", "buy and hold"}, {"equity", runs[k].cash * bars.close[t] / base}});
    }
    json sharpes = json::array(), chosen = json::array();
    std::string rows;
    for (const WalkForwardWindow& w : r.windows) {
      sharpes.push_back({{"test_start", time(w.test_start)},
                         {"sample", "in sample"},
                         {"sharpe", number_or_null(w.in_sample.sharpe)}});
      sharpes.push_back({{"test_start", time(w.test_start)},
                         {"sample", "out of sample"},
                         {"sharpe", number_or_null(w.out_of_sample.sharpe)}});
      for (std::size_t p = 0; p < strategy.signal_param_count(); ++p)
        chosen.push_back(
            {{"test_start", time(w.test_start)}, {"parameter", strategy.params[p].name}, {"value", w.parameters[p]}});
      rows += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                          escape_html(time(w.test_start)), escape_html(time(w.test_end)),
                          escape_html(strategy.describe(w.parameters)),
                          format_metric(metric_value(w.in_sample, runs[k].metric)),
                          format_metric(metric_value(w.out_of_sample, runs[k].metric)));
    }
    const std::string prefix = fmt::format("w{}", k);
    // Lines over time, one per `color` value; a point on each window's value where the x are windows.
    const auto line = [&](const std::string& id, const std::string& title, const json& values, const std::string& x,
                          const std::string& y, const std::string& color, bool points) {
      charts.push_back({prefix + id, title,
                        mark_chart(1000, 220, values, {{"type", "line"}, {"point", points}, {"tooltip", true}},
                                   {{"x", time_axis(x)},
                                    {"y", {{"field", y}, {"type", "quantitative"}, {"scale", {{"zero", false}}}}},
                                    {"color", {{"field", color}, {"type", "nominal"}}}})});
    };
    line("-equity", "Out-of-sample equity against buy-and-hold", equity, "time", "equity", "series", false);
    line("-sharpe", "Sharpe per window, in and out of sample", sharpes, "test_start", "sharpe", "sample", true);
    line("-params", "Parameters chosen, by test window", chosen, "test_start", "value", "parameter", true);
    const Metrics& m = r.out_of_sample;
    body += fmt::format(
        "<h2>{} | {}</h2>\n<p class=\"note\">{} windows; out of sample: total return {:.2f} %, sharpe {:.3f}, max "
        "drawdown {:.2f} %, {} trades; walk-forward efficiency {}</p>\n",
        escape_html(bars.symbol), escape_html(strategy.name), r.windows.size(), 100 * m.total_return, m.sharpe,
        100 * m.max_drawdown, m.trades,
        std::isfinite(r.efficiency) ? fmt::format("{:.3f}", r.efficiency) : "undefined");
    for (std::size_t c = charts.size() - 3; c < charts.size(); ++c) body += chart_div(charts[c]);
    body += fmt::format(
        "<table><tr><th>test start</th><th>test end</th><th>parameters</th><th>in-sample {0}</th><th>out-of-sample "
        "{0}</th></tr>\n{1}</table>\n",
        escape_html(runs[k].metric), rows);
  }
  return page("Walk-forward report", body, charts, chart_js);
}

}  // namespace gt::report
