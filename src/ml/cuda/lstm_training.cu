// One LSTM layer's recurrence for fp32 training, forward and backward through time
// (lstm_training.hpp).
//
// A cluster of C = H / 64 blocks serves W windows; block r owns hidden units [64 r, 64 r + 64) and
// their 256 gate rows (local row 64 q + u for gate q of unit u).
//
// Forward: thread 4 u + q holds gate row q of unit u (all H columns of W_hh) in registers and
// computes that gate for all W windows from the previous step's h, which every block holds whole.
// The four lanes of a unit then trade gates by shuffles, and lane q updates the cell of windows
// q, q + 4, ... and sends the new h to every block of the cluster.
//
// Backward, step t: the same lanes turn dh_t (from the layer above plus W_hh^T dg_{t+1}) into the
// gate gradients dg_t of their (unit, window) pairs, and add them up over steps and windows for the
// bias gradient (one row of sums a cluster, in a fixed order, so that it is the same every run).
// The product W_hh^T dg_t needs all 4H rows for each of the H columns; the block computes its own
// rows' share: S = 256 / H groups of H rows, thread t holding column t % H of row group t / H, and
// sends each partial sum to the block that owns the column's unit, which adds its C S = 4 partials
// at step t - 1.
//
// Ticks and the exchange: tick_barriers.cuh, one layer a kernel. Nothing is sent at the last tick
// (its values have no reader), so that tick is neither expected nor waited for. A cluster of one
// block (hidden 64) stores into its own shared memory and waits at a block barrier each tick
// instead: compute-sanitizer rejects distributed shared memory accesses in a cluster of one.
#include <cooperative_groups.h>

#include <algorithm>
#include <cstdint>
#include <cuda/ptx>
#include <type_traits>

#include "cluster_launch.cuh"
#include "lstm_training.hpp"
#include "tick_barriers.cuh"

