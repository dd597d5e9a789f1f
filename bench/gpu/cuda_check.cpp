// The CUDA engine on the GPU machine, in one run (bench/gpu/run.sh): every metric of a grid of
// more than 100,000 ma_cross combinations (all MA types, volume filter both ways) against the CPU
// engine, then kernel and end-to-end rates at 2,000 and 100,000 bars beside the CPU engine's
// rate on this machine's cores, then 1 -> N GPU scaling. Exits non-zero on any disagreement.
//   cuda_check [--quick]   (--quick: the correctness check alone, for compute-sanitizer)
//   cuda_check --profile   (one kernel over the timed grid at 2,000 bars, for ncu)
//   cuda_check --kernel    (the kernel's rates alone, to compare builds)
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <thread>

#include "../../src/optimize/ma_cross_evaluator.hpp"
#include "gt/data.hpp"
#include "gt/gpu.hpp"
#include "gt/grid.hpp"
#include "gt/indicators.hpp"
#include "gt/optimize.hpp"

namespace {

const gt::Strategy& ma_cross() {
  return gt::find_strategy("ma_cross");
}

gt::Grid grid_of(std::vector<std::string> specs) {
  return gt::parse_grid(ma_cross(), specs, std::nullopt, {});
}

bool agree(double gpu, double cpu) {
  if (std::isnan(cpu) || std::isnan(gpu)) return std::isnan(cpu) && std::isnan(gpu);
  if (std::isinf(cpu) || std::isinf(gpu)) return gpu == cpu;
  return std::fabs(gpu - cpu) <= 1e-6 * std::fabs(cpu) + 1e-12;
}

// Every metric of every combination; returns the number of disagreeing values. `segment_bars`
// > 0: kernel launches of that many bars (CudaEvaluator::set_segment_bars), else the engine's choice.
std::size_t check(const gt::Bars& bars, const gt::Grid& grid, const gt::ExecutionOptions& options,
                  int segment_bars = 0) {
  const auto cpu = gt::evaluate_range(*gt::make_evaluator(bars, grid, options), grid, 0, grid.size());
  const auto engine = gt::make_cuda_evaluator(bars, grid, options, {0});
  if (segment_bars > 0) engine->set_segment_bars(segment_bars);
  const auto gpu = gt::evaluate_range(*engine, grid, 0, grid.size());
  std::size_t bad = 0, count = 0;
  double worst = 0;
  for (std::size_t i = 0; i < grid.size(); ++i) {
    if (!cpu.valid[i]) continue;
    ++count;
    for (std::size_t m = 0; m < gt::kMetricCount; ++m) {
      const double a = gt::metric_value(gpu.metrics[i], m), b = gt::metric_value(cpu.metrics[i], m);
      if (!std::isinf(b) && !std::isnan(b) && b != 0) worst = std::max(worst, std::fabs(a - b) / std::fabs(b));
      if (!agree(a, b) && bad++ < 10) {
        const auto params = cpu.params_of(i);
        fmt::print("MISMATCH {} {}: gpu {} cpu {}\n", ma_cross().describe({params.begin(), params.end()}),
                   gt::metric_names()[m], a, b);
      }
    }
  }
  fmt::print(
      "check: {} bars, {} combinations, fill {}, commission {}, {}: {} disagreeing values, worst relative "
      "difference {:.3g}\n",
      bars.size(), count, options.fill == gt::Fill::kNextOpen ? "next_open" : "close", options.commission,
      engine->segment_bars() > 0 ? fmt::format("launches of {} bars", engine->segment_bars()) : "one launch", bad,
      worst);
  return bad;
}

// Every combination's block sums (a study's robustness, 16 blocks) against the CPU engine's;
// returns the number of disagreeing sums.
std::size_t check_blocks(const gt::Bars& bars, const gt::Grid& grid, const gt::ExecutionOptions& options,
                         int segment_bars = 0) {
  const std::vector<std::size_t> starts = gt::block_starts(bars.size(), 16);
  const auto cpu =
      gt::evaluate_range(*gt::make_evaluator(bars, grid, options), grid, 0, grid.size(), nullptr, {}, starts);
  const auto engine = gt::make_cuda_evaluator(bars, grid, options, {0});
  if (segment_bars > 0) engine->set_segment_bars(segment_bars);
  const auto gpu = gt::evaluate_range(*engine, grid, 0, grid.size(), nullptr, {}, starts);
  std::size_t bad = 0;
  double worst = 0;
  for (std::size_t i = 0; i < cpu.blocks.size(); ++i) {
    const double d =
        std::max(std::fabs(gpu.blocks[i].sum - cpu.blocks[i].sum), std::fabs(gpu.blocks[i].sum2 - cpu.blocks[i].sum2));
    worst = std::max(worst, d);
    if ((d > 1e-12 || gpu.blocks[i].count != cpu.blocks[i].count) && bad++ < 10)
      fmt::print("MISMATCH block sums of combination {} block {}: gpu {} {} cpu {} {}\n", i / 16, i % 16,
                 gpu.blocks[i].sum, gpu.blocks[i].sum2, cpu.blocks[i].sum, cpu.blocks[i].sum2);
  }
  fmt::print("blocks: {} bars, {} combinations x 16 blocks, {}: {} disagreeing sums, worst difference {:.3g}\n",
             bars.size(), grid.size(),
             engine->segment_bars() > 0 ? fmt::format("launches of {} bars", engine->segment_bars()) : "one launch",
             bad, worst);
  return bad;
}

// optimize --robustness on the GPU and on the CPU: the same best, PBO and deflated Sharpe.
std::size_t check_robustness(const gt::Bars& bars, const gt::Grid& grid) {
  gt::OptimizeOptions on_gpu, on_cpu;
  on_gpu.device = "cuda";
  on_gpu.gpus = {0};
  on_gpu.robustness_blocks = on_cpu.robustness_blocks = 16;
  const auto gpu = gt::optimize({bars}, grid, {}, on_gpu), cpu = gt::optimize({bars}, grid, {}, on_cpu);
  const auto &a = gpu.robustness.at(0), &b = cpu.robustness.at(0);
  const bool same = a.best_index == b.best_index && a.overfitting.pbo == b.overfitting.pbo &&
                    std::fabs(a.deflated.dsr - b.deflated.dsr) <= 1e-9;
  fmt::print("robustness: {} combinations on {} ({}): pbo {} (cpu {}), deflated sharpe {:.12f} (cpu {:.12f}), {}\n",
             grid.size(), gpu.device, gpu.evaluator, a.overfitting.pbo, b.overfitting.pbo, a.deflated.dsr,
             b.deflated.dsr, same ? "the same" : "DIFFERENT");
  return same ? 0 : 1;
}

// The averages the GPU built for `grid` (its MA types and periods as the engines take them)
// against ind::ma_many, bit for bit; returns the number of differing values.
std::size_t check_averages(const gt::Bars& bars, const gt::Grid& grid) {
  const auto gpu = gt::make_cuda_evaluator(bars, grid, {}, {0});
  const std::vector<double> table = gpu->moving_average_table(0);
  const std::vector<int> periods = gt::ma_cross_periods(grid);
  const std::vector<int> types = gt::ma_cross_types(grid);  // ascending, as the table's type slots
  const std::size_t n = bars.size(), rows = periods.size();
  std::size_t bad = 0;
  for (std::size_t slot = 0; slot < types.size(); ++slot) {
    const int type = types[slot];
    const auto cpu = gt::ind::ma_many(static_cast<gt::ind::MaType>(type), bars.close, periods);
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t t = 0; t < n; ++t) {
        const double a = table[(slot * n + t) * rows + r], b = cpu.values[r * n + t];
        if (std::memcmp(&a, &b, sizeof a) != 0 && bad++ < 5)
          fmt::print("MISMATCH average type {} period {} bar {}: gpu {} cpu {}\n", type, periods[r], t, a, b);
      }
  }
  fmt::print("averages: {} bars, {} types x {} periods: {} values differ from ind::ma_many in any bit\n", n,
             types.size(), rows, bad);
  return bad;
}

