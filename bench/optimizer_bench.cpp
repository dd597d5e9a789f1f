// Grid-engine throughput on the seed's workload: the figures `gtrader bench` reports, as Google
// Benchmark cases (bar-combinations per second in the "items" counter).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "gt/cache.hpp"
#include "gt/data.hpp"
#include "gt/grid.hpp"
#include "gt/optimize.hpp"
#include "gt/robustness.hpp"

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

// The result cache's cost on a fully cold run and a cached rerun, for the seed's
// grid (arg 1 = 0) and a 100,000-combination grid (arg 1 = 1), on on-disk stores under the temp
// folder. Arg 0: 0 = no cache, 1 = cold, 2 = warm (everything cached). A cold iteration runs with
// a starting cash never used before: a namespace its store has never seen, in a store that holds
// another study's results, as a user's cache folder does. Between iterations, with the timer
// paused in every mode alike, the cold store is cut back to what it held before: what one run
// wrote would otherwise be written back to the disk during the following runs, a cost no single
// run pays (back-to-back runs fill the page cache at ~100 MB/s). Cut back, not emptied: ext4
// flushes a file that was truncated to nothing when it is next closed after a write.
class BenchStore {
 public:
  BenchStore() : root_(std::filesystem::temp_directory_path() / ("gt-bench-cache-" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(root_);
    const gt::Bars bars = last_bars(2000);
    const gt::Grid other =
        gt::parse_grid(gt::find_strategy("ma_cross"),
                       {"fast=5:19", "slow=20:49", "ma_type=0:2", "volume_filter=false,true"}, std::nullopt, {});
    gt::ExecutionOptions options;
    options.commission = 0.001;
    gt::ResultCache cache(gt::make_disk_backend(cold_dir()));
    gt::OptimizeOptions opt;
    opt.cache = &cache;
    gt::optimize({bars}, other, options, opt);
    cold_size_ = std::filesystem::file_size(cold_dir() / "results.log");
  }
  ~BenchStore() { std::filesystem::remove_all(root_); }
  std::filesystem::path cold_dir() const { return root_ / "cold"; }
  std::filesystem::path warm_dir() const { return root_ / "warm"; }
  // Options whose namespace the store has never seen.
  gt::ExecutionOptions fresh_options() {
    gt::ExecutionOptions options;
    options.cash += static_cast<double>(++cold_runs_);
    return options;
  }
  // Drops what the last cold run wrote before it reaches the disk.
  void cut_back() { std::filesystem::resize_file(cold_dir() / "results.log", cold_size_); }

 private:
  std::filesystem::path root_;
  std::uintmax_t cold_size_ = 0;
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
    gt::ResultCache cache(gt::make_disk_backend(store.warm_dir()));
    opt.cache = &cache;
    gt::optimize(symbols, grid, options, opt);
  }
  std::uint64_t valid = 0;
  for (auto _ : state) {
    std::unique_ptr<gt::ResultCache> cache;
    if (mode > 0)
      cache = std::make_unique<gt::ResultCache>(gt::make_disk_backend(mode == 1 ? store.cold_dir() : store.warm_dir()));
    if (mode == 1) options = store.fresh_options();
    opt.cache = cache.get();
    valid = gt::optimize(symbols, grid, options, opt).valid;
    cache.reset();
    state.PauseTiming();
    if (mode == 1) store.cut_back();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(valid));
  state.SetLabel(mode == 0 ? "no cache" : mode == 1 ? "cold cache" : "warm cache");
}
BENCHMARK(GridWithCache)->ArgsProduct({{0, 1, 2}, {0, 1}})->Unit(benchmark::kMillisecond)->UseRealTime();

