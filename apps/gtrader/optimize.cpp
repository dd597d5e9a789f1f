#include "gt/optimize.hpp"

#include <fmt/format.h>

#include <memory>
#include <optional>

#include "commands.hpp"
#include "execution_options.hpp"
#include "gt/error.hpp"
#include "gt/portfolio.hpp"
#include "gt/study.hpp"
#include "study_flags.hpp"

namespace gtrader {
namespace {

struct OptimizeCommand {
  DataOptions data;
  ExecutionFlags exec;
  StrategyChoice strategy;
  StudyFlags study;
  PortfolioFlags portfolio;
  std::vector<std::string> grid, fixed;
  std::string grid_file, out_path, report_path;
  gt::OptimizeOptions opt;
  bool json = false;
  bool robustness = false;
  std::size_t pbo_blocks = 0;
  CLI::Option* pbo_blocks_given = nullptr;
};

void run(OptimizeCommand& c) {
  gt::StudyRequest request;
  resolve_strategy_and_grid(c.strategy, c.grid, c.fixed, c.grid_file, request);
  request.execution = c.exec.resolve();
  gt::metric_index(c.opt.metric);  // an unknown metric fails before loading anything
  request.ranking = c.opt;
  request.ranking.robustness_blocks =
      gt::robustness_blocks(c.robustness, c.pbo_blocks_given->count() > 0 ? std::optional(c.pbo_blocks) : std::nullopt);
  c.study.apply(request);
  request.ranking.portfolio = c.portfolio.resolve();
  if (request.ranking.portfolio && c.study.on_ray())  // bad files or weights are told before a cluster starts
    gt::check_portfolio(c.data.load(), *request.ranking.portfolio);
  request.out = c.out_path;
  request.report = c.report_path;
  request.notice = [](const std::string& text) { fmt::print(stderr, "gtrader: {}\n", text); };
  if (c.study.on_ray())
    c.study.hand_over_to_ray(c.data, {{"study", gt::study_request_json(request)}, {"json", c.json}});
  request.symbols = c.data.load();
  const gt::StudyOutcome outcome = gt::run_study(request);
  if (outcome.store_rejected)
    fmt::print(stderr, "warning: {} damaged or foreign cache entries were ignored and recomputed\n",
               outcome.store_rejected);
  if (c.json)
    fmt::print("{}\n", gt::json_text(gt::study_summary_json(request, outcome)));
  else
    fmt::print("{}", gt::study_summary_text(request, outcome));
}

}  // namespace

void add_optimize(CLI::App& app) {
  auto c = std::make_shared<OptimizeCommand>();
  CLI::App* cmd = app.add_subcommand("optimize", "Evaluate every combination of a parameter grid and rank them");
  c->data.add_to(*cmd);
  c->strategy.add_to(*cmd);
  cmd->add_option("--grid", c->grid, "NAME=SPEC, SPEC a:b, a:b:step or v1,v2,... (repeatable)");
  cmd->add_option("--grid-file", c->grid_file, "YAML file: {grid: {NAME: SPEC or [values]}}")->check(CLI::ExistingFile);
  cmd->add_option("--param", c->fixed, "NAME=VALUE fixed for every combination (repeatable)");
  cmd->add_option("--metric", c->opt.metric, "Ranking metric (sharpe)");
  cmd->add_option("--top", c->opt.top, "How many of the best to print (10)")
      ->check(CLI::Range(0, 1000000).description("0 to 1000000"));
  cmd->add_option("--min-trades", c->opt.min_trades, "Rank only combinations with at least N closed trades (0)");
  cmd->add_option("--search", c->opt.search.method,
                  "How combinations are chosen (docs/SEMANTICS.md \"Search\"): grid (every one), random, halving or "
                  "bayes (--budget of them, from the grid's ranges and lists)")
      ->check(CLI::IsMember(std::vector<std::string>(gt::kSearchMethods.begin(), gt::kSearchMethods.end())));
  cmd->add_option("--budget", c->opt.search.budget, "With --search random|halving|bayes: combinations to evaluate");
  cmd->add_option("--seed", c->opt.search.seed, "With --search: the seed that makes the search reproducible (0)");
  cmd->add_option("--out", c->out_path, "Write every combination's parameters and metrics to this CSV file")
      ->check(output_file());
  cmd->add_flag("--robustness", c->robustness,
                "Per symbol, the best combination's deflated Sharpe ratio and the grid's probability of backtest "
                "overfitting (docs/SEMANTICS.md \"Out-of-sample evidence\"); computes every combination");
  c->pbo_blocks_given =
      cmd->add_option("--pbo-blocks", c->pbo_blocks, "With --robustness: blocks of the CSCV split, even, 4 to 24 (16)");
  cmd->add_option("--report", c->report_path,
                  "Write an HTML report of the results (heatmap, distributions, the best; with --robustness its "
                  "panel), which opens offline")
      ->check(output_file());
  c->exec.add_to(*cmd);
  cmd->add_flag("--json", c->json, "Print a JSON summary");
  c->study.add_to(*cmd);
  c->portfolio.add_to(*cmd);
  cmd->callback([c] { run(*c); });
}

}  // namespace gtrader
