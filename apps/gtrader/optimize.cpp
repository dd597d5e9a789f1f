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

#include "commands.hpp"
#include "execution_options.hpp"
#include "gt/atomic_file.hpp"
#include "gt/cache.hpp"
#include "gt/error.hpp"
#include "gt/gpu.hpp"
#include "results_json.hpp"

namespace gtrader {
namespace {

struct OptimizeCommand {
  DataOptions data;
  ExecutionFlags exec;
  std::string strategy;
  std::vector<std::string> grid, fixed;
  std::string grid_file, out_path;
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
};

// The store this run records into as it goes. With the cache on, that is the shared cache itself,
// so every run can be resumed by running it again. With --no-cache, a journal private to this run
// (deleted when it completes) that only --resume reads.
struct RunStore {
  std::unique_ptr<gt::ResultCache> cache;
  std::filesystem::path journal;  // set under --no-cache
  std::string shown;
};

RunStore open_run_store(const OptimizeCommand& c, const std::vector<gt::Bars>& symbols, const gt::Grid& grid,
                        const gt::ExecutionOptions& options) {
  const std::filesystem::path dir = c.cache_dir.empty() ? gt::default_cache_dir() : std::filesystem::path(c.cache_dir);
  RunStore store;
  if (!c.no_cache) {
    store.cache = gt::open_result_cache(c.cache_location.empty() ? dir.string() : c.cache_location);
    store.shown = store.cache->describe();
    return store;
  }
  std::vector<std::string> namespaces;
  for (const auto& bars : symbols) namespaces.push_back(gt::cache_namespace(bars, grid.strategy(), options));
  store.journal = dir / "runs" / gt::run_journal_name(namespaces, grid);
  std::error_code ec;
  if (!c.resume) std::filesystem::remove_all(store.journal, ec);  // a fresh run starts from nothing
  store.cache = std::make_unique<gt::ResultCache>(gt::make_disk_backend(store.journal));
  store.shown = "off (run journal " + store.journal.string() + ")";
  return store;
}

// --engine ray: the Python driver over Ray takes the same command line (distribution is Ray's
// job, driven from Python as XGBoost and LightGBM do). Does not return unless exec fails.
void hand_over_to_ray() {
  std::vector<std::string> args = {"-m", "gpt_trader.cli"};
  bool skip_value = false;
  for (const auto& a : raw_arguments()) {
    if (skip_value) {
      skip_value = false;
      continue;
    }
    if (a == "--engine" || a == "--threads") {
      skip_value = true;
      continue;
    }
    if (a.rfind("--engine=", 0) == 0 || a.rfind("--threads=", 0) == 0 || a == "--reference") continue;
    args.push_back(a);
  }
  std::string python;
  if (const char* env = std::getenv("GTRADER_PYTHON"))
    python = env;
  else if (std::filesystem::exists(GT_DEFAULT_PYTHON))
    python = GT_DEFAULT_PYTHON;
  else
    python = "python3";
  std::vector<char*> argv = {python.data()};
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::fflush(stdout);
  ::execvp(python.c_str(), argv.data());
  throw gt::Error(
      fmt::format("--engine ray: cannot run {} ({}); install the Python package with `pip install .` "
                  "and Ray with `pip install 'ray>=2.40'`, or set GTRADER_PYTHON",
                  python, std::strerror(errno)));
}

void print_table(const gt::Strategy& strategy, const gt::Bars& bars, const std::vector<gt::RankedCombination>& top,
                 const std::string& metric) {
  fmt::print("{}: top {} by {}\n", bars.symbol, top.size(), metric);
  std::string head = fmt::format("{:>4}  ", "rank");
  for (const auto& p : strategy.params) head += fmt::format("{:>13} ", p.name);
  head += fmt::format("{:>9} {:>11} {:>9} {:>7} {:>9}", "sharpe", "total_ret%", "max_dd%", "trades", "win%");
  fmt::print("{}\n", head);
  for (std::size_t i = 0; i < top.size(); ++i) {
    const auto& c = top[i];
    std::string row = fmt::format("{:>4}  ", i + 1);
    for (std::size_t p = 0; p < strategy.params.size(); ++p)
      row += fmt::format("{:>13} ", gt::format_param_value(strategy.params[p], c.params[p]));
    row += fmt::format("{:>9.4f} {:>11.2f} {:>9.2f} {:>7} {:>9.2f}", c.metrics.sharpe, 100 * c.metrics.total_return,
                       100 * c.metrics.max_drawdown, c.metrics.trades, 100 * c.metrics.win_rate);
    fmt::print("{}\n", row);
  }
}

void run(OptimizeCommand& c) {
  if (c.engine == "ray") return hand_over_to_ray();
  const gt::Strategy& strategy = gt::find_strategy(c.strategy);
  const auto fixed = split_assignments(c.fixed);
  const gt::Grid grid = gt::parse_grid(
      strategy, c.grid, c.grid_file.empty() ? std::nullopt : std::optional<std::filesystem::path>(c.grid_file), fixed);
  const gt::ExecutionOptions options = c.exec.resolve();
  gt::metric_index(c.opt.metric);  // an unknown metric fails before loading anything
  const auto symbols = c.data.load();
  c.opt.progress = !c.no_progress && ::isatty(STDERR_FILENO);
  if (c.opt.device != "cpu" && gt::cuda_available()) c.opt.gpus = gt::parse_gpus(c.gpus);

  {
    // Before anything is allocated or written: what the study will take, refused when it cannot fit.
    const bool redis = c.cache_location.rfind("redis://", 0) == 0;
    const std::filesystem::path store_dir =
        redis ? std::filesystem::path()
              : (!c.cache_location.empty()
                     ? std::filesystem::path(c.cache_location)
                     : (c.cache_dir.empty() ? gt::default_cache_dir() : std::filesystem::path(c.cache_dir)));
    const auto estimate = gt::estimate_study(symbols, grid, options, c.opt.threads, !c.out_path.empty(), !redis);
    if (!c.force) gt::require_study_fits(estimate, c.out_path, store_dir);
    if (estimate.seconds > 60 || estimate.combinations > 100'000'000)
      fmt::print(stderr, "gtrader: estimate: {}\n", estimate.describe());
  }
  RunStore store = open_run_store(c, symbols, grid, options);
  c.opt.cache = store.cache.get();

  std::unique_ptr<gt::AtomicFile> file;
  std::unique_ptr<gt::CsvResultSink> sink;
  if (!c.out_path.empty()) {
    file = std::make_unique<gt::AtomicFile>(c.out_path);
    sink = std::make_unique<gt::CsvResultSink>(grid, gt::symbol_names(symbols),
                                               [&](std::string_view text) { file->write(text); });
    file->write(sink->header());
  }
  const gt::OptimizeResult result = gt::optimize(symbols, grid, options, c.opt, sink.get());
  if (file) file->commit();
  // As the README says: every entry that could not be used, whether its checksum failed or its
  // stretch of the store was unreadable.
  const std::uint64_t rejected = store.cache->rejected() + store.cache->unreadable();
  if (rejected)
    fmt::print(stderr, "warning: {} damaged or foreign cache entries were ignored and recomputed\n", rejected);
  if (!store.journal.empty()) {
    store.cache.reset();
    std::error_code ec;
    std::filesystem::remove_all(store.journal, ec);  // the run is complete: nothing left to resume
  }

  if (c.json) {
    auto summary = optimize_summary_json(grid, symbols, result);
    summary["cache"] = store.shown;
    summary["cache_rejected"] = rejected;
    summary["device"] = result.device;
    fmt::print("{}\n", summary.dump(2));
    return;
  }
  for (std::size_t s = 0; s < symbols.size(); ++s) print_table(strategy, symbols[s], result.top[s], c.opt.metric);
  fmt::print(
      "{} combinations x {} symbols: {} valid, {} invalid (skipped), {} in {:.3f} s "
      "({:.3g} combos/s, {:.3g} bar-combos/s; {} engine)\n",
      result.combinations, symbols.size(), result.valid, result.invalid,
      result.from_cache ? fmt::format("{} computed, {} from the cache,", result.computed, result.from_cache)
                        : fmt::format("{} computed", result.computed),
      result.seconds, static_cast<double>(result.computed) / result.seconds,
      static_cast<double>(result.bar_combinations) / result.seconds, result.evaluator);
  if (!c.out_path.empty()) fmt::print("results: {}\n", c.out_path);
}

}  // namespace

void add_optimize(CLI::App& app) {
  auto c = std::make_shared<OptimizeCommand>();
  CLI::App* cmd = app.add_subcommand("optimize", "Evaluate every combination of a parameter grid and rank them");
  c->data.add_to(*cmd);
  cmd->add_option("--strategy", c->strategy, "Strategy name (see `gtrader strategies`)")->required();
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
