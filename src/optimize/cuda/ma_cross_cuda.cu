// The CUDA twin of ma_cross_evaluator.cpp. One thread per moving-average pair (type, fast,
// slow) finds the pair's crossings 32 bars at a time, on float copies of the averages with the
// double-precision rule of signal_rules.hpp near ties (kCoarseTieBand), and books the trades of
// both volume-filter variants with MaCrossAccount, the CPU engine's own accounting: the per-bar
// work is a few float operations shared by two combinations, and every metric is reduced on the
// device. Pairs are sorted so that a warp shares type and fast period and holds consecutive slow
// periods: the float averages are stored [type][bar / 4][period] with four bars per 16-byte cell,
// so the warp's slow values for four bars are one coalesced read and the fast ones a broadcast
// (the double averages, read only near ties, are [type][bar][period]). They are computed on
// each GPU (moving_averages_kernel) with the CPU's own recurrences, so that the host uploads only
// the per-bar tables and every GPU builds its tables at once.
// Messages are built without fmt: its headers do not compile under nvcc 13 with g++ 12.
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <sstream>

#include "../../cuda_status.hpp"
#include "../../indicators/detail.hpp"
#include "../../strategies/signals.hpp"
#include "../ma_cross_evaluator.hpp"
#include "gt/error.hpp"
#include "gt/gpu.hpp"
#include "gt/indicators.hpp"
#include "gt/signal_rules.hpp"

