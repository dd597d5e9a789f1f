// Small-batch LSTM prediction through one cluster of 16 thread blocks (cluster_lstm.hpp).
//
// Block r owns hidden units [r U, (r + 1) U), U = H / 16, of every layer: their 4 U gate rows per
// layer. A warp holds two units' eight gate rows, four lanes a row, and each lane keeps its quarter
// of the row in registers: the columns 16 m + 4 s + e (s the lane's quarter, m and e counting) of
// the row over the layer's input, which is [x_t padded to 16; h0_{t-1}] for layer 0 and
// [h_{l-1,t}; h_{l,t-1}] for layer l. Those columns put a warp's 16-byte reads of the input vector
// on four neighbouring 16-byte words: no bank conflicts.
//
// Ticks and the exchange of hidden values: tick_barriers.cuh (60 steps, 2 layers, batch 1: 60 us a
// window on an H100, against 93 us with a cluster barrier ending each tick).
#include <cooperative_groups.h>

#include <cstdint>
#include <cuda/ptx>
#include <type_traits>

#include "cluster_launch.cuh"
#include "cluster_lstm.hpp"
#include "tick_barriers.cuh"

namespace gt::ml::cuda {
namespace {

namespace cg = cooperative_groups;
namespace ptx = ::cuda::ptx;

constexpr int kBlocks = 16;        // a cluster (beyond the portable 8: more blocks, fewer rows each)
constexpr int kSlices = 4;         // lanes a gate row
constexpr int kPaddedInputs = 16;  // layer 0's input columns, features padded with zeros
constexpr int kMaxSharedBytes = 200 * 1024;

// Threads of a block: L layers x U units x 4 gates x 4 lanes.
__host__ __device__ constexpr int block_threads(int hidden, int layers) {
  return layers * (hidden / kBlocks) * 16;
}

std::size_t shared_bytes(const ClusterLstmShape& s, int windows) {
  return sizeof(float) *
         (static_cast<std::size_t>(s.steps) * windows * kPaddedInputs + 2ull * windows * s.layers * s.hidden);
}

__device__ __forceinline__ float sigmoid(float x) {
  return 1.0f / (1.0f + expf(-x));
}

// B windows a cluster.
template <int H, int L, int B>
__global__ void __launch_bounds__(block_threads(H, L), 1)
    cluster_lstm_kernel(const float* __restrict__ weights, const float* __restrict__ biases,
                        const float* __restrict__ head, const float* __restrict__ windows, int batch, int steps,
                        int features, float* __restrict__ out) {
  constexpr int U = H / kBlocks, kWarpsPerLayer = U / 2, kThreads = block_threads(H, L);
  constexpr int kMaxM = H / 8;                   // 16-column groups of a 2H row
  constexpr int kPartials = B >= 4 ? 1 : 4 / B;  // independent sums a window, for ILP
  constexpr int kStride = L * H;                 // one window's hidden states, all layers
  cg::cluster_group cluster = cg::this_cluster();
  const int rank = static_cast<int>(cluster.block_rank());
  const int first = static_cast<int>(blockIdx.x / kBlocks) * B;
  const int tid = static_cast<int>(threadIdx.x), warp = tid / 32, lane = tid % 32;
  const int layer = warp / kWarpsPerLayer;
  const int slice = lane % kSlices, gate = (lane / kSlices) % 4;
  const int unit = rank * U + (warp % kWarpsPerLayer) * 2 + lane / 16;
  const int lane16 = lane % 16, group = lane & 16;
  const int groups = layer == 0 ? 1 + H / 16 : kMaxM;  // of 16 columns in this layer's rows

  extern __shared__ float4 shared4[];
  float* const xs = reinterpret_cast<float*>(shared4);                         // steps x B x 16
  float* const hs = xs + static_cast<std::size_t>(steps) * B * kPaddedInputs;  // 2 x B x L x H
  // arrived[p]: the hidden values written at ticks of parity p, counted in bytes by st.async.
  __shared__ alignas(8) std::uint64_t arrived[2];

  float w[4 * kMaxM];
#pragma unroll
  for (int j = 0; j < 4 * kMaxM; ++j) w[j] = weights[(static_cast<std::size_t>(rank) * 4 * kMaxM + j) * kThreads + tid];
  const float bias = biases[layer * 4 * H + gate * H + unit];

  for (int i = tid; i < steps * B * kPaddedInputs; i += kThreads) {
    const int f = i % kPaddedInputs, b = (i / kPaddedInputs) % B, t = i / (kPaddedInputs * B);
    xs[i] = f < features && first + b < batch
                ? windows[(static_cast<std::size_t>(first + b) * steps + t) * features + f]
                : 0.0f;
  }
  for (int i = tid; i < 2 * B * kStride; i += kThreads) hs[i] = 0.0f;
  if (tid == 0) init_tick_barriers(arrived);
  float c = 0.0f;  // the cell of (unit, window lane16 % B)
  const int mine = lane16 % B;
  cluster.sync();  // every block started, zeroed and its barriers set before anyone writes into it

  const int ticks = steps + L - 1;
  for (int tick = 0; tick < ticks; ++tick) {
    if (tick > 0) wait_for_tick(arrived, tick - 1);  // every thread, every tick (tick_barriers.cuh)
    if (tid == 0) expect_tick(arrived, tick, L, steps, static_cast<int>(sizeof(float)) * B * H);
    const int t = tick - layer;
    if (t < 0 || t >= steps) continue;
    const float* read = hs + ((tick + 1) & 1) * B * kStride;
    float* const written = hs + (tick & 1) * B * kStride;
    float acc[B][kPartials];
#pragma unroll
    for (int b = 0; b < B; ++b)
#pragma unroll
      for (int p = 0; p < kPartials; ++p) acc[b][p] = 0.0f;
#pragma unroll
    for (int m = 0; m < kMaxM; ++m) {
      if (m < groups) {
#pragma unroll
        for (int b = 0; b < B; ++b) {
          const float* source = layer == 0
                                    ? (m == 0 ? xs + (t * B + b) * kPaddedInputs : read + b * kStride + (m - 1) * 16)
                                    : read + b * kStride + (layer - 1) * H + m * 16;
          const float4 v = *reinterpret_cast<const float4*>(source + 4 * slice);
          const float x[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
          for (int e = 0; e < 4; ++e) acc[b][e % kPartials] = fmaf(w[4 * m + e], x[e], acc[b][e % kPartials]);
        }
      }
    }
    float sum[B];
#pragma unroll
    for (int b = 0; b < B; ++b) {
      float s = acc[b][0];
#pragma unroll
      for (int p = 1; p < kPartials; ++p) s += acc[b][p];
      s += __shfl_xor_sync(0xffffffffu, s, 1);
      s += __shfl_xor_sync(0xffffffffu, s, 2);
      sum[b] = s + bias;
    }
    // Gates of window `mine` from the first lanes of this unit's four rows.
    float gi = 0, gf = 0, gg = 0, go = 0;
#pragma unroll
    for (int b = 0; b < B; ++b) {
      const float vi = __shfl_sync(0xffffffffu, sum[b], group + 0);
      const float vf = __shfl_sync(0xffffffffu, sum[b], group + 4);
      const float vg = __shfl_sync(0xffffffffu, sum[b], group + 8);
      const float vo = __shfl_sync(0xffffffffu, sum[b], group + 12);
      if (b == mine) gi = vi, gf = vf, gg = vg, go = vo;
    }
    c = sigmoid(gf) * c + sigmoid(gi) * tanhf(gg);
    const float h = sigmoid(go) * tanhf(c);
    // The 16 / B lanes holding window `mine` share the sends to the 16 blocks.
    float* const target = written + mine * kStride + layer * H + unit;
    for (int r = lane16 / B; r < kBlocks; r += 16 / B)
      ptx::st_async(cluster.map_shared_rank(target, r), h, cluster.map_shared_rank(&arrived[tick & 1], r));
  }
  wait_for_tick(arrived, ticks - 1);  // also: nothing is sent to a block after this, so it may exit

  if (rank == 0 && warp == 0) {
    const float* last = hs + ((ticks - 1) & 1) * B * kStride + (L - 1) * H;
    for (int b = 0; b < B; ++b) {
      float s = 0.0f;
      for (int k = lane; k < H; k += 32) s = fmaf(last[b * kStride + k], head[k], s);
#pragma unroll
      for (int offset = 16; offset > 0; offset /= 2) s += __shfl_xor_sync(0xffffffffu, s, offset);
      if (lane == 0 && first + b < batch) out[first + b] = s + head[H];
    }
  }
}

struct Launch {
  const float *weights, *biases, *head, *windows;
  int batch;
  float* out;
  cudaStream_t stream;
};

// `check` asks whether a cluster fits on this GPU instead of launching.
template <int H, int L, int B>
cudaError_t run(const ClusterLstmShape& s, const Launch& a, bool check) {
  return launch_clusters(cluster_lstm_kernel<H, L, B>, static_cast<unsigned>(kBlocks * ((a.batch + B - 1) / B)),
                         static_cast<unsigned>(block_threads(H, L)), shared_bytes(s, B), kBlocks, a.stream, check,
                         a.weights, a.biases, a.head, a.windows, a.batch, s.steps, s.features, a.out);
}

cudaError_t dispatch(const ClusterLstmShape& s, const Launch& a, bool check) {
  const int per_cluster = cluster_lstm_windows_per_cluster(s, a.batch);
  const auto with = [&](auto hidden, auto layers) {
    constexpr int H = decltype(hidden)::value, L = decltype(layers)::value;
    return per_cluster == 1 ? run<H, L, 1>(s, a, check) : run<H, L, 4>(s, a, check);
  };
  using H64 = std::integral_constant<int, 64>;
  using H128 = std::integral_constant<int, 128>;
  using L1 = std::integral_constant<int, 1>;
  using L2 = std::integral_constant<int, 2>;
  using L3 = std::integral_constant<int, 3>;
  if (per_cluster == 0) return cudaErrorNotSupported;
  if (s.hidden == 64) return s.layers == 1 ? with(H64{}, L1{}) : s.layers == 2 ? with(H64{}, L2{}) : with(H64{}, L3{});
  return s.layers == 1 ? with(H128{}, L1{}) : s.layers == 2 ? with(H128{}, L2{}) : with(H128{}, L3{});
}

}  // namespace

int cluster_lstm_windows_per_cluster(const ClusterLstmShape& s, int batch) {
  if (s.hidden != 64 && s.hidden != 128) return 0;
  if (s.layers < 1 || s.layers > 3 || s.features < 1 || s.features > kPaddedInputs || s.steps < 1 || batch < 1)
    return 0;
  const int windows = batch == 1 ? 1 : 4;
  return shared_bytes(s, windows) <= kMaxSharedBytes ? windows : 0;
}

ClusterLstmWeights cluster_lstm_pack(const ClusterLstmShape& s, const std::vector<LstmLayerWeights>& layers) {
  const int H = s.hidden, L = s.layers, U = H / kBlocks;
  const int threads = block_threads(H, L), per_lane = 4 * (H / 8);
  ClusterLstmWeights packed;
  packed.weights.assign(static_cast<std::size_t>(kBlocks) * per_lane * threads, 0.0f);
  packed.biases.assign(static_cast<std::size_t>(L) * 4 * H, 0.0f);
  for (int layer = 0; layer < L; ++layer) {
    const LstmLayerWeights& w = layers[static_cast<std::size_t>(layer)];
    const int inputs = layer == 0 ? s.features : H;
    for (int row = 0; row < 4 * H; ++row)
      packed.biases[static_cast<std::size_t>(layer) * 4 * H + row] = w.input_bias[row] + w.recurrent_bias[row];
    // Column k of the row over the layer's input vector as the kernel lays it out.
    const auto column = [&](int row, int k) -> float {
      if (layer > 0) return k < H ? w.input[row * H + k] : w.recurrent[row * H + (k - H)];
      if (k < kPaddedInputs) return k < inputs ? w.input[row * inputs + k] : 0.0f;
      return k - kPaddedInputs < H ? w.recurrent[row * H + (k - kPaddedInputs)] : 0.0f;
    };
    const int width = layer == 0 ? kPaddedInputs + H : 2 * H;
    for (int rank = 0; rank < kBlocks; ++rank)
      for (int tid = layer * (U / 2) * 32; tid < (layer + 1) * (U / 2) * 32; ++tid) {
        const int warp = tid / 32, lane = tid % 32;
        const int slice = lane % kSlices, gate = (lane / kSlices) % 4;
        const int unit = rank * U + (warp % (U / 2)) * 2 + lane / 16;
        const int row = gate * H + unit;
        for (int m = 0; m < H / 8; ++m)
          for (int e = 0; e < 4; ++e) {
            const int k = 16 * m + 4 * slice + e;
            packed.weights[(static_cast<std::size_t>(rank) * per_lane + 4 * m + e) * threads + tid] =
                k < width ? column(row, k) : 0.0f;
          }
      }
  }
  return packed;
}

cudaError_t cluster_lstm_fits(const ClusterLstmShape& s, int batch) {
  return dispatch(s, Launch{nullptr, nullptr, nullptr, nullptr, batch, nullptr, nullptr}, true);
}

cudaError_t cluster_lstm_forward(const ClusterLstmShape& s, const float* weights, const float* biases,
                                 const float* head, const float* windows, int batch, float* out, cudaStream_t stream) {
  return dispatch(s, Launch{weights, biases, head, windows, batch, out, stream}, false);
}

}  // namespace gt::ml::cuda
