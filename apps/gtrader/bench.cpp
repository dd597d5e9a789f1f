// gtrader bench: grid-engine throughput for the seed's workloads at several sizes, bar counts and
// thread counts, with scaling efficiency. Each figure is the median of repeated full optimize()
// calls on data already in memory (indicators, tables and ranking included; loading excluded).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "gt/error.hpp"
#include "gt/gpu.hpp"
#include "gt/optimize.hpp"
#include "gt/rules.hpp"

namespace gtrader {
namespace {

struct Workload {
  std::string name;
  std::vector<std::string> grid;
};

// The seed's headline (392), the seed's grid (2,700) and two larger ones (docs/SEMANTICS.md "ma_cross" parameters).
const std::vector<Workload>& workloads() {
  static const std::vector<Workload> all = {
      {"392", {"fast=5:18", "slow=20:47", "ma_type=0", "volume_filter=false"}},
      {"2700", {"fast=5:19", "slow=20:49", "ma_type=0:2", "volume_filter=false,true"}},
      {"100000", {"fast=5:54", "slow=55:554", "ma_type=0:1", "volume_filter=false,true"}},
      {"10000000", {"fast=2:1201", "slow=2:1999", "ma_type=0:2", "volume_filter=false,true"}},
  };
  return all;
}

struct BenchCommand {
  std::string device = "cpu";
  std::string gpus = "all";
  std::vector<std::filesystem::path> data = {"data/orcl-1995-2014.csv"};
  std::vector<std::string> sizes = {"392", "2700", "100000", "10000000"};
  std::vector<std::size_t> bar_counts = {2000, 100000};
  std::vector<int> threads = {1, 2};
  std::string strategy_file;      // a rule strategy instead of the built-in ma_cross
  std::vector<std::string> grid;  // a workload of one's own ("custom"), instead of --sizes
  double min_seconds = 0.5;
  bool full = false;
  bool json = false;
};

void run(const BenchCommand& c) {
  const auto sources = gt::load_many(c.data);
  const std::shared_ptr<const gt::Strategy> rules =
      c.strategy_file.empty() ? nullptr : gt::rules::compile(gt::rules::read_strategy_file(c.strategy_file));
  const gt::Strategy& strategy = rules ? *rules : gt::find_strategy("ma_cross");
  nlohmann::json rows = nlohmann::json::array();
  if (!c.json)
    fmt::print("{:>10} {:>8} {:>8} {:>12} {:>10} {:>12} {:>14} {:>10}\n", "workload", "bars", "threads", "combos",
               "seconds", "combos/s", "bar-combos/s", "scaling");
  const std::vector<std::string> sizes = c.grid.empty() ? c.sizes : std::vector<std::string>{"custom"};
  for (const auto& size : sizes) {
    const auto it =
        std::find_if(workloads().begin(), workloads().end(), [&](const Workload& w) { return w.name == size; });
    if (it == workloads().end() && c.grid.empty())
      throw gt::ParamError(fmt::format("--sizes: unknown workload '{}' (allowed: 392, 2700, 100000, 10000000)", size));
    const gt::Grid grid = gt::parse_grid(strategy, c.grid.empty() ? it->grid : c.grid, std::nullopt, {});
    for (std::size_t bars : c.bar_counts) {
      if (!c.full && grid.size() >= 10'000'000 && bars > 10'000) continue;  // ~10 minutes; with --full only
      const std::vector<gt::Bars> symbols = {gt::bars_of_length(sources.front(), bars)};
      double single_rate = 0;
      for (int threads : c.threads) {
        gt::OptimizeOptions opt;
        opt.threads = threads;
        opt.device = c.device;
        opt.gpus = gt::gpus_for(c.device, c.gpus);
        std::vector<double> times;
        gt::OptimizeResult result;
        double spent = 0;
        while (times.size() < 3 || (spent < c.min_seconds && times.size() < 50)) {
          result = gt::optimize(symbols, grid, gt::ExecutionOptions{}, opt);
          times.push_back(result.seconds);
          spent += result.seconds;
          if (result.seconds > 5) break;  // one long run is a stable figure
        }
        std::sort(times.begin(), times.end());
        const double median = times[times.size() / 2];
        const double rate = static_cast<double>(result.computed) / median;
        if (threads == c.threads.front()) single_rate = rate / threads;
        const double scaling = rate / (single_rate * threads);
        nlohmann::json row = {{"workload", size},
                              {"bars", bars},
                              {"threads", threads},
                              {"combinations", result.computed},
                              {"runs", times.size()},
                              {"seconds_median", median},
                              {"seconds_best", times.front()},
                              {"combos_per_sec", rate},
                              {"bar_combos_per_sec", rate * static_cast<double>(bars)},
                              {"scaling_efficiency", scaling},
                              {"engine", result.evaluator}};
        rows.push_back(row);
        if (!c.json)
          fmt::print("{:>10} {:>8} {:>8} {:>12} {:>10.4f} {:>12.4g} {:>14.4g} {:>9.0f}%\n", size, bars, threads,
                     result.computed, median, rate, rate * static_cast<double>(bars), 100 * scaling);
      }
    }
  }
  if (c.json) fmt::print("{}\n", nlohmann::json{{"strategy", strategy.name}, {"results", rows}}.dump(2));
}

}  // namespace

void add_bench(CLI::App& app) {
  auto c = std::make_shared<BenchCommand>();
  CLI::App* cmd = app.add_subcommand("bench", "Measure grid-optimization throughput (combos/s, bar-combos/s)");
  cmd->add_option("--data", c->data, "Price file whose bars (or replayed returns) feed the workloads");
  cmd->add_option("--device", c->device, "cpu, cuda or auto (as optimize)")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  cmd->add_option("--gpus", c->gpus, "With --device cuda: all, or ordinals such as 0,1");
  cmd->add_option("--sizes", c->sizes, "Workloads: 392, 2700, 100000, 10000000")->delimiter(',');
  cmd->add_option("--strategy-file", c->strategy_file, "Run the workloads with a strategy written as rules")
      ->check(CLI::ExistingFile);
  cmd->add_option("--grid", c->grid, "A workload of one's own, NAME=SPEC as optimize takes (repeatable)");
  cmd->add_option("--bars", c->bar_counts, "Bar counts (2000,100000)")->delimiter(',');
  cmd->add_option("--threads", c->threads, "Thread counts; the first is the scaling baseline (1,2)")->delimiter(',');
  cmd->add_option("--min-seconds", c->min_seconds, "Repeat each case until this much time is spent (0.5)");
  cmd->add_flag("--full", c->full, "Include 10 million combinations at 100,000 bars (long)");
  cmd->add_flag("--json", c->json, "Print JSON");
  cmd->callback([c] { run(*c); });
}

}  // namespace gtrader