namespace gt {
namespace {

void check(cudaError_t status, const char* what) {
  check_cuda(status, what);
}

struct DeviceTables {
  const float4* coarse;            // [type slot][bar / 4][period slot]: four bars of an average rounded to float
                                   // (NaN past the last bar), so that one 16-byte read serves four bars
  const double* ma;                // the same in double precision
  const int* first_defined;        // [type slot][period slot]: first bar with a defined average
  const MaCrossBarFacts* facts;    // [bar]
  const RangeStats* ranges;        // build_range_table(closes)
  const unsigned char* volume_ok;  // [bar]: 1 when the volume filter lets an entry through
  const double* close;             // [bar]
  const ReturnPrefix* prefix;      // close_return_prefix(closes)
  int bars;
  int quads;  // (bars + 3) / 4
  int periods;
  int lag;  // 1: fills at the next open; 0: at the signal bar's close
  double cash;
  double periods_per_year;
};

// Where one volume-filter variant of a pair stands between crossings.
struct Position {
  int entry_signal = 0;
  bool held = false, done = false;  // done: no further trade can fill before the last bar
};

// Where a launch that keeps block sums (a study's robustness) writes them: [combination][block],
// the combination's index as the targets give it. No sums: a launch without.
struct BlockOutput {
  const std::size_t* starts;  // block_starts: blocks + 1 values
  int blocks;
  ReturnSums* sums;
  // One variant's view (none when it is not asked for).
  __device__ BlockSumsView of(int target) const {
    return {starts, static_cast<std::size_t>(blocks),
            sums && target >= 0 ? sums + static_cast<std::size_t>(target) * static_cast<std::size_t>(blocks) : nullptr};
  }
};

// A trade booked, and with block sums its returns added to them.
template <bool kBlocks>
__device__ void book_trade(const DeviceTables& d, RangeTableView ranges, MaCrossAccount& account,
                           const BlockSumsView& blocks, int e, int x) {
  account.trade(d.facts, ranges, static_cast<std::size_t>(e), static_cast<std::size_t>(x));
  if constexpr (kBlocks)
    if (blocks.sums)
      blocks.add_trade(d.close, d.facts, d.prefix, static_cast<std::size_t>(e), static_cast<std::size_t>(x),
                       static_cast<std::size_t>(d.bars));
}

// The crossings of one 32-bar block (bit j = bar base + j) for one variant, in bar order.
template <bool kBlocks>
__device__ void book(const DeviceTables& d, RangeTableView ranges, int base, unsigned up, unsigned down, bool filtered,
                     MaCrossAccount& account, Position& at, const BlockSumsView& blocks) {
  for (unsigned events = up | down; events && !at.done; events &= events - 1) {
    const int j = __ffs(events) - 1;
    const int t = base + j;
    if (!at.held) {
      if ((up >> j & 1u) && (!filtered || d.volume_ok[t])) {
        at.entry_signal = t;
        if (t + d.lag >= d.bars)
          at.done = true;  // its fill would come after the last bar
        else
          at.held = true;
      }
    } else if (down >> j & 1u) {
      const int x = t + d.lag;
      book_trade<kBlocks>(d, ranges, account, blocks, at.entry_signal + d.lag, x < d.bars ? x : d.bars);
      at.held = false;
      at.done = x >= d.bars;
    }
  }
}

// One variant's metrics to out[target] (none asked for: target < 0), a position still held at the
// last bar booked first.
template <bool kBlocks>
__device__ void settle(const DeviceTables& d, RangeTableView ranges, int target, MaCrossAccount& account,
                       const Position& at, Metrics* out, const BlockSumsView& blocks) {
  if (target < 0) return;
  if (at.held && !at.done) book_trade<kBlocks>(d, ranges, account, blocks, at.entry_signal + d.lag, d.bars);
  out[target] = account.finish(d.periods_per_year);
}

// Everything a pair carries from one block of bars to the next: what a launch over part of the
// bars (a segment) leaves for the next one.
struct PairState {
  MaCrossAccount plain, filtered;
  Position plain_at, filtered_at;
  unsigned carry_above, carry_below;  // bit 31 of the previous block's masks
};

// pairs[i] = (fast slot, slow slot, type slot, -); targets[i] = where the unfiltered and the
// filtered combination's metrics go (-1: not asked for). One launch covers the blocks of 32 bars
// that start in [segment_first, segment_end); a pair's state comes from `states` unless the
// segment starts at bar 0, and goes back there unless it ends at the last bar, where the metrics
// are written. H100, 1.1 million combinations:
// - A block is one warp (kBlockThreads), so that an SM takes a new warp as soon as one finishes
//   instead of when the slowest of its block does: 1.43-1.44e12 -> 1.49-1.50e12 bar-combos/s at
//   100,000 bars against blocks of 128 (64 threads: 1.46e12; 256: 1.31-1.34e12).
// - A full block's 16 cells are read before any is compared, so that the reads wait on L2 or HBM
//   together rather than one after another (the loop's exit at the last bar kept the compiler
//   from issuing them ahead): 1.80 -> 2.32-2.38e12 at 2,000 bars, with 149 registers instead of 124.
// - A float table larger than L2 is read in segments of bars whose part of one type's table fills
//   about half of L2, so that the warps of every wave find it there rather than in HBM: 1.53-1.55e12
//   (one launch, 16 warps an SM) -> 2.05-2.06e12 at 100,000 bars (segments of 6,432 bars; 2,048:
//   1.88e12, 1,024: 1.55e12, 16,384: 1.88e12), with unconstrained registers (16 warps an SM, which
//   one launch needed to hide HBM, gave 1.64-1.77e12 with segments).
constexpr int kBlockThreads = 32;
// A minimum of one block an SM, stated: without it ptxas caps a 32-thread kernel at 128 registers
// and spills (2.13e12 instead of 2.30e12 at 2,000 bars); with it, 168. kBlocks: also block sums
// (a study's robustness), compiled apart so that the plain kernel carries none of it.
template <bool kBlocks>
__global__ void __launch_bounds__(kBlockThreads, 1)
    ma_cross_kernel(DeviceTables d, const int4* pairs, const int2* targets, int count, Metrics* out, int segment_first,
                    int segment_end, PairState* states, BlockOutput blocks) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const int4 pair = pairs[i];
  const int2 target = targets[i];
  const int n = d.bars;
  const std::size_t row = static_cast<std::size_t>(d.periods);
  const std::size_t block = static_cast<std::size_t>(pair.z) * static_cast<std::size_t>(n) * row;
  const int t0 = max(d.first_defined[pair.z * d.periods + pair.x], d.first_defined[pair.z * d.periods + pair.y]);
  const RangeTableView ranges{d.ranges, static_cast<std::size_t>(n)};
  // At t0 the previous bar is undefined: no crossing (carries of 1).
  PairState state = segment_first == 0 ? PairState{MaCrossAccount(static_cast<std::size_t>(n), d.cash),
                                                   MaCrossAccount(static_cast<std::size_t>(n), d.cash),
                                                   Position{0, false, target.x < 0},
                                                   Position{0, false, target.y < 0},
                                                   1u,
                                                   1u}
                                       : states[i];
  MaCrossAccount& plain = state.plain;
  MaCrossAccount& filtered = state.filtered;
  Position& plain_at = state.plain_at;
  Position& filtered_at = state.filtered_at;
  unsigned& carry_above = state.carry_above;
  unsigned& carry_below = state.carry_below;
  const BlockSumsView plain_blocks = blocks.of(target.x), filtered_blocks = blocks.of(target.y);
  const float4* quads = d.coarse + static_cast<std::size_t>(pair.z) * static_cast<std::size_t>(d.quads) * row;
  // Blocks start on a multiple of 4 bars; the bars before t0 count as both above and below, which
  // no crossing can follow. A segment takes the blocks that start inside it.
  const int first_base = t0 & ~3;
  const int start = segment_first <= first_base ? first_base : first_base + (segment_first - first_base + 31) / 32 * 32;
  const int end = min(n, segment_end);
  for (int base = start; base < end && !(plain_at.done && filtered_at.done); base += 32) {
    const int m = min(32, n - base);
    const float4* fast = quads + static_cast<std::size_t>(base / 4) * row + pair.x;
    const float4* slow = quads + static_cast<std::size_t>(base / 4) * row + pair.y;
    unsigned above = 0, below = 0;
    const auto compare = [&](int q, float4 a4, float4 b4) {
      const float a[4] = {a4.x, a4.y, a4.z, a4.w}, b[4] = {b4.x, b4.y, b4.z, b4.w};
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const float band = kCoarseTieBand * fabsf(b[k]);
        const bool is_up = a[k] - b[k] > band, is_down = b[k] - a[k] > band;
        above |= static_cast<unsigned>(is_up) << (4 * q + k);
        below |= static_cast<unsigned>(is_down) << (4 * q + k);
      }
    };
    if (m == 32) {
      float4 a4[8], b4[8];
#pragma unroll
      for (int q = 0; q < 8; ++q) {
        a4[q] = fast[q * row];
        b4[q] = slow[q * row];
      }
#pragma unroll
      for (int q = 0; q < 8; ++q) compare(q, a4[q], b4[q]);
    } else {
#pragma unroll
      for (int q = 0; q < 8; ++q) {
        if (4 * q >= m) break;  // past the last bar
        compare(q, fast[q * row], slow[q * row]);
      }
    }
    const unsigned before = base < t0 ? (1u << (t0 - base)) - 1 : 0u;
    const unsigned inside = (m == 32 ? ~0u : (1u << m) - 1) & ~before;
    // Near a tie (neither bit set): the double-precision rule decides.
    for (unsigned unsure = ~(above | below) & inside; unsure; unsure &= unsure - 1) {
      const int j = __ffs(unsure) - 1;
      const std::size_t at = block + static_cast<std::size_t>(base + j) * row;
      above |= static_cast<unsigned>(is_above(d.ma[at + pair.x], d.ma[at + pair.y])) << j;
      below |= static_cast<unsigned>(is_below(d.ma[at + pair.x], d.ma[at + pair.y])) << j;
    }
    above = (above & inside) | before;
    below = (below & inside) | before;
    // Bars before t0 count as both above and below: "not above" is the at-or-below state.
    const unsigned up = cross_event_bits(above, ~above, ~carry_above & 1u);
    const unsigned down = cross_event_bits(below, ~below, ~carry_below & 1u);
    carry_above = above >> 31;
    carry_below = below >> 31;
    book<kBlocks>(d, ranges, base, up, down, false, plain, plain_at, plain_blocks);
    book<kBlocks>(d, ranges, base, up, down, true, filtered, filtered_at, filtered_blocks);
  }
  if (segment_end < n) {
    states[i] = state;
    return;
  }
  settle<kBlocks>(d, ranges, target.x, plain, plain_at, out, plain_blocks);
  settle<kBlocks>(d, ranges, target.y, filtered, filtered_at, out, filtered_blocks);
}

