#include <fmt/format.h>

#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "execution_options.hpp"
#include "gt/atomic_file.hpp"
#include "gt/grid.hpp"
#include "gt/report.hpp"
#include "gt/study.hpp"
#include "gt/walk_forward.hpp"

namespace gtrader {
namespace {

struct WalkForwardCommand {
  DataOptions data;
  ExecutionFlags exec;
  StrategyChoice strategy;
  std::vector<std::string> grid, fixed;
  std::string grid_file, out_path, equity_path, report_path;
  gt::OptimizeOptions opt;
  gt::WalkForwardOptions wf;
  bool json = false;
};

std::string windows_csv(const std::vector<std::pair<const gt::Bars*, gt::WalkForwardResult>>& runs,
                        const gt::Strategy& strategy, const std::string& metric) {
  const bool many = runs.size() > 1;
  std::string out = many ? "symbol," : "";
  out += "train_start,train_end,test_start,test_end";
  for (const auto& p : strategy.params) out += fmt::format(",{}", gt::csv_field(p.name));
  out += fmt::format(",in_sample_{0},out_of_sample_{0},in_sample_sharpe,out_of_sample_sharpe\n", metric);
  for (const auto& [bars, r] : runs)
    for (const auto& w : r.windows) {
      if (many) out += fmt::format("{},", gt::csv_field(bars->symbol));
      const auto time = [&](std::size_t t) { return gt::format_time(bars->time[t], bars->intraday); };
      out += fmt::format("{},{},{},{}", time(w.train_start), time(w.train_end), time(w.test_start), time(w.test_end));
      for (std::size_t p = 0; p < strategy.params.size(); ++p)
        out += fmt::format(",{}", gt::format_param_value(strategy.params[p], w.parameters[p]));
      out += fmt::format(",{},{},{},{}\n", format_value(gt::metric_value(w.in_sample, metric)),
                         format_value(gt::metric_value(w.out_of_sample, metric)), format_value(w.in_sample.sharpe),
                         format_value(w.out_of_sample.sharpe));
    }
  return out;
}

std::string equity_csv(const std::vector<std::pair<const gt::Bars*, gt::WalkForwardResult>>& runs) {
  const bool many = runs.size() > 1;
  std::string out = many ? "symbol,time,equity,position\n" : "time,equity,position\n";
  for (const auto& [bars, r] : runs)
    for (std::size_t i = 0; i < r.equity.size(); ++i) {
      if (many) out += fmt::format("{},", gt::csv_field(bars->symbol));
      out += fmt::format("{},{},{}\n", gt::format_time(bars->time[r.equity_bars[i]], bars->intraday),
                         format_value(r.equity[i]), format_value(r.position[i]));
    }
  return out;
}

void run(WalkForwardCommand& c) {
  c.strategy.require_one();
  std::shared_ptr<const gt::Strategy> rules;
  if (c.strategy.is_rules()) rules = gt::rules::compile(c.strategy.rules(split_assignments(c.fixed), c.grid));
  const gt::Strategy& strategy = rules ? *rules : gt::find_strategy(c.strategy.name);
  const gt::Grid grid = gt::parse_grid(
      strategy, c.grid, c.grid_file.empty() ? std::nullopt : std::optional<std::filesystem::path>(c.grid_file),
      split_assignments(c.fixed));
  const gt::ExecutionOptions options = c.exec.resolve();
  gt::metric_index(c.opt.metric);
  const std::string chart_js = c.report_path.empty() ? std::string() : gt::report::chart_library();
  for (const std::string* path : {&c.out_path, &c.equity_path, &c.report_path})
    if (!path->empty()) gt::check_output_path(*path);
  const auto all = c.data.load();
  for (const auto& bars : all) gt::walk_forward_windows(bars.size(), c.wf);  // every symbol's windows first
  std::vector<std::pair<const gt::Bars*, gt::WalkForwardResult>> runs;
  for (const auto& bars : all) runs.emplace_back(&bars, gt::walk_forward(bars, grid, options, c.opt, c.wf));
  if (!c.out_path.empty()) gt::write_file_atomically(c.out_path, windows_csv(runs, strategy, c.opt.metric));
  if (!c.equity_path.empty()) gt::write_file_atomically(c.equity_path, equity_csv(runs));
  if (!c.report_path.empty()) {
    std::vector<gt::report::WalkForwardReportInput> inputs;
    for (const auto& [bars, r] : runs) inputs.push_back({bars, &r, &strategy, c.opt.metric, options.cash});
    gt::write_file_atomically(c.report_path, gt::report::walk_forward_report_html(inputs, chart_js));
    fmt::print(stderr, "report written to {}\n", c.report_path);
  }
  if (c.json) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const auto& [bars, r] : runs) out.push_back(gt::walk_forward_json(*bars, strategy, r));
    fmt::print("{}\n", gt::json_text(runs.size() == 1 ? out[0] : out));
    return;
  }
  for (const auto& [bars, r] : runs) {
    fmt::print("{} | walk-forward of {} by {}: {} windows of {} training and {} test bars ({})\n", bars->symbol,
               strategy.name, c.opt.metric, r.windows.size(), c.wf.train, c.wf.test,
               c.wf.anchored ? "anchored" : "rolling");
    for (const auto& w : r.windows)
      fmt::print("  test {} to {}: {}  in-sample {} {:.4f}, out-of-sample {:.4f}\n",
                 gt::format_time(bars->time[w.test_start], bars->intraday),
                 gt::format_time(bars->time[w.test_end], bars->intraday), strategy.describe(w.parameters), c.opt.metric,
                 gt::metric_value(w.in_sample, c.opt.metric), gt::metric_value(w.out_of_sample, c.opt.metric));
    const auto& m = r.out_of_sample;
    fmt::print(
        "  out of sample, stitched: total return {:.2f} %, sharpe {:.3f}, max drawdown {:.2f} %, {} trades; "
        "walk-forward efficiency {}\n",
        100 * m.total_return, m.sharpe, 100 * m.max_drawdown, m.trades,
        std::isnan(r.efficiency) ? std::string("undefined (in-sample sharpe 0)") : fmt::format("{:.3f}", r.efficiency));
  }
}

}  // namespace