namespace gt::ml::cuda {
namespace {

namespace cg = cooperative_groups;
namespace ptx = ::cuda::ptx;

constexpr int kUnits = 64;          // hidden units a block
constexpr int kThreads = 256;       // four gate rows a unit
constexpr int kSources = 4;         // partial sums of each backward product value: (H / 64) x (256 / H)
constexpr int kGateStride = 264;    // a window's 256 gate gradients in shared memory, padded: lanes
constexpr int kPartialStride = 72;  // of one unit and four windows then hit different banks

__device__ __forceinline__ float sigmoid(float x) {
  return 1.0f / (1.0f + expf(-x));
}

// Where block `rank` of the cluster counts what it receives at `tick` (unused in a cluster of one).
template <int C>
__device__ __forceinline__ std::uint64_t* barrier_of(const cg::cluster_group& cluster, std::uint64_t (&arrived)[2],
                                                     int tick, int rank) {
  if constexpr (C == 1)
    return nullptr;
  else
    return cluster.map_shared_rank(&arrived[tick & 1], rank);
}

// `value` into `target` of block `rank` of the cluster, counted by `barrier` (barrier_of); a plain
// store in a cluster of one block, which waits at a block barrier instead (see the top of the file).
template <int C>
__device__ __forceinline__ void send(const cg::cluster_group& cluster, float* target, float value, int rank,
                                     std::uint64_t* barrier) {
  if constexpr (C == 1)
    *target = value;
  else
    ptx::st_async(cluster.map_shared_rank(target, rank), value, barrier);
}

std::size_t forward_shared_bytes(int hidden, int windows) {
  return sizeof(float) * 2 * static_cast<std::size_t>(windows) * hidden;
}

std::size_t backward_shared_bytes(int windows) {
  return sizeof(float) * 2 * static_cast<std::size_t>(windows) * (kGateStride + kSources * kPartialStride);
}

template <int H, int W>
__global__ void __launch_bounds__(kThreads, 1)
    lstm_forward_kernel(const float* __restrict__ inputs, const float* __restrict__ bias,
                        const float* __restrict__ recurrent, int batch, int steps, float* __restrict__ hidden,
                        float* __restrict__ cells, float* __restrict__ gates) {
  constexpr int C = H / kUnits, kMine = W / 4;
  cg::cluster_group cluster = cg::this_cluster();
  const int rank = static_cast<int>(cluster.block_rank());
  const int first = static_cast<int>(blockIdx.x / C) * W;
  const int tid = static_cast<int>(threadIdx.x), gate = tid % 4, unit = rank * kUnits + tid / 4;
  const int row = gate * H + unit, quad = (tid % 32) & ~3;

  extern __shared__ float4 shared4[];
  float* const hs = reinterpret_cast<float*>(shared4);  // 2 x W x H: h of the last two ticks
  __shared__ alignas(8) std::uint64_t arrived[2];

  float w[H];
#pragma unroll
  for (int k = 0; k < H; k += 4) {
    const float4 v = *reinterpret_cast<const float4*>(recurrent + static_cast<std::size_t>(row) * H + k);
    w[k] = v.x, w[k + 1] = v.y, w[k + 2] = v.z, w[k + 3] = v.w;
  }
  const float row_bias = bias[row];
  const auto at = [&](int b, int t) { return static_cast<std::size_t>(first + b) * steps + t; };
  const auto input = [&](int b, int t) { return first + b < batch ? inputs[at(b, t) * 4 * H + row] : 0.0f; };
  float next[W];
#pragma unroll
  for (int b = 0; b < W; ++b) next[b] = input(b, 0);
  float c[kMine];
#pragma unroll
  for (int m = 0; m < kMine; ++m) c[m] = 0.0f;
  if (tid == 0) init_tick_barriers(arrived);
  cluster.sync();  // every block started and its barriers set before anyone sends to it

  for (int t = 0; t < steps; ++t) {
    if constexpr (C == 1) {  // a cluster of one block: see send
      if (t > 0) __syncthreads();
    } else {
      if (t > 0) wait_for_tick(arrived, t - 1);
      if (tid == 0 && t + 1 < steps) expect_tick(arrived, t, 1, steps, static_cast<int>(sizeof(float)) * W * H);
    }
    float even[W], odd[W];  // two sums a window, for more independent FMAs in flight
#pragma unroll
    for (int b = 0; b < W; ++b) even[b] = next[b] + row_bias, odd[b] = 0.0f;  // next: loaded a tick ago
    if (t + 1 < steps) {
#pragma unroll
      for (int b = 0; b < W; ++b) next[b] = input(b, t + 1);
    }
    if (t > 0) {
      const float* read = hs + ((t - 1) & 1) * W * H;
#pragma unroll
      for (int k = 0; k < H; k += 4) {
#pragma unroll
        for (int b = 0; b < W; ++b) {
          const float4 v = *reinterpret_cast<const float4*>(read + b * H + k);
          float& sum = (k / 4) % 2 ? odd[b] : even[b];
          sum = fmaf(w[k], v.x, sum);
          sum = fmaf(w[k + 1], v.y, sum);
          sum = fmaf(w[k + 2], v.z, sum);
          sum = fmaf(w[k + 3], v.w, sum);
        }
      }
    }
    float act[W];
#pragma unroll
    for (int b = 0; b < W; ++b) {
      // tanh(s) = 2 sigmoid(2 s) - 1: one exponential in each lane, where the four lanes of a unit
      // (gate 2 among them) would otherwise all run both functions.
      const float s = even[b] + odd[b];
      const float e = sigmoid(gate == 2 ? 2.0f * s : s);
      act[b] = gate == 2 ? fmaf(2.0f, e, -1.0f) : e;
      if (first + b < batch) gates[at(b, t) * 4 * H + row] = act[b];
    }
#pragma unroll
    for (int m = 0; m < kMine; ++m) {
      // The four gates of window gate + 4 m, from the four lanes of this unit.
      float g[4];
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        g[q] = 0.0f;
#pragma unroll
        for (int x = 0; x < 4; ++x) {
          const float v = __shfl_sync(0xffffffffu, act[4 * m + x], quad + q);
          if (x == gate) g[q] = v;
        }
      }
      const int b = gate + 4 * m;
      c[m] = fmaf(g[1], c[m], g[0] * g[2]);
      const float h = g[3] * tanhf(c[m]);
      if (first + b < batch) {
        cells[at(b, t) * H + unit] = c[m];
        hidden[at(b, t) * H + unit] = h;
      }
      if (t + 1 < steps) {
        float* const target = hs + (t & 1) * W * H + b * H + unit;
#pragma unroll
        for (int r = 0; r < C; ++r) send<C>(cluster, target, h, r, barrier_of<C>(cluster, arrived, t, r));
      }
    }
  }
}

template <int H, int W>
__global__ void __launch_bounds__(kThreads, 1)
    lstm_backward_kernel(const float* __restrict__ recurrent, const float* __restrict__ gates,
                         const float* __restrict__ cells, const float* __restrict__ d_hidden, int batch, int steps,
                         float* __restrict__ d_gates, float* __restrict__ d_bias) {
  constexpr int C = H / kUnits, S = kThreads / H, kMine = W / 4;
  static_assert(C * S == kSources);
  cg::cluster_group cluster = cg::this_cluster();
  const int rank = static_cast<int>(cluster.block_rank());
  const int first = static_cast<int>(blockIdx.x / C) * W;
  const int tid = static_cast<int>(threadIdx.x), slot = tid % 4, local = tid / 4, unit = rank * kUnits + local;
  const int column = tid % H, group = tid / H;

  extern __shared__ float4 shared4[];
  float* const dg = reinterpret_cast<float*>(shared4);  // 2 x W x kGateStride: this block's rows
  float* const partials = dg + 2 * W * kGateStride;     // 2 x kSources x W x kPartialStride
  __shared__ alignas(8) std::uint64_t arrived[2];

  // Column `column` of W_hh over the block's rows group H .. group H + H - 1.
  float w[H];
#pragma unroll
  for (int i = 0; i < H; ++i) {
    const int r = group * H + i;
    w[i] = recurrent[static_cast<std::size_t>((r / kUnits) * H + rank * kUnits + r % kUnits) * H + column];
  }
  struct Step {
    float i, f, g, o, c, c_before, dh;
  };
  const auto at = [&](int b, int t) { return static_cast<std::size_t>(first + b) * steps + t; };
  const auto load = [&](int b, int t) {
    Step s{};
    if (first + b < batch) {
      const float* g = gates + at(b, t) * 4 * H + unit;
      s = {g[0],
           g[H],
           g[2 * H],
           g[3 * H],
           cells[at(b, t) * H + unit],
           t > 0 ? cells[at(b, t - 1) * H + unit] : 0.0f,
           d_hidden[at(b, t) * H + unit]};
    }
    return s;
  };
  Step next[kMine];
  float dc_carried[kMine];           // dc_{t+1} f_{t+1}
  float bias_sum[4] = {0, 0, 0, 0};  // this lane's windows, steps so far
#pragma unroll
  for (int m = 0; m < kMine; ++m) next[m] = load(slot + 4 * m, steps - 1), dc_carried[m] = 0.0f;
  if (tid == 0) init_tick_barriers(arrived);
  cluster.sync();  // every block started and its barriers set before anyone sends to it

  for (int tick = 0; tick < steps; ++tick) {
    const int t = steps - 1 - tick;
    if constexpr (C == 1) {  // a cluster of one block: see send
      if (tick > 0) __syncthreads();
    } else {
      if (tick > 0) wait_for_tick(arrived, tick - 1);
      if (tid == 0 && t > 0)
        expect_tick(arrived, tick, 1, steps, static_cast<int>(sizeof(float)) * kSources * W * kUnits);
    }
    float* const written = dg + (tick & 1) * W * kGateStride;
    const float* const received = partials + ((tick + 1) & 1) * kSources * W * kPartialStride;
#pragma unroll
    for (int m = 0; m < kMine; ++m) {
      const int b = slot + 4 * m;
      const Step v = next[m];
      if (t > 0) next[m] = load(b, t - 1);
      float dh = v.dh;
      if (tick > 0) {
#pragma unroll
        for (int source = 0; source < kSources; ++source) dh += received[(source * W + b) * kPartialStride + local];
      }
      const float tc = tanhf(v.c);
      const float dc = fmaf(dh * v.o, 1.0f - tc * tc, dc_carried[m]);
      const float d[4] = {dc * v.g * v.i * (1.0f - v.i), dc * v.c_before * v.f * (1.0f - v.f),
                          dc * v.i * (1.0f - v.g * v.g), dh * tc * v.o * (1.0f - v.o)};
      dc_carried[m] = dc * v.f;
#pragma unroll
      for (int q = 0; q < 4; ++q) written[b * kGateStride + q * kUnits + local] = d[q];
      if (first + b < batch) {
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          d_gates[at(b, t) * 4 * H + q * H + unit] = d[q];
          bias_sum[q] += d[q];
        }
      }
    }
    if (t == 0) break;
    __syncthreads();  // this tick's gate gradients of the whole block
    float even[W], odd[W];
#pragma unroll
    for (int b = 0; b < W; ++b) even[b] = 0.0f, odd[b] = 0.0f;
#pragma unroll
    for (int i = 0; i < H; i += 4) {
#pragma unroll
      for (int b = 0; b < W; ++b) {
        const float4 v = *reinterpret_cast<const float4*>(written + b * kGateStride + group * H + i);
        float& sum = (i / 4) % 2 ? odd[b] : even[b];
        sum = fmaf(w[i], v.x, sum);
        sum = fmaf(w[i + 1], v.y, sum);
        sum = fmaf(w[i + 2], v.z, sum);
        sum = fmaf(w[i + 3], v.w, sum);
      }
    }
    const int owner = column / kUnits;
    float* const base = partials + (tick & 1) * kSources * W * kPartialStride;
    std::uint64_t* const owner_barrier = barrier_of<C>(cluster, arrived, tick, owner);
#pragma unroll
    for (int b = 0; b < W; ++b)
      send<C>(cluster, base + ((rank * S + group) * W + b) * kPartialStride + column % kUnits, even[b] + odd[b], owner,
              owner_barrier);
  }
  // The four lanes of a unit hold its windows' sums: lane 0 writes the cluster's.
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    bias_sum[q] += __shfl_xor_sync(0xffffffffu, bias_sum[q], 1);
    bias_sum[q] += __shfl_xor_sync(0xffffffffu, bias_sum[q], 2);
  }
  if (slot == 0) {
#pragma unroll
    for (int q = 0; q < 4; ++q) d_bias[(blockIdx.x / C) * 4 * H + q * H + unit] = bias_sum[q];
  }
}

