// The CUDA twin of ma_cross_evaluator.cpp: one thread per combination walks the bars once,
// finds the crossings with the tie band of signal_rules.hpp, fills as SPEC §3 says (the same
// per-bar fill factors, MaCrossBarFacts) and reduces every metric on the device with
// finalize_metrics. Combinations are sorted so that a warp shares type, fast period and filter
// and holds consecutive slow periods: the moving averages are stored [type][bar][period], so
// the warp's slow values at a bar are one coalesced read and the fast value a broadcast.
// Messages are built without fmt: its headers do not compile under nvcc 13 with g++ 12.
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <numeric>
#include <sstream>
#include <tuple>

#include "../../strategies/signals.hpp"
#include "../ma_cross_evaluator.hpp"
#include "gt/error.hpp"
#include "gt/gpu.hpp"
#include "gt/indicators.hpp"
#include "gt/signal_rules.hpp"

namespace gt {
namespace {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw Error(std::string("CUDA: ") + what + " failed: " + cudaGetErrorString(status));
}

struct DeviceTables {
  const double* ma;  // [type slot][bar][period slot]
  const double* close;
  const double* entry_cost;
  const double* exit_value;
  const double* entry_return;
  const double* exit_return;
  const double* sum_r;
  const double* sum_r2;
  const double* sum_down2;
  const unsigned char* volume_ok;
  int bars;
  int periods;
  int lag;  // 1: fills at the next open; 0: at the signal bar's close
  double cash;
  double periods_per_year;
};

// One combination: fast and slow period slots, type slot, volume filter.
__global__ void __launch_bounds__(128) ma_cross_kernel(DeviceTables d, const int4* combos, int count, Metrics* out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const int4 c = combos[i];
  const int n = d.bars, lag = d.lag;
  const std::size_t row = static_cast<std::size_t>(d.periods);
  const double* fast = d.ma + static_cast<std::size_t>(c.z) * n * row + c.x;
  const double* slow = d.ma + static_cast<std::size_t>(c.z) * n * row + c.y;
  const bool filtered = c.w != 0;

  MetricSums sums;
  sums.bars = static_cast<std::size_t>(n);
  sums.initial_equity = d.cash;
  double equity = d.cash, units = 0;
  DrawdownTracker dd(d.cash);
  int entry = -1;   // bar of the open position's entry fill, -1 when flat
  int pending = 0;  // 1: enter, 2: exit, at this bar's fill (lag 1)
  bool before_at_or_below = false, before_at_or_above = false;

  auto enter = [&](int t) {
    entry = t;
    units = equity / d.entry_cost[t];
    sums.add_return(d.entry_return[t]);
  };
  auto hold_until = [&](int last_held) {  // close-to-close returns of the held bars after the entry
    sums.sum_r += d.sum_r[last_held] - d.sum_r[entry];
    sums.sum_r2 += d.sum_r2[last_held] - d.sum_r2[entry];
    sums.sum_down2 += d.sum_down2[last_held] - d.sum_down2[entry];
    sums.held_bars += static_cast<std::size_t>(last_held - entry + 1);
  };
  auto exit = [&](int t) {
    hold_until(t - 1);
    const double growth = d.exit_value[t] / d.entry_cost[entry];
    const double cash = equity * growth;
    sums.add_return(d.exit_return[t]);
    dd.mark(cash);
    sums.add_trade(equity * (growth - 1.0), growth - 1.0);
    equity = cash;
    entry = -1;
  };

  for (int t = 0; t < n; ++t) {
    if (pending == 1)
      enter(t);
    else if (pending == 2)
      exit(t);
    pending = 0;
    const double a = fast[static_cast<std::size_t>(t) * row], b = slow[static_cast<std::size_t>(t) * row];
    const double band = kTieTolerance * fabs(b);
    const bool above = a - b > band, below = b - a > band;  // false when either is NaN
    const bool defined = !isnan(a) && !isnan(b);
    const bool up = above && before_at_or_below, down = below && before_at_or_above;
    before_at_or_below = defined && !above;
    before_at_or_above = defined && !below;
    if (entry < 0) {
      if (up && (!filtered || d.volume_ok[t])) {
        if (lag == 0)
          enter(t);
        else if (t + 1 < n)
          pending = 1;
      }
    } else if (down) {
      if (lag == 0)
        exit(t);
      else if (t + 1 < n)
        pending = 2;
    }
    if (entry >= 0) dd.mark(units * d.close[t]);
  }
  if (entry >= 0) {
    hold_until(n - 1);
    equity = units * d.close[n - 1];
  }
  sums.final_equity = equity;
  sums.max_drawdown = dd.max_drawdown;
  out[i] = finalize_metrics(sums, d.periods_per_year);
}

template <typename T>
T* upload(const T* host, std::size_t count) {
  T* device = nullptr;
  check(cudaMalloc(&device, std::max<std::size_t>(1, count) * sizeof(T)), "cudaMalloc");
  check(cudaMemcpy(device, host, count * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy to the GPU");
  return device;
}

// The tables on one GPU, and a lock: evaluate() calls on one GPU run one after another.
struct Gpu {
  int ordinal = 0;
  DeviceTables tables{};
  std::vector<void*> allocations;
  std::mutex mutex;
  int4* combos = nullptr;
  Metrics* results = nullptr;
  std::size_t capacity = 0;
  cudaEvent_t start{}, stop{};
};

class CudaMaCrossEvaluator final : public CudaEvaluator {
 public:
  CudaMaCrossEvaluator(const Bars& bars, const Grid& grid, const ExecutionOptions& options, std::vector<int> gpus)
      : periods_(ma_cross_periods(grid)), types_(ma_cross_types(grid)) {
    std::sort(types_.begin(), types_.end());
    types_.erase(std::unique(types_.begin(), types_.end()), types_.end());
    const std::size_t n = bars.size();
    // Moving averages with the CPU engine's own functions, transposed to [type][bar][period].
    std::vector<double> rows(periods_.size() * n), ma(types_.size() * n * periods_.size());
    for (std::size_t ti = 0; ti < types_.size(); ++ti) {
      ind::ma_many_into(static_cast<ind::MaType>(types_[ti]), bars.close, periods_, rows.data(), n);
      for (std::size_t p = 0; p < periods_.size(); ++p)
        for (std::size_t t = 0; t < n; ++t) ma[(ti * n + t) * periods_.size() + p] = rows[p * n + t];
    }
    const auto facts = ma_cross_bar_facts(bars, options);
    std::vector<double> columns[8];
    for (const auto& f : facts) {
      const double values[8] = {f.close,       f.entry_cost, f.exit_value, f.entry_return,
                                f.exit_return, f.sum_r,      f.sum_r2,     f.sum_down2};
      for (int k = 0; k < 8; ++k) columns[k].push_back(values[k]);
    }
    const auto volume_ok = signals::volume_above_average(bars);
    for (int ordinal : gpus) {
      auto gpu = std::make_unique<Gpu>();
      gpu->ordinal = ordinal;
      check(cudaSetDevice(ordinal), "cudaSetDevice");
      auto keep = [&](auto* p) {
        gpu->allocations.push_back(p);
        return p;
      };
      DeviceTables& d = gpu->tables;
      d.ma = keep(upload(ma.data(), ma.size()));
      const double** targets[8] = {&d.close,       &d.entry_cost, &d.exit_value, &d.entry_return,
                                   &d.exit_return, &d.sum_r,      &d.sum_r2,     &d.sum_down2};
      for (int k = 0; k < 8; ++k) *targets[k] = keep(upload(columns[k].data(), columns[k].size()));
      d.volume_ok = keep(upload(volume_ok.data(), volume_ok.size()));
      d.bars = static_cast<int>(n);
      d.periods = static_cast<int>(periods_.size());
      d.lag = options.fill == Fill::kNextOpen ? 1 : 0;
      d.cash = options.cash;
      d.periods_per_year = resolve_periods_per_year(bars, options);
      check(cudaEventCreate(&gpu->start), "cudaEventCreate");
      check(cudaEventCreate(&gpu->stop), "cudaEventCreate");
      gpus_.push_back(std::move(gpu));
    }
  }

  ~CudaMaCrossEvaluator() override {
    for (auto& gpu : gpus_) {
      cudaSetDevice(gpu->ordinal);
      for (void* p : gpu->allocations) cudaFree(p);
      cudaFree(gpu->combos);
      cudaFree(gpu->results);
      cudaEventDestroy(gpu->start);
      cudaEventDestroy(gpu->stop);
    }
  }

  std::string_view name() const override { return "ma_cross cuda"; }
  std::size_t preferred_chunk() const override { return std::size_t{1} << 18; }
  double last_kernel_seconds() const override { return last_kernel_seconds_.load(); }

  void evaluate(std::span<const double> params, std::size_t stride, std::span<Metrics> out) const override {
    const std::size_t count = out.size();
    if (count == 0) return;
    // (type, fast, filter, slow) order: warps of consecutive slow periods (see the top).
    std::vector<int4> combos(count);
    for (std::size_t i = 0; i < count; ++i) {
      const double* p = params.data() + i * stride;
      combos[i] = int4{slot(periods_, p[0]), slot(periods_, p[1]), slot(types_, p[2]), p[3] != 0 ? 1 : 0};
    }
    std::vector<std::uint32_t> order(count);
    std::iota(order.begin(), order.end(), 0u);
    std::sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
      const int4 &x = combos[a], &y = combos[b];
      return std::tie(x.z, x.x, x.w, x.y) < std::tie(y.z, y.x, y.w, y.y);
    });
    std::vector<int4> sorted(count);
    for (std::size_t i = 0; i < count; ++i) sorted[i] = combos[order[i]];

    Gpu& gpu = *gpus_[next_gpu_.fetch_add(1) % gpus_.size()];
    std::vector<Metrics> results(count);
    {
      std::lock_guard lock(gpu.mutex);
      check(cudaSetDevice(gpu.ordinal), "cudaSetDevice");
      if (gpu.capacity < count) {
        cudaFree(gpu.combos);
        cudaFree(gpu.results);
        check(cudaMalloc(&gpu.combos, count * sizeof(int4)), "cudaMalloc");
        check(cudaMalloc(&gpu.results, count * sizeof(Metrics)), "cudaMalloc");
        gpu.capacity = count;
      }
      check(cudaMemcpy(gpu.combos, sorted.data(), count * sizeof(int4), cudaMemcpyHostToDevice), "cudaMemcpy");
      const int threads = 128;
      const int blocks = static_cast<int>((count + threads - 1) / threads);
      check(cudaEventRecord(gpu.start), "cudaEventRecord");
      ma_cross_kernel<<<blocks, threads>>>(gpu.tables, gpu.combos, static_cast<int>(count), gpu.results);
      check(cudaGetLastError(), "launching ma_cross_kernel");
      check(cudaEventRecord(gpu.stop), "cudaEventRecord");
      check(cudaMemcpy(results.data(), gpu.results, count * sizeof(Metrics), cudaMemcpyDeviceToHost), "cudaMemcpy");
      float ms = 0;
      check(cudaEventElapsedTime(&ms, gpu.start, gpu.stop), "cudaEventElapsedTime");
      last_kernel_seconds_ = ms / 1000.0;
    }
    for (std::size_t i = 0; i < count; ++i) out[order[i]] = results[i];
  }

 private:
  template <typename T>
  static int slot(const std::vector<T>& values, double value) {
    const auto it = std::lower_bound(values.begin(), values.end(), static_cast<T>(value));
    if (it == values.end() || *it != static_cast<T>(value))
      throw Error("internal: value " + std::to_string(value) + " is not in the CUDA engine's tables");
    return static_cast<int>(it - values.begin());
  }

  std::vector<int> periods_;  // sorted
  std::vector<int> types_;    // sorted
  std::vector<std::unique_ptr<Gpu>> gpus_;
  mutable std::atomic<std::size_t> next_gpu_{0};
  mutable std::atomic<double> last_kernel_seconds_{0};
};

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) return 0;
  return count;
}

}  // namespace