// The cold cache's cost as the issue states it, robust to this VM's drifts in speed (a run's time
// can change by half from one second to the next): every iteration runs the grid without the
// cache and then cold, back to back, and `cost` is the median of the iterations' ratios, minus 1.
// Arg: the grid, as GridWithCache's arg 1; the bar count.
void ColdCacheCost(benchmark::State& state) {
  const std::vector<gt::Bars> symbols = {last_bars(static_cast<std::size_t>(state.range(1)))};
  const std::vector<std::string> specs =
      state.range(0) == 0
          ? std::vector<std::string>{"fast=5:19", "slow=20:49", "ma_type=0:2", "volume_filter=false,true"}
          : std::vector<std::string>{"fast=2:101", "slow=20:269", "ma_type=0:1", "volume_filter=false,true"};
  const gt::Grid grid = gt::parse_grid(gt::find_strategy("ma_cross"), specs, std::nullopt, {});
  BenchStore& store = bench_store();
  gt::OptimizeOptions opt;
  opt.threads = 2;
  std::vector<double> no_cache, cold, ratios;
  for (auto _ : state) {
    const gt::ExecutionOptions options = store.fresh_options();
    opt.cache = nullptr;
    const auto start = std::chrono::steady_clock::now();
    gt::optimize(symbols, grid, options, opt);
    const auto computed = std::chrono::steady_clock::now();
    {
      gt::ResultCache cache(gt::make_disk_backend(store.cold_dir()));
      opt.cache = &cache;
      gt::optimize(symbols, grid, options, opt);
    }
    const auto stored = std::chrono::steady_clock::now();
    store.cut_back();
    no_cache.push_back(std::chrono::duration<double>(computed - start).count());
    cold.push_back(std::chrono::duration<double>(stored - computed).count());
    ratios.push_back(cold.back() / no_cache.back());
    state.SetIterationTime(cold.back());
  }
  const auto median = [](std::vector<double> v) {
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
    return v[v.size() / 2];
  };
  state.counters["no_cache_ms"] = 1e3 * median(no_cache);
  state.counters["cold_ms"] = 1e3 * median(cold);
  state.counters["cost"] = median(ratios) - 1;
}
BENCHMARK(ColdCacheCost)
    ->Args({0, 2000})
    ->Args({1, 2000})
    ->Args({0, 5036})
    ->Unit(benchmark::kMillisecond)
    ->UseManualTime();

}  // namespace

namespace {

// optimize() of the seed's grid over every ORCL bar without and with robustness (16 blocks):
// what the deflated Sharpe and PBO add to a study (docs/PERFORMANCE.md "Robustness").
void SeedGridRobustness(benchmark::State& state) {
  const std::vector<gt::Bars> symbols = {gt::load_csv(GT_DATA_DIR "/orcl-1995-2014.csv")};
  const gt::Grid grid =
      gt::parse_grid(gt::find_strategy("ma_cross"),
                     {"fast=5:19", "slow=20:49", "ma_type=0:2", "volume_filter=false,true"}, std::nullopt, {});
  gt::OptimizeOptions opt;
  opt.top = 1;
  opt.robustness_blocks = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) benchmark::DoNotOptimize(gt::optimize(symbols, grid, gt::ExecutionOptions{}, opt));
}
BENCHMARK(SeedGridRobustness)->Arg(0)->Arg(16)->Unit(benchmark::kMillisecond)->UseRealTime();

// PBO alone over random block sums: range(0) combinations, 16 blocks (12,870 splits).
void ProbabilityOfBacktestOverfitting(benchmark::State& state) {
  const auto combinations = static_cast<std::size_t>(state.range(0));
  constexpr std::size_t kBlocks = 16;
  std::vector<gt::ReturnSums> sums(combinations * kBlocks);
  std::uint64_t x = 88172645463325252ull;  // xorshift: the same sums every run
  const auto uniform = [&x] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return static_cast<double>(x >> 11) / 9007199254740992.0;
  };
  for (auto& s : sums) {
    s.count = 315;
    s.sum = (uniform() - 0.45) * 0.2;
    s.sum2 = 0.05 + uniform() * 0.05;
  }
  for (auto _ : state) benchmark::DoNotOptimize(gt::probability_of_backtest_overfitting(sums, combinations, kBlocks));
}
BENCHMARK(ProbabilityOfBacktestOverfitting)->Arg(10000)->Arg(100000)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