struct Buffers {
  const float *inputs, *bias, *recurrent, *gates, *cells, *d_hidden;
  float *hidden, *cells_out, *gates_out, *d_gates, *d_bias;
  cudaStream_t stream;
};

enum class Pass { kForward, kBackward };

// `active`: where a check puts how many clusters of the kernel the GPU runs at once.
template <int H, int W>
cudaError_t run(Pass pass, const LstmRecurrenceShape& s, const Buffers& a, bool check, int* active) {
  constexpr unsigned C = H / kUnits;
  const unsigned blocks = C * static_cast<unsigned>((s.batch + W - 1) / W);
  if (pass == Pass::kForward)
    return launch_clusters_or_count(lstm_forward_kernel<H, W>, blocks, kThreads, forward_shared_bytes(H, W), C,
                                    a.stream, check, active, a.inputs, a.bias, a.recurrent, s.batch, s.steps, a.hidden,
                                    a.cells_out, a.gates_out);
  return launch_clusters_or_count(lstm_backward_kernel<H, W>, blocks, kThreads, backward_shared_bytes(W), C, a.stream,
                                  check, active, a.recurrent, a.gates, a.cells, a.d_hidden, s.batch, s.steps, a.d_gates,
                                  a.d_bias);
}

// How many clusters of the 4-window kernels the current GPU runs at once (both passes; their
// resources differ only in shared memory), asked once per device and hidden size.
template <int H>
cudaError_t active_clusters(const LstmRecurrenceShape& s, int& active) {
  return once_per_device(active, [&](int& both) {
    int forward = 0, backward = 0;
    cudaError_t status = run<H, 4>(Pass::kForward, s, Buffers{}, true, &forward);
    if (status == cudaSuccess) status = run<H, 4>(Pass::kBackward, s, Buffers{}, true, &backward);
    both = std::min(forward, backward);
    return status;
  });
}

