#include "gt/optimize.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "commands.hpp"
#include "execution_options.hpp"
#include "gt/atomic_file.hpp"
#include "gt/cache.hpp"
#include "gt/error.hpp"
#include "gt/gpu.hpp"
#include "gt/rules.hpp"
#include "gt/study.hpp"

namespace gtrader {
namespace {

struct OptimizeCommand {
  DataOptions data;
  ExecutionFlags exec;
  StrategyChoice strategy;
  std::vector<std::string> grid, fixed;
  std::string grid_file, out_path, report_path;
  gt::OptimizeOptions opt;
  bool json = false;
  bool no_progress = false;
  std::string engine = "local";
  std::string address;
  std::string workers;
  std::string chunk_size;
  std::string cache_location;  // a folder or redis://...; empty: the cache folder
  std::string cache_dir;
  bool no_cache = false;
  bool resume = false;
  std::string gpus = "all";
  bool force = false;
  bool robustness = false;
  std::size_t pbo_blocks = 0;
  CLI::Option* pbo_blocks_given = nullptr;
};

// The command line's store policy: the cache folder unless told otherwise; --no-cache keeps a
// journal private to the run. On Ray only a cache given explicitly is used (every node must
// reach it); a journal would live on this machine alone.
gt::StudyStore store_of(const OptimizeCommand& c) {
  const std::filesystem::path dir = c.cache_dir.empty() ? gt::default_cache_dir() : std::filesystem::path(c.cache_dir);
  gt::StudyStore store;
  store.resume = c.resume;
  if (c.engine == "ray") {
    if (!c.no_cache) store.cache = !c.cache_location.empty() ? c.cache_location : c.cache_dir;
  } else if (c.no_cache) {
    store.journal = dir / "runs";
  } else {
    store.cache = c.cache_location.empty() ? dir.string() : c.cache_location;
  }
  return store;
}

// --engine ray: the study, parsed here, goes to the Python package's Ray executor as the
// library's JSON request (it is not parsed again there); the ranking, the results file and the
// summary stay the library's. Does not return unless exec fails.
[[noreturn]] void hand_over_to_ray(const OptimizeCommand& c, const gt::StudyRequest& request) {
  nlohmann::ordered_json j = gt::study_request_json(request);
  nlohmann::ordered_json inputs = nlohmann::ordered_json::array();
  for (const auto& input : c.data.inputs) inputs.push_back(input.string());
  const auto whole = [](const std::string& text) -> nlohmann::ordered_json {
    if (text.empty()) return nullptr;
    if (text == "auto") return text;
    return std::stoll(text);
  };
  nlohmann::ordered_json handover = {
      {"study", j},
      {"data", {{"inputs", inputs}, {"skip_bad_rows", c.data.skip_bad_rows}}},
      {"ray",
       {{"address", c.address.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(c.address)},
        {"workers", c.workers.empty() ? nlohmann::ordered_json("auto") : whole(c.workers)},
        {"chunk_size", whole(c.chunk_size)}}},
      {"json", c.json}};
  std::string python;
  if (const char* env = std::getenv("GT_PYTHON"))
    python = env;
  else if (std::filesystem::exists(GT_DEFAULT_PYTHON))
    python = GT_DEFAULT_PYTHON;
  else
    python = "python3";
  std::vector<std::string> args = {python, "-m", "gpt_trader.ray_study", handover.dump()};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::fflush(stdout);
  ::execvp(python.c_str(), argv.data());
  throw gt::Error(
      fmt::format("--engine ray: cannot run {} ({}); install the Python package with `pip install .` "
                  "and Ray with `pip install 'ray>=2.40'`, or set GT_PYTHON",
                  python, std::strerror(errno)));
}

void run(OptimizeCommand& c) {
  gt::StudyRequest request;
  c.strategy.require_one();
  if (c.strategy.is_rules()) {
    if (!c.strategy.entry.empty() && !c.grid_file.empty())
      throw gt::ParamError(
          "inline rules take their parameters from --param and --grid; with --grid-file, write the "
          "rules in a --strategy-file");
    const gt::rules::RuleTexts texts = c.strategy.rules(split_assignments(c.fixed), c.grid);
    request.rule_strategy = gt::rules::compile(texts);
    request.rules = gt::rules::rules_json(texts);
  }
  const gt::Strategy& strategy = request.rule_strategy ? *request.rule_strategy : gt::find_strategy(c.strategy.name);
  request.grid.emplace(gt::parse_grid(
      strategy, c.grid, c.grid_file.empty() ? std::nullopt : std::optional<std::filesystem::path>(c.grid_file),
      split_assignments(c.fixed)));
  request.execution = c.exec.resolve();
  gt::metric_index(c.opt.metric);  // an unknown metric fails before loading anything
  request.ranking = c.opt;
  request.ranking.robustness_blocks =
      gt::robustness_blocks(c.robustness, c.pbo_blocks_given->count() > 0 ? std::optional(c.pbo_blocks) : std::nullopt);
  request.ranking.progress = !c.no_progress && ::isatty(STDERR_FILENO);
  request.ranking.gpus = gt::gpus_for(c.opt.device, c.gpus);
  request.store = store_of(c);
  request.out = c.out_path;
  request.report = c.report_path;
  request.force = c.force;
  request.notice = [](const std::string& text) { fmt::print(stderr, "gtrader: {}\n", text); };
  if (c.engine == "ray") hand_over_to_ray(c, request);
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
  cmd->add_option("--out", c->out_path, "Write every combination's parameters and metrics to this CSV file")
      ->check(output_file());
  cmd->add_option("--threads", c->opt.threads, "Worker threads (0: all cores)")
      ->check(CLI::Range(0, 4096).description("0 to 4096"));
  cmd->add_flag("--no-progress", c->no_progress, "No progress bar, even on a terminal");
  cmd->add_option("--device", c->opt.device, "cpu, cuda (the GPU engine) or auto (CUDA when a GPU is present)")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  cmd->add_option("--gpus", c->gpus, "With --device cuda: all, or GPU ordinals such as 0,1 (all)");
  cmd->add_flag("--reference", c->opt.reference, "Use the reference engine for every combination (slow; for checks)");
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
  cmd->add_option("--cache", c->cache_location,
                  "Result cache: a folder, or redis://[[user]:password@]host[:port][/db] shared by every worker")
      ->envname("GT_CACHE");
  cmd->add_option("--cache-dir", c->cache_dir, "Folder of the on-disk cache and run journals (~/.cache/gpt-trader)");
  cmd->add_flag("--no-cache", c->no_cache, "Neither read nor feed the result cache (the run is still journaled)");
  cmd->add_flag("--force", c->force,
                "Start even when the study's estimated memory or disk use exceeds what this machine has free");
  cmd->add_flag("--resume", c->resume,
                "Continue an interrupted run: only missing combinations are computed (always so with the cache on)");
  cmd->add_option("--engine", c->engine, "local (this machine's cores) or ray (a Ray cluster, via Python)")
      ->check(CLI::IsMember({"local", "ray"}));
  cmd->add_option("--address", c->address, "Ray cluster address (with --engine ray; default: start a local one)");
  const auto positive_or_auto = [](bool allow_auto) {
    return CLI::Validator(
        [allow_auto](std::string& text) -> std::string {
          if (allow_auto && text == "auto") return {};
          long long value = 0;
          const auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), value);
          if (err == std::errc() && end == text.data() + text.size() && value >= 1) return {};
          return fmt::format("'{}' is not {}a whole number >= 1", text, allow_auto ? "auto or " : "");
        },
        allow_auto ? "auto|N>=1" : "N>=1");
  };
  cmd->add_option("--workers", c->workers, "Ray workers, a number or auto (with --engine ray)")
      ->check(positive_or_auto(true));
  cmd->add_option("--chunk-size", c->chunk_size, "Combinations per Ray task (with --engine ray)")
      ->check(positive_or_auto(false));
  cmd->callback([c] { run(*c); });
}

}  // namespace gtrader