bool cuda_available(std::string* why) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess || count == 0) {
    if (why)
      *why = status != cudaSuccess ? std::string("no usable GPU (") + cudaGetErrorString(status) + ")" : "no GPU";
    return false;
  }
  return true;
}

std::string cuda_devices() {
  std::string why;
  if (!cuda_available(&why)) return why;
  std::ostringstream out;
  for (int i = 0; i < device_count(); ++i) {
    cudaDeviceProp prop{};
    cudaGetDeviceProperties(&prop, i);
    out << (i ? ", " : "") << i << ": " << prop.name << " (sm_" << prop.major << prop.minor << ")";
  }
  return out.str();
}

std::vector<int> parse_gpus(const std::string& spec) {
  const int count = device_count();
  std::vector<int> gpus;
  if (spec.empty() || spec == "all") {
    for (int i = 0; i < count; ++i) gpus.push_back(i);
    return gpus;
  }
  std::stringstream in(spec);
  for (std::string item; std::getline(in, item, ',');) {
    int value = -1;
    try {
      value = std::stoi(item);
    } catch (const std::exception&) {
    }
    if (value < 0 || value >= count)
      throw ParamError("--gpus " + spec + ": '" + item + "' is not a GPU of this machine (allowed: all" +
                       (count > 0 ? ", or 0.." + std::to_string(count - 1) : "; none is visible") + ")");
    gpus.push_back(value);
  }
  return gpus;
}

std::unique_ptr<CudaEvaluator> make_cuda_evaluator(const Bars& bars, const Grid& grid, const ExecutionOptions& options,
                                                   const std::vector<int>& gpus) {
  if (!ma_cross_engine_supports(grid, options))
    throw ParamError(
        "--device cuda runs ma_cross long-only with --size 1 (the seed's study); use --device cpu or auto "
        "for other strategies and options");
  std::string why;
  if (!cuda_available(&why)) throw Error("--device cuda: " + why + "; use --device auto to fall back to the CPU");
  return std::make_unique<CudaMaCrossEvaluator>(bars, grid, options, gpus.empty() ? parse_gpus("all") : gpus);
}

}  // namespace gt