// The fewest windows a cluster (the shortest step) that still lets every cluster run at once; past
// that the most, so that fewer clusters queue behind each other.
template <int H>
cudaError_t windows_per_cluster(const LstmRecurrenceShape& s, int& windows) {
  int active = 0;
  if (const cudaError_t status = active_clusters<H>(s, active); status != cudaSuccess) return status;
  windows = (s.batch + 3) / 4 <= active ? 4 : (s.batch + 7) / 8 <= active ? 8 : 16;
  return cudaSuccess;
}

// `body` with the hidden size as a compile-time constant (std::integral_constant), for the shapes
// the kernels serve.
template <typename Body>
cudaError_t with_hidden(const LstmRecurrenceShape& s, Body body) {
  if (!lstm_recurrence_serves(s)) return cudaErrorNotSupported;
  return s.hidden == 64 ? body(std::integral_constant<int, 64>{}) : body(std::integral_constant<int, 128>{});
}

template <int H>
cudaError_t dispatch_windows(Pass pass, const LstmRecurrenceShape& s, const Buffers& a) {
  int windows = 0;
  if (const cudaError_t status = windows_per_cluster<H>(s, windows); status != cudaSuccess) return status;
  if (windows == 4) return run<H, 4>(pass, s, a, false, nullptr);
  if (windows == 8) return run<H, 8>(pass, s, a, false, nullptr);
  return run<H, 16>(pass, s, a, false, nullptr);
}

