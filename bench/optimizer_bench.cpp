// Grid-engine throughput on the seed's workload: the figures `gtrader bench` reports, as Google
// Benchmark cases (bar-combinations per second in the "items" counter).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>

#include "gt/cache.hpp"
#include "gt/data.hpp"
#include "gt/grid.hpp"
#include "gt/optimize.hpp"

namespace {

gt::Bars last_bars(std::size_t count) {
  return gt::last_bars(gt::load_csv(GT_DATA_DIR "/orcl-1995-2014.csv"), count);
}

void SeedGrid(benchmark::State& state) {
  const std::vector<gt::Bars> symbols = {last_bars(2000)};
  const auto& strategy = gt::find_strategy("ma_cross");
  const gt::Grid grid = gt::parse_grid(strategy, {"fast=5:19", "slow=20:49", "ma_type=0:2", "volume_filter=false,true"},
                                       std::nullopt, {});
  gt::OptimizeOptions opt;
  opt.threads = static_cast<int>(state.range(0));
  for (auto _ : state) {
    auto result = gt::optimize(symbols, grid, gt::ExecutionOptions{}, opt);
    benchmark::DoNotOptimize(result);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(grid.size()));
  state.counters["bar_combos/s"] =
      benchmark::Counter(static_cast<double>(state.iterations() * grid.size() * 2000), benchmark::Counter::kIsRate);
}
BENCHMARK(SeedGrid)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

namespace {

// The per-combination cost alone: the evaluator (indicators, tables) is built once, outside
// the timed loop.
void SeedGridEvaluateOnly(benchmark::State& state) {
  const gt::Bars bars = last_bars(2000);
  const auto& strategy = gt::find_strategy("ma_cross");
  const gt::Grid grid = gt::parse_grid(strategy, {"fast=5:19", "slow=20:49", "ma_type=0:2", "volume_filter=false,true"},
                                       std::nullopt, {});
  const auto evaluator = gt::make_evaluator(bars, grid, gt::ExecutionOptions{});
  const std::size_t stride = grid.base().size();
  std::vector<double> params(grid.size() * stride);
  for (std::uint64_t i = 0; i < grid.size(); ++i) grid.decode(i, std::span<double>(params.data() + i * stride, stride));
  std::vector<gt::Metrics> out(grid.size());
  for (auto _ : state) {
    evaluator->evaluate(params, stride, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(grid.size()));
  state.SetLabel(std::string(evaluator->name()));
}
BENCHMARK(SeedGridEvaluateOnly)->Unit(benchmark::kMillisecond);

// Building the evaluator: moving averages for every period and type, and the range tables.
void SeedGridSetup(benchmark::State& state) {
  const gt::Bars bars = last_bars(2000);
  const gt::Grid grid =
      gt::parse_grid(gt::find_strategy("ma_cross"),
                     {"fast=5:19", "slow=20:49", "ma_type=0:2", "volume_filter=false,true"}, std::nullopt, {});
  for (auto _ : state) benchmark::DoNotOptimize(gt::make_evaluator(bars, grid, gt::ExecutionOptions{}));
}
BENCHMARK(SeedGridSetup)->Unit(benchmark::kMillisecond);

}  // namespace

namespace {

// The result cache's cost (issue: < 10% on a fully cold run) and a cached rerun, for the seed's
// grid (arg 1 = 0) and a 100,000-combination grid (arg 1 = 1), on an on-disk store under the temp
// folder. Arg 0: 0 = no cache, 1 = cold, 2 = warm (everything cached). A cold iteration runs with
// a starting cash never used before, which is a namespace the store has never seen, and so
// creates its file and writes every result. Between iterations, with the timer paused in every
// mode alike, the cold run's file is emptied: what one run wrote would otherwise be written back
// to the disk during the following runs, a cost no single run pays (back-to-back runs fill the
// page cache at ~100 MB/s). Emptied, not deleted: thousands of just-freed inodes make ext4 scan
// past them on every file it creates for the next 30 seconds.
class BenchStore {
 public:
  BenchStore() : dir_(std::filesystem::temp_directory_path() / ("gt-bench-cache-" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(dir_);
  }
  ~BenchStore() { std::filesystem::remove_all(dir_); }
  const std::filesystem::path& dir() const { return dir_; }
  // Options whose namespace the store has never seen.
  gt::ExecutionOptions fresh_options() {
    gt::ExecutionOptions options;
    options.cash += static_cast<double>(++cold_runs_);
    return options;
  }
  // Drops what the run wrote into the namespace of `options` before it reaches the disk.
  void empty(const gt::Bars& bars, const gt::ExecutionOptions& options) {
    std::filesystem::resize_file(dir_ / (gt::cache_namespace(bars, gt::find_strategy("ma_cross"), options) + ".log"),
                                 0);
  }

 private:
  std::filesystem::path dir_;
  std::uint64_t cold_runs_ = 0;
};

BenchStore& bench_store() {
  static BenchStore store;
  return store;
}

void GridWithCache(benchmark::State& state) {
  const std::vector<gt::Bars> symbols = {last_bars(2000)};
  const auto& strategy = gt::find_strategy("ma_cross");
  const std::vector<std::string> specs =
      state.range(1) == 0
          ? std::vector<std::string>{"fast=5:19", "slow=20:49", "ma_type=0:2", "volume_filter=false,true"}
          : std::vector<std::string>{"fast=2:101", "slow=20:269", "ma_type=0:1", "volume_filter=false,true"};
  const gt::Grid grid = gt::parse_grid(strategy, specs, std::nullopt, {});
  BenchStore& store = bench_store();
  const int mode = static_cast<int>(state.range(0));
  gt::OptimizeOptions opt;
  opt.threads = 2;
  gt::ExecutionOptions options;
  options.cash += static_cast<double>(state.range(1));  // a namespace of each grid's own
  if (mode == 2) {
    gt::ResultCache cache(gt::make_disk_backend(store.dir()));
    opt.cache = &cache;
    gt::optimize(symbols, grid, options, opt);
  }
  std::uint64_t valid = 0;
  for (auto _ : state) {
    std::unique_ptr<gt::ResultCache> cache;
    if (mode > 0) cache = std::make_unique<gt::ResultCache>(gt::make_disk_backend(store.dir()));
    if (mode == 1) options = store.fresh_options();
    opt.cache = cache.get();
    valid = gt::optimize(symbols, grid, options, opt).valid;
    cache.reset();
    state.PauseTiming();
    if (mode == 1) store.empty(symbols.front(), options);
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(valid));
  state.SetLabel(mode == 0 ? "no cache" : mode == 1 ? "cold cache" : "warm cache");
}
BENCHMARK(GridWithCache)->ArgsProduct({{0, 1, 2}, {0, 1}})->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
