#include <fmt/format.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "execution_options.hpp"
#include "gt/grid.hpp"
#include "gt/study.hpp"
#include "gt/walk_forward.hpp"
#include "study_flags.hpp"

namespace gtrader {
namespace {

struct WalkForwardCommand {
  DataOptions data;
  ExecutionFlags exec;
  StrategyChoice strategy;
  StudyFlags study;
  std::vector<std::string> grid, fixed;
  std::string grid_file, out_path, equity_path, report_path;
  gt::OptimizeOptions opt;
  gt::WalkForwardOptions wf;
  bool json = false;
};

void run(WalkForwardCommand& c) {
  gt::StudyRequest request;
  resolve_strategy_and_grid(c.strategy, c.grid, c.fixed, c.grid_file, request);
  request.execution = c.exec.resolve();
  gt::metric_index(c.opt.metric);
  request.ranking = c.opt;
  c.study.apply(request);
  request.ranking.progress = false;  // many short studies: no bar
  const gt::WalkForwardFiles files{c.out_path, c.equity_path, c.report_path};
  gt::check_walk_forward_files(files);
  if (c.study.on_ray())
    c.study.hand_over_to_ray(c.data, {{"study", gt::study_request_json(request)},
                                      {"walk_forward",
                                       {{"train", c.wf.train},
                                        {"test", c.wf.test},
                                        {"anchored", c.wf.anchored},
                                        {"windows", c.out_path},
                                        {"equity", c.equity_path},
                                        {"report", c.report_path}}},
                                      {"json", c.json}});
  request.symbols = c.data.load();
  const auto results = gt::walk_forward(request, c.wf);
  gt::write_walk_forward_files(request, results, files);
  if (!c.report_path.empty()) fmt::print(stderr, "report written to {}\n", c.report_path);
  if (c.json)
    fmt::print("{}\n", gt::json_text(gt::walk_forward_json(request, results)));
  else
    fmt::print("{}", gt::walk_forward_text(request, c.wf, results));
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
  c->study.add_to(*cmd);
  cmd->callback([c] { run(*c); });
}

}  // namespace gtrader