cudaError_t dispatch(Pass pass, const LstmRecurrenceShape& s, const Buffers& a) {
  return with_hidden(s, [&](auto h) { return dispatch_windows<decltype(h)::value>(pass, s, a); });
}

}  // namespace

bool lstm_recurrence_serves(const LstmRecurrenceShape& s) {
  return (s.hidden == 64 || s.hidden == 128) && s.steps >= 1 && s.batch >= 1;
}

cudaError_t lstm_recurrence_fits(const LstmRecurrenceShape& s) {
  int active = 0;
  const cudaError_t status = with_hidden(s, [&](auto h) { return active_clusters<decltype(h)::value>(s, active); });
  return status != cudaSuccess ? status : active > 0 ? cudaSuccess : cudaErrorNotSupported;
}

cudaError_t lstm_recurrence_bias_rows(const LstmRecurrenceShape& s, int& rows) {
  int windows = 0;
  const cudaError_t status =
      with_hidden(s, [&](auto h) { return windows_per_cluster<decltype(h)::value>(s, windows); });
  if (status == cudaSuccess) rows = (s.batch + windows - 1) / windows;
  return status;
}

cudaError_t lstm_recurrence_forward(const LstmRecurrenceShape& s, const float* inputs, const float* bias,
                                    const float* recurrent, float* hidden, float* cells, float* gates,
                                    cudaStream_t stream) {
  return dispatch(
      Pass::kForward, s,
      Buffers{inputs, bias, recurrent, nullptr, nullptr, nullptr, hidden, cells, gates, nullptr, nullptr, stream});
}

cudaError_t lstm_recurrence_backward(const LstmRecurrenceShape& s, const float* recurrent, const float* gates,
                                     const float* cells, const float* d_hidden, float* d_gates, float* d_bias,
                                     cudaStream_t stream) {
  return dispatch(
      Pass::kBackward, s,
      Buffers{nullptr, nullptr, recurrent, gates, cells, d_hidden, nullptr, nullptr, nullptr, d_gates, d_bias, stream});
}

}  // namespace gt::ml::cuda