void add_walkforward(CLI::App& app) {
  auto c = std::make_shared<WalkForwardCommand>();
  CLI::App* cmd = app.add_subcommand(
      "walkforward", "Optimize a grid on rolling (or anchored) training windows and run each best on the window after");
  c->data.add_to(*cmd);
  c->strategy.add_to(*cmd);
  cmd->add_option("--grid", c->grid, "NAME=SPEC, SPEC a:b, a:b:step or v1,v2,... (repeatable)");
  cmd->add_option("--grid-file", c->grid_file, "YAML file: {grid: {NAME: SPEC or [values]}}")->check(CLI::ExistingFile);
  cmd->add_option("--param", c->fixed, "NAME=VALUE fixed for every combination (repeatable)");
  cmd->add_option("--metric", c->opt.metric, "Metric each training window is ranked by (sharpe)");
  cmd->add_option("--min-trades", c->opt.min_trades, "Rank only combinations with at least N closed trades (0)");
  cmd->add_option("--threads", c->opt.threads, "Worker threads (0: all cores)")
      ->check(CLI::Range(0, 4096).description("0 to 4096"));
  cmd->add_option("--train", c->wf.train, "Bars of each training window")->required();
  cmd->add_option("--test", c->wf.test, "Bars of each test window (the step between windows)")->required();
  cmd->add_flag("--anchored", c->wf.anchored, "Every training window starts at the first bar (else it rolls)");
  c->exec.add_to(*cmd);
  cmd->add_flag("--json", c->json, "Print the windows, the stitched out-of-sample metrics and the efficiency as JSON");
  cmd->add_option("--out", c->out_path, "Write the windows (times, chosen parameters, metrics) to this CSV file")
      ->check(output_file());
  cmd->add_option("--equity", c->equity_path, "Write the stitched out-of-sample equity to this CSV file")
      ->check(output_file());
  cmd->add_option("--report", c->report_path,
                  "Write an HTML report (stitched equity against buy-and-hold, sharpe per window, parameters over "
                  "time) to this file")
      ->check(output_file());
  cmd->callback([c] { run(*c); });
}

}  // namespace gtrader