// The averages the kernel reads, [type slot][bar][period slot], with their float copies in cells
// of four bars ([type slot][bar / 4][period slot], NaN past the last bar) and each row's first
// defined bar: one thread per (type, period) runs ind::detail's one-period recurrence
// (the very code behind ind::ma_many_into, compiled without FMA contraction), so every value is
// bit-identical to the CPU engine's. A warp's threads hold consecutive periods: coalesced stores.
__global__ void moving_averages_kernel(const double* close, int n, const int* types, int type_count, const int* periods,
                                       int period_count, double* ma, float4* coarse, int* first_defined) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= type_count * period_count) return;
  const int type_slot = i / period_count, period_slot = i % period_count;
  const int period = periods[period_slot];
  const std::size_t row = static_cast<std::size_t>(period_count);
  const std::size_t at = static_cast<std::size_t>(type_slot) * static_cast<std::size_t>(n) * row + period_slot;
  const int quads = (n + 3) / 4;
  float4* coarse_row =
      coarse + static_cast<std::size_t>(type_slot) * static_cast<std::size_t>(quads) * row + period_slot;
  float quad[4];
  int defined = n;
  auto put = [&](int t, double value) {
    ma[at + static_cast<std::size_t>(t) * row] = value;
    quad[t & 3] = static_cast<float>(value);
    if ((t & 3) == 3)
      coarse_row[static_cast<std::size_t>(t / 4) * row] = make_float4(quad[0], quad[1], quad[2], quad[3]);
    if (defined == n && !isnan(value)) defined = t;
  };
  const int first = period <= n ? period - 1 : n;  // the first output bar (none past the data)
  for (int t = 0; t < first; ++t) put(t, ind::detail::kNaN);
  if (first < n) {
    switch (static_cast<ind::MaType>(types[type_slot])) {
      case ind::MaType::kSma: {
        ind::detail::SmaRunning sma(close, period);
        for (int t = first; t < n; ++t) put(t, sma.step(static_cast<std::size_t>(t)));
        break;
      }
      case ind::MaType::kEma: {
        ind::detail::EmaRunning ema(close, period, 2.0 / static_cast<double>(period + 1),
                                    static_cast<std::size_t>(first));
        put(first, ema.prev);
        for (int t = first + 1; t < n; ++t) put(t, ema.step(close[t]));
        break;
      }
      default: {  // kWma: the only other type ma_cross allows (strategy.cpp)
        ind::detail::WmaRunning wma(close, period);
        for (int t = first; t < n; ++t) put(t, wma.step(static_cast<std::size_t>(t)));
        break;
      }
    }
  }
  for (int t = n; t < 4 * quads; ++t) quad[t & 3] = ind::detail::kNaN;  // the last quad's bars past the data
  if (n & 3) coarse_row[static_cast<std::size_t>(quads - 1) * row] = make_float4(quad[0], quad[1], quad[2], quad[3]);
  first_defined[type_slot * period_count + period_slot] = defined;
}

