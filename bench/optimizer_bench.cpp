// Grid-engine throughput on the seed's workload: the figures `gtrader bench` reports, as Google
// Benchmark cases (bar-combinations per second in the "items" counter).
#include <benchmark/benchmark.h>

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
  const gt::Grid grid = gt::parse_grid(
      strategy, {"fast=5:19", "slow=20:49", "ma_type=0:2", "volume_filter=false,true"}, std::nullopt, {});
  gt::OptimizeOptions opt;
  opt.threads = static_cast<int>(state.range(0));
  for (auto _ : state) {
    auto result = gt::optimize(symbols, grid, gt::ExecutionOptions{}, opt);
    benchmark::DoNotOptimize(result);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(grid.size()));
  state.counters["bar_combos/s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * grid.size() * 2000), benchmark::Counter::kIsRate);
}
BENCHMARK(SeedGrid)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

namespace {

// The per-combination cost alone: the evaluator (indicators, tables) is built once, outside
// the timed loop.
void SeedGridEvaluateOnly(benchmark::State& state) {
  const gt::Bars bars = last_bars(2000);
  const auto& strategy = gt::find_strategy("ma_cross");
  const gt::Grid grid = gt::parse_grid(
      strategy, {"fast=5:19", "slow=20:49", "ma_type=0:2", "volume_filter=false,true"}, std::nullopt, {});
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
  const gt::Grid grid = gt::parse_grid(gt::find_strategy("ma_cross"),
                                       {"fast=5:19", "slow=20:49", "ma_type=0:2", "volume_filter=false,true"},
                                       std::nullopt, {});
  for (auto _ : state) benchmark::DoNotOptimize(gt::make_evaluator(bars, grid, gt::ExecutionOptions{}));
}
BENCHMARK(SeedGridSetup)->Unit(benchmark::kMillisecond);

}  // namespace