// Six calls of the CUDA engine over every combination of `grid` (the first warms up): the
// kernel's seconds and the whole call's seconds of the other five, and how many were valid.
struct WholeGridRuns {
  std::vector<double> kernel, calls;
  std::uint64_t valid = 0;
};
WholeGridRuns run_whole_grid(const gt::CudaEvaluator& gpu, const gt::Grid& grid) {
  WholeGridRuns runs;
  for (int r = 0; r < 6; ++r) {
    const auto called = std::chrono::steady_clock::now();
    const auto chunk = gt::evaluate_range(gpu, grid, 0, grid.size());  // one kernel over every valid combination
    runs.valid = static_cast<std::uint64_t>(std::count(chunk.valid.begin(), chunk.valid.end(), 1));
    if (r == 0) continue;
    runs.kernel.push_back(gpu.last_kernel_seconds());
    runs.calls.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - called).count());
  }
  return runs;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const bool profile = argc > 1 && std::strcmp(argv[1], "--profile") == 0;
  const bool kernel_only = argc > 1 && std::strcmp(argv[1], "--kernel") == 0;
  fmt::print("devices: {}\n", gt::cuda_devices());
  if (!gt::cuda_available()) return 2;
  const gt::Bars orcl = gt::load_csv(GT_DATA_DIR "/orcl-1995-2014.csv");
  // The timed grid: 1.2 million combinations, periods 2..1019.
  const gt::Grid big = grid_of({"fast=2:201", "slow=20:1019", "ma_type=0:2", "volume_filter=false,true"});
  if (profile) {
    const gt::Bars bars = gt::bars_of_length(orcl, 2000);
    gt::evaluate_range(*gt::make_cuda_evaluator(bars, big, {}, {0}), big, 0, big.size());
    return 0;
  }
  // 1. Correctness: 147,000+ combinations, every MA type, the filter both ways, both fills, costs.
  const gt::Grid check_grid = grid_of({"fast=2:101", "slow=20:269", "ma_type=0:2", "volume_filter=false,true"});
  gt::ExecutionOptions costs;
  costs.fill = gt::Fill::kClose;
  costs.commission = 0.001;
  costs.slippage_bps = 2;
  if (kernel_only) {
    for (std::size_t n : {std::size_t{2000}, std::size_t{100000}}) {
      const gt::Bars bars = gt::bars_of_length(orcl, n);
      const WholeGridRuns runs = run_whole_grid(*gt::make_cuda_evaluator(bars, big, {}, {0}), big);
      fmt::print("kernel: {} bars: {:.4g} s, {:.3g} bar-combos/s\n", n, median(runs.kernel),
                 static_cast<double>(runs.valid) * static_cast<double>(n) / median(runs.kernel));
    }
    return 0;
  }
  std::size_t bad =
      check(gt::bars_of_length(orcl, 2000), check_grid, {}) + check(gt::bars_of_length(orcl, 2000), check_grid, costs);
  // The segmented launches that a table beyond L2 gets, forced here on small data (200 bars: not
  // a multiple of the 32-bar blocks, so segments start mid-block for every pair).
  bad += check(gt::bars_of_length(orcl, 2000), check_grid, {}, 200) +
         check(gt::bars_of_length(orcl, 2000), check_grid, costs, 200);
  bad += check_averages(gt::bars_of_length(orcl, 2000), check_grid);
  bad += check_blocks(gt::bars_of_length(orcl, 2000), check_grid, {}) +
         check_blocks(gt::bars_of_length(orcl, 2000), check_grid, costs, 200);
  bad += check_robustness(orcl, grid_of({"fast=5:19", "slow=20:49", "ma_type=0:2", "volume_filter=false,true"}));
  if (!quick) {
    bad += check(orcl, check_grid, {});
    bad += check_averages(gt::bars_of_length(orcl, 100000), big);
  }
  if (bad) {
    fmt::print("FAILED: the CUDA engine disagrees with the CPU engine\n");
    return 1;
  }
  if (quick) return 0;

  // 2. Rates: kernel alone (device events) and end to end (optimize(), results back on the host).
  std::uint64_t count = 0;
  fmt::print(
      "\n| bars | combinations | kernel s (median of 5) | kernel bar-combos/s | end-to-end s | end-to-end "
      "bar-combos/s | CPU engine s ({} threads) | CPU bar-combos/s | GPU tables built s | one evaluate_range s | "
      "bars per launch |\n"
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
      std::thread::hardware_concurrency());
  for (std::size_t n : {std::size_t{2000}, std::size_t{100000}}) {
    const gt::Bars bars = gt::bars_of_length(orcl, n);
    // Where end-to-end time goes: building the tables (on the GPU) and one call over the whole
    // grid (host decoding and sorting, the kernel, the results' copy back).
    using clock = std::chrono::steady_clock;
    const auto built = clock::now();
    const auto gpu = gt::make_cuda_evaluator(bars, big, {}, {0});
    const double tables = std::chrono::duration<double>(clock::now() - built).count();
    const WholeGridRuns runs = run_whole_grid(*gpu, big);
    count = runs.valid;
    gt::OptimizeOptions on_gpu;
    on_gpu.device = "cuda";
    on_gpu.gpus = {0};
    on_gpu.top = 10;
    gt::optimize({bars}, big, {}, on_gpu);  // warm-up
    const auto e2e = gt::optimize({bars}, big, {}, on_gpu);
    gt::OptimizeOptions on_cpu;
    const auto cpu = gt::optimize({bars}, big, {}, on_cpu);
    const double k = median(runs.kernel);
    const double bc = static_cast<double>(count) * static_cast<double>(n);
    fmt::print("| {} | {} | {:.4g} | {:.3g} | {:.4g} | {:.3g} | {:.4g} | {:.3g} | {:.3g} | {:.3g} | {} |\n", n, count,
               k, bc / k, e2e.seconds, bc / e2e.seconds, cpu.seconds, bc / cpu.seconds, tables, median(runs.calls),
               gpu->segment_bars() > 0 ? gpu->segment_bars() : static_cast<int>(n));
    if (e2e.top[0].front().index != cpu.top[0].front().index) {
      fmt::print("FAILED: the best combination differs between the GPU and CPU runs\n");
      return 1;
    }
  }

  // 3. Scaling over the GPUs of this machine, end to end, 100,000 bars.
  const auto gpus = gt::parse_gpus("all");
  if (gpus.size() > 1) {
    const gt::Bars bars = gt::bars_of_length(orcl, 100000);
    fmt::print("\n| GPUs | seconds | bar-combos/s | scaling efficiency |\n| --- | --- | --- | --- |\n");
    double one = 0;
    for (std::size_t g = 1; g <= gpus.size(); g *= 2) {
      gt::OptimizeOptions opt;
      opt.device = "cuda";
      opt.gpus.assign(gpus.begin(), gpus.begin() + static_cast<std::ptrdiff_t>(g));
      opt.threads = static_cast<int>(4 * g);
      gt::optimize({bars}, big, {}, opt);  // warm-up
      std::vector<double> times;
      for (int r = 0; r < 3; ++r) times.push_back(gt::optimize({bars}, big, {}, opt).seconds);
      const double s = median(times);
      if (g == 1) one = s;
      fmt::print("| {} | {:.4g} | {:.3g} | {:.0f}% |\n", g, s, static_cast<double>(count) * 1e5 / s,
                 100 * one / (s * static_cast<double>(g)));
    }
  }
  return 0;
}