template <typename T>
T* allocate(std::size_t count, const char* what) {
  T* device = nullptr;
  const cudaError_t status = cudaMalloc(&device, std::max<std::size_t>(1, count) * sizeof(T));
  if (status != cudaSuccess) {
    std::ostringstream message;
    message << "CUDA: no room for " << what << " (" << count * sizeof(T) / (1 << 20)
            << " MiB): " << cudaGetErrorString(status) << "; use fewer bars or periods per run, or the cpu device";
    throw Error({"device"}, message.str());
  }
  return device;
}

// A copy of host data on the current GPU.
template <typename T>
T* upload(const T* host, std::size_t count, const char* what) {
  T* device = allocate<T>(count, what);
  check(cudaMemcpy(device, host, count * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy to the GPU");
  return device;
}

// Device memory owned for the length of a call (none for a count of 0).
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer(std::size_t count, const char* what) : data_(count ? allocate<T>(count, what) : nullptr) {}
  ~DeviceBuffer() { cudaFree(data_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  T* get() const { return data_; }

 private:
  T* data_;
};

// The tables on one GPU, and a lock: evaluate() calls on one GPU run one after another.
struct Gpu {
  int ordinal = 0;
  DeviceTables tables{};
  std::vector<void*> allocations;
  std::mutex mutex;
  int segment_bars = 0;         // bars per launch, 0 for all (CudaEvaluator::segment_bars)
  PairState* states = nullptr;  // [pair] between segments, when segment_bars > 0
  int4* pairs = nullptr;
  int2* targets = nullptr;
  Metrics* results = nullptr;
  std::size_t capacity = 0;
  cudaEvent_t start{}, stop{};
};

class CudaMaCrossEvaluator final : public CudaEvaluator {
 public:
  CudaMaCrossEvaluator(const Bars& bars, const Grid& grid, const ExecutionOptions& options, std::vector<int> gpus)
      : periods_(ma_cross_periods(grid)), types_(ma_cross_types(grid)) {
    const std::size_t n = bars.size();
    period_slots_.assign(static_cast<std::size_t>(periods_.back()) + 1, -1);
    for (std::size_t p = 0; p < periods_.size(); ++p)
      period_slots_[static_cast<std::size_t>(periods_[p])] = static_cast<int>(p);
    const std::size_t periods = periods_.size();
    const auto facts = ma_cross_bar_facts(bars, options);
    const auto prefix = close_return_prefix(bars.close);
    const auto ranges = build_range_table(bars.close);
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
      // Every GPU builds its own averages; the launches run side by side (synchronized below).
      const std::size_t cells = types_.size() * n * periods;
      double* ma = keep(allocate<double>(cells, "the moving-average table"));
      const std::size_t quads = (n + 3) / 4;
      float4* coarse = keep(allocate<float4>(types_.size() * quads * periods, "the moving-average table's float copy"));
      int* first_defined = keep(allocate<int>(types_.size() * periods, "the first-defined table"));
      const double* close = keep(upload(bars.close.data(), n, "the closes"));
      d.close = close;
      d.prefix = keep(upload(prefix.data(), prefix.size(), "the return prefix sums"));
      const int* types = keep(upload(types_.data(), types_.size(), "the MA types"));
      const int* period_values = keep(upload(periods_.data(), periods, "the periods"));
      const int rows = static_cast<int>(types_.size() * periods);
      moving_averages_kernel<<<(rows + 127) / 128, 128>>>(close, static_cast<int>(n), types,
                                                          static_cast<int>(types_.size()), period_values,
                                                          static_cast<int>(periods), ma, coarse, first_defined);
      check(cudaGetLastError(), "launching moving_averages_kernel");
      int l2_bytes = 0;
      check(cudaDeviceGetAttribute(&l2_bytes, cudaDevAttrL2CacheSize, ordinal), "cudaDeviceGetAttribute");
      // Beyond L2, segments whose part of one type's float table fills about half of it.
      if (types_.size() * quads * periods * sizeof(float4) > static_cast<std::size_t>(l2_bytes))
        gpu->segment_bars = static_cast<int>(
            std::max<std::size_t>(256, static_cast<std::size_t>(l2_bytes) / 2 / (periods * sizeof(float))) &
            ~std::size_t{31});
      d.ma = ma;
      d.coarse = coarse;
      d.first_defined = first_defined;
      d.facts = keep(upload(facts.data(), facts.size(), "the per-bar facts"));
      d.ranges = keep(upload(ranges.data(), ranges.size(), "the range table"));
      d.volume_ok = keep(upload(volume_ok.data(), volume_ok.size(), "the volume filter"));
      d.bars = static_cast<int>(n);
      d.quads = static_cast<int>(quads);
      d.periods = static_cast<int>(periods_.size());
      d.lag = options.fill == Fill::kNextOpen ? 1 : 0;
      d.cash = options.cash;
      d.periods_per_year = resolve_periods_per_year(bars, options);
      check(cudaEventCreate(&gpu->start), "cudaEventCreate");
      check(cudaEventCreate(&gpu->stop), "cudaEventCreate");
      gpus_.push_back(std::move(gpu));
    }
    for (const auto& gpu : gpus_) {
      check(cudaSetDevice(gpu->ordinal), "cudaSetDevice");
      check(cudaDeviceSynchronize(), "building the moving-average tables");
    }
  }

  std::vector<double> moving_average_table(std::size_t gpu_index) const override {
    const Gpu& gpu = *gpus_.at(gpu_index);
    check(cudaSetDevice(gpu.ordinal), "cudaSetDevice");
    std::vector<double> table(types_.size() * static_cast<std::size_t>(gpu.tables.bars) * periods_.size());
    check(cudaMemcpy(table.data(), gpu.tables.ma, table.size() * sizeof(double), cudaMemcpyDeviceToHost), "cudaMemcpy");
    return table;
  }

  ~CudaMaCrossEvaluator() override {
    for (auto& gpu : gpus_) {
      cudaSetDevice(gpu->ordinal);
      for (void* p : gpu->allocations) cudaFree(p);
      cudaFree(gpu->pairs);
      cudaFree(gpu->targets);
      cudaFree(gpu->results);
      cudaFree(gpu->states);
      cudaEventDestroy(gpu->start);
      cudaEventDestroy(gpu->stop);
    }
  }

  int segment_bars() const override { return gpus_.front()->segment_bars; }
  void set_segment_bars(int bars) override {
    for (auto& gpu : gpus_) {
      std::lock_guard lock(gpu->mutex);
      gpu->segment_bars = std::max(0, bars);
      check(cudaSetDevice(gpu->ordinal), "cudaSetDevice");
      cudaFree(gpu->states);  // sized again, with the other buffers, by the next evaluate()
      gpu->states = nullptr;
      gpu->capacity = 0;
    }
  }

  std::string_view name() const override { return "ma_cross cuda"; }
  std::size_t preferred_chunk() const override { return std::size_t{1} << 18; }
  double last_kernel_seconds() const override { return last_kernel_seconds_.load(); }

  void evaluate(std::span<const double> params, std::size_t stride, std::span<Metrics> out) const override {
    evaluate_with_blocks(params, stride, out, {}, {});
  }

  void evaluate_with_blocks(std::span<const double> params, std::size_t stride, std::span<Metrics> out,
                            std::span<const std::size_t> starts, std::span<ReturnSums> block_sums) const override {
    const std::size_t count = out.size();
    if (count == 0) return;
    // One thread per (type, fast, slow) pair, in that order: warps of consecutive slow periods
    // (see the top); each pair's two filter variants go to their own places in `out`.
    std::vector<int4> combos(count);
    std::vector<std::uint64_t> keys(count);
    const std::uint64_t slots = periods_.size();
    for (std::size_t i = 0; i < count; ++i) {
      const MaCrossParams p = decode_ma_cross(params.data() + i * stride);
      const int4 c{period_slot(p.fast), period_slot(p.slow), type_slot(p.ma_type), p.volume_filter ? 1 : 0};
      combos[i] = c;
      keys[i] = ((static_cast<std::uint64_t>(c.z) * slots + c.x) * slots + c.y) * 2 + c.w;
    }
    const std::vector<std::uint32_t> order = order_by_key(keys);
    std::vector<int4> pairs;
    std::vector<int2> targets;
    for (const std::uint32_t i : order) {
      const int4 c = combos[i];
      if (pairs.empty() || pairs.back().x != c.x || pairs.back().y != c.y || pairs.back().z != c.z) {
        pairs.push_back(int4{c.x, c.y, c.z, 0});
        targets.push_back(int2{-1, -1});
      }
      (c.w ? targets.back().y : targets.back().x) = static_cast<int>(i);
    }
    const std::size_t pair_count = pairs.size();

    Gpu& gpu = *gpus_[next_gpu_.fetch_add(1) % gpus_.size()];
    std::lock_guard lock(gpu.mutex);
    check(cudaSetDevice(gpu.ordinal), "cudaSetDevice");
    if (gpu.capacity < count) {
      cudaFree(gpu.pairs);
      cudaFree(gpu.targets);
      cudaFree(gpu.results);
      cudaFree(gpu.states);
      // Reset first: a failed allocation below must not leave freed pointers for the destructor.
      gpu.pairs = nullptr;
      gpu.targets = nullptr;
      gpu.results = nullptr;
      gpu.states = nullptr;
      gpu.capacity = 0;
      gpu.pairs = allocate<int4>(count, "a chunk's MA pairs");
      gpu.targets = allocate<int2>(count, "a chunk's result slots");
      gpu.results = allocate<Metrics>(count, "a chunk's metrics");
      if (gpu.segment_bars > 0) gpu.states = allocate<PairState>(count, "a chunk's pair states");
      gpu.capacity = count;
    }
    check(cudaMemcpy(gpu.pairs, pairs.data(), pair_count * sizeof(int4), cudaMemcpyHostToDevice), "cudaMemcpy");
    check(cudaMemcpy(gpu.targets, targets.data(), pair_count * sizeof(int2), cudaMemcpyHostToDevice), "cudaMemcpy");
    const int blocks = static_cast<int>((pair_count + kBlockThreads - 1) / kBlockThreads);
    check(cudaEventRecord(gpu.start), "cudaEventRecord");
    const int n = gpu.tables.bars;
    const int segment = gpu.segment_bars > 0 ? gpu.segment_bars : n;
    // Block sums, when asked for: this call's own buffers, zeroed, filled as trades are booked.
    const std::size_t per = starts.empty() ? 0 : starts.size() - 1;
    DeviceBuffer<std::size_t> block_starts(per ? starts.size() : 0, "the block starts");
    DeviceBuffer<ReturnSums> sums(count * per, "a chunk's block sums");
    if (per) {
      check(cudaMemcpy(block_starts.get(), starts.data(), starts.size() * sizeof(std::size_t), cudaMemcpyHostToDevice),
            "cudaMemcpy");
      check(cudaMemset(sums.get(), 0, count * per * sizeof(ReturnSums)), "cudaMemset");
    }
    const BlockOutput output{block_starts.get(), static_cast<int>(per), sums.get()};
    for (int first = 0; first == 0 || first < n; first += segment) {
      const int end = std::min(n, first + segment);
      if (per)
        ma_cross_kernel<true><<<blocks, kBlockThreads>>>(gpu.tables, gpu.pairs, gpu.targets,
                                                         static_cast<int>(pair_count), gpu.results, first, end,
                                                         gpu.states, output);
      else
        ma_cross_kernel<false><<<blocks, kBlockThreads>>>(gpu.tables, gpu.pairs, gpu.targets,
                                                          static_cast<int>(pair_count), gpu.results, first, end,
                                                          gpu.states, output);
      check(cudaGetLastError(), "launching ma_cross_kernel");
    }
    check(cudaEventRecord(gpu.stop), "cudaEventRecord");
    check(cudaMemcpy(out.data(), gpu.results, count * sizeof(Metrics), cudaMemcpyDeviceToHost), "cudaMemcpy");
    if (per) {
      std::vector<ReturnSums> back(count * per);
      check(cudaMemcpy(back.data(), sums.get(), back.size() * sizeof(ReturnSums), cudaMemcpyDeviceToHost),
            "cudaMemcpy");
      for (std::size_t i = 0; i < back.size(); ++i) {  // the caller's counts stay as they are
        block_sums[i].sum += back[i].sum;
        block_sums[i].sum2 += back[i].sum2;
      }
    }
    float ms = 0;
    check(cudaEventElapsedTime(&ms, gpu.start, gpu.stop), "cudaEventElapsedTime");
    last_kernel_seconds_ = ms / 1000.0;
  }

 private:
  int period_slot(double period) const {
    const auto p = static_cast<std::size_t>(period);
    if (p >= period_slots_.size() || period_slots_[p] < 0)
      throw Error("internal: period " + std::to_string(period) + " is not in the CUDA engine's tables");
    return period_slots_[p];
  }
  int type_slot(double type) const {
    const auto it = std::lower_bound(types_.begin(), types_.end(), static_cast<int>(type));
    if (it == types_.end() || *it != static_cast<int>(type))
      throw Error("internal: MA type " + std::to_string(type) + " is not in the CUDA engine's tables");
    return static_cast<int>(it - types_.begin());
  }

  std::vector<int> periods_;       // sorted
  std::vector<int> period_slots_;  // period -> its index in periods_, -1 if absent
  std::vector<int> types_;         // sorted
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
  return parse_gpu_list(spec, device_count());
}

std::unique_ptr<CudaEvaluator> make_cuda_evaluator(const Bars& bars, const Grid& grid, const ExecutionOptions& options,
                                                   const std::vector<int>& gpus) {
  if (!ma_cross_engine_supports(grid, options))
    throw ParamError({"device", "size"},
                     "device cuda runs ma_cross long-only with size 1 (the seed's study); use the cpu or auto device "
                     "for other strategies and options");
  if (options.first_bar > 0 || options.close_at_end)
    throw ParamError({"device"},
                     "device cuda evaluates whole series, not windows (walk-forward); use the cpu or auto "
                     "device");
  if (grid.has_exits())
    throw ParamError({"device"},
                     "device cuda has no exits by price and time (stop_loss, take_profit, trailing_stop, max_bars, "
                     "risk); use the cpu or auto device for a grid with them");
  std::string why;
  if (!cuda_available(&why))
    throw Error({"device"}, "device cuda: " + why + "; use the auto device to fall back to the CPU");
  return std::make_unique<CudaMaCrossEvaluator>(bars, grid, options, gpus.empty() ? parse_gpus("all") : gpus);
}

}  // namespace gt
