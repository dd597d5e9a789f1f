// Large-batch LSTM prediction on tensor cores (batched_lstm.hpp).
//
// A cluster of four blocks runs 64 windows (four tiles of 16; in the batch's last wave one to
// four, see batch_split). Block r owns hidden units
// [32 r, 32 r + 32) of each layer; its warp (layer l, group u) the eight units 32 r + 8 u.. of
// layer l, as four tiles of eight columns, one per gate (i, f, g, o), so that the thread holding a
// gate's sum for a (window, unit) holds the other three gates' sums for it too: mma.sync's
// accumulator layout puts element (row, column) of every tile in the same thread. Rows are windows;
// the k-dimension is the layer's input [x_t (16 columns); h0] or [h0; h1]. Both are read by
// ldmatrix from one row per window of shared memory laid out [x_t | h0 | h1 | padding]: 560 bytes,
// so that eight rows fall on different banks. A warp's weight fragments stay in its registers for
// the whole kernel (128 registers for a layer over [h0; h1]), and a warp finishes its windows one
// tile at a time: the gates of a tile are applied and its new hidden values sent while the tensor
// cores already work on the next tile.
//
// Ticks, buffers and mbarriers as in tick_barriers.cuh: at tick k layer l computes step k - l from
// the buffer tick k - 1 filled and sends its new hidden values to the four blocks' other buffer
// with st.async, 16 bytes (eight units of one window) at a time; the block's first thread arrives
// on the tick's mbarrier with the bytes it expects. Layer 0's warps also stage step k + 1's inputs
// into the four blocks' other buffer, each block a quarter of the windows: loaded from device
// memory when tick k starts and sent by st.async after its hidden values, so that the loads' latency
// hides behind the tick's products and each SM loads a quarter of the rows (every warp loading
// every tile's inputs after its sends had made the kernel 5% slower at 65,536 windows).
#include <cooperative_groups.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>
#include <cuda/ptx>

#include "batched_lstm.hpp"
#include "cluster_launch.cuh"
#include "tick_barriers.cuh"

namespace gt::ml::cuda {
namespace {

namespace cg = cooperative_groups;
namespace ptx = ::cuda::ptx;

constexpr int kHidden = 128;
constexpr int kBlocks = 4;                          // a cluster
constexpr int kInputs = 16;                         // layer 0's input columns, features padded with zeros
constexpr int kRow = kInputs + 2 * kHidden + 8;     // 16-bit values a window's row: x_t, h0, h1, padding
constexpr int kSteps0 = (kInputs + kHidden) / 16;   // k-steps of 16 for layer 0
constexpr int kSteps1 = 2 * kHidden / 16;           // and for layer 1
constexpr int kUnitsPerBlock = kHidden / kBlocks;   // 32
constexpr int kWarpsPerLayer = kUnitsPerBlock / 8;  // 8 units a warp
constexpr int kTiles = 4;                           // a cluster's windows: four tiles of 16 rows
constexpr int kWindows = 16 * kTiles;

__host__ __device__ constexpr int weight_steps(int layers) {
  return kWarpsPerLayer * (kSteps0 + (layers - 1) * kSteps1);
}
// A warp's first k-step among the block's fragments.
__host__ __device__ constexpr int first_step(int layer, int group) {
  return layer == 0 ? group * kSteps0 : kWarpsPerLayer * kSteps0 + group * kSteps1;
}
__host__ __device__ constexpr int block_threads(int layers) {
  return 32 * kWarpsPerLayer * layers;
}
__host__ __device__ constexpr int weight_bytes(int layers) {
  return weight_steps(layers) * 4 * 32 * 8;
}
constexpr int kBufferBytes = kWindows * kRow * 2;  // rows of the cluster's windows; a block holds two
// Where layer l's k-steps start in a row: layer 0 reads [x_t; h0], layer 1 [h0; h1].
__host__ __device__ constexpr int first_column(int layer) {
  return layer == 0 ? 0 : kInputs;
}

// The hardware's tanh (relative error about 2^-11, below fp16's rounding of the hidden states and
// far below bf16's) instead of expf and a division: the gates cost as much as the products otherwise.
// Every gate is one tanh: sigmoid(x) = (1 + tanh(x / 2)) / 2, and the packed weights and biases of
// the i, f and o rows are halved (exact in binary) so that their products already are x / 2.
__device__ __forceinline__ float fast_tanh(float x) {
  float y;
  asm("tanh.approx.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
// Hidden values are kept doubled, 2h = (1 + tanh(x_o / 2)) tanh(c), one fma from the two tanh; the
// packed weights of every column that reads them, and the head's sum, are halved to match.
constexpr float kHalf = 0.5f;

// d = a b + c. Not volatile: a function of its registers alone, which the compiler may then
// schedule among a tile's loads and the previous tile's gate arithmetic. The first k-step of a tile
// takes the biases as c: no additions after the products.
template <bool kBf16>
__device__ __forceinline__ void mma(float (&d)[4], const std::uint32_t (&a)[4], uint2 b, const float (&c)[4]) {
  if constexpr (kBf16)
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%10,%11,%12,%13};"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b.x), "r"(b.y), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
  else
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%10,%11,%12,%13};"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b.x), "r"(b.y), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}

__device__ __forceinline__ void load_tile(std::uint32_t (&a)[4], std::uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(a[0]), "=r"(a[1]), "=r"(a[2]), "=r"(a[3])
               : "r"(address)
               : "memory");
}

template <bool kBf16>
__device__ __forceinline__ std::uint32_t pack(float low, float high) {
  if constexpr (kBf16) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(low, high);
    return *reinterpret_cast<const std::uint32_t*>(&v);
  } else {
    const __half2 v = __floats2half2_rn(low, high);
    return *reinterpret_cast<const std::uint32_t*>(&v);
  }
}

template <bool kBf16>
__device__ __forceinline__ float widen(std::uint16_t bits) {
  if constexpr (kBf16)
    return __bfloat162float(__ushort_as_bfloat16(bits));
  else
    return __half2float(__ushort_as_half(bits));
}

// A window's inputs are staged in chunks of eight features (16 bytes): one, or two past 8 features.
__host__ __device__ constexpr int input_chunks(int features) {
  return features > 8 ? 2 : 1;
}
// One lane's part of a window's inputs at step t: chunk lane / 16, zero past the features or the
// batch.
struct StagedInputs {
  float v[8];
};
__device__ __forceinline__ bool stages_inputs(int features, int lane) {
  return lane < 16 || input_chunks(features) == 2;
}
__device__ __forceinline__ StagedInputs load_inputs(const float* __restrict__ windows, long long window_stride,
                                                    int batch, int features, int window, int t, int lane) {
  StagedInputs in;
  const int column0 = 8 * (lane >> 4);
  const float* row = windows + static_cast<long long>(window) * window_stride + static_cast<long long>(t) * features;
#pragma unroll
  for (int c = 0; c < 8; ++c) in.v[c] = window < batch && column0 + c < features ? __ldg(row + column0 + c) : 0.0f;
  return in;
}
template <bool kBf16>
__device__ __forceinline__ void pack_inputs(std::uint32_t (&words)[4], const StagedInputs& in) {
#pragma unroll
  for (int j = 0; j < 4; ++j) words[j] = pack<kBf16>(in.v[2 * j], in.v[2 * j + 1]);
}
// The bytes of one step's staged inputs in a block of a cluster of `tiles` tiles.
__host__ __device__ constexpr int input_bytes(int features, int tiles) {
  return 16 * tiles * 16 * input_chunks(features);
}

// A compute warp's part of every tick: step k - kLayer of its layer at tick k, for each of the
// cluster's `tiles` tiles (windows first.. end - 1; the batch's last tile may hold fewer), with its
// weight fragments (k-steps x 4 gates) in registers. `arrives`: the one thread of the block that
// arrives on each tick's mbarrier with the bytes it expects.
template <int L, int kLayer, bool kBf16>
__device__ __forceinline__ void compute_layer(const cg::cluster_group& cluster, std::uint64_t (&arrived)[2],
                                              std::uint16_t* hs, const uint2* __restrict__ fragments,
                                              const float* __restrict__ biases, const float* __restrict__ windows,
                                              long long window_stride, int end, int features, int first, int tiles,
                                              int rank, int group, int lane, int steps, bool arrives) {
  constexpr int kSteps = kLayer == 0 ? kSteps0 : kSteps1;
  uint2 w[kSteps][4];
  const uint2* const mine = fragments + first_step(kLayer, group) * 4 * 32 + lane;
#pragma unroll
  for (int ks = 0; ks < kSteps; ++ks)
#pragma unroll
    for (int gate = 0; gate < 4; ++gate) w[ks][gate] = __ldg(mine + (ks * 4 + gate) * 32);
  const int g = lane / 4, q = lane % 4;
  const int unit0 = rank * kUnitsPerBlock + group * 8;
  float bias[4][4];  // in the accumulator's layout: units 2q, 2q + 1 of rows g and g + 8
#pragma unroll
  for (int gate = 0; gate < 4; ++gate)
#pragma unroll
    for (int j = 0; j < 4; ++j) bias[gate][j] = biases[kLayer * 4 * kHidden + gate * kHidden + unit0 + 2 * q + (j & 1)];
  float c[kTiles][4] = {};  // the cells of (tile's window rows g and g + 8) x (units 2q, 2q + 1)
  // Layer 0's warps stage the inputs of the next step into the rows that tick writes, loaded when
  // the tick starts and sent after its hidden values: block r's warp u loads windows
  // 16 r + 4 u.. 16 r + 4 u + 3, and lane l sends its part of window l % 4 to block (l / 4) % 4.
  const int staged_window = 16 * rank + 4 * group + (lane & 3);
  const int staged_to = (lane >> 2) & 3;
  const bool stages = kLayer == 0 && stages_inputs(features, lane) && rank < tiles;
  const auto base = static_cast<std::uint32_t>(__cvta_generic_to_shared(hs));
  const int ticks = steps + L - 1;
  for (int tick = 0; tick < ticks; ++tick) {
    if (tick > 0) wait_for_tick(arrived, tick - 1);
    if (arrives)
      expect_tick(arrived, tick, L, steps, 16 * tiles * kHidden * 2,
                  tick + 1 < steps ? input_bytes(features, tiles) : 0);
    const int t = tick - kLayer;
    if (t < 0 || t >= steps) continue;
    StagedInputs next{};
    if (stages && t + 1 < steps)
      next = load_inputs(windows, window_stride, end, features, first + staged_window, t + 1, lane);
    const std::uint32_t read = base + static_cast<std::uint32_t>(((tick + 1) & 1) * kBufferBytes);
    std::uint16_t* const rows = hs + (tick & 1) * kWindows * kRow;
    std::uint16_t* const written = rows + kInputs + kLayer * kHidden + unit0;
#pragma unroll
    for (int tile = 0; tile < kTiles; ++tile) {
      if (tile == tiles) break;
      float acc[4][4];  // gate, element
#pragma unroll
      for (int ks = 0; ks < kSteps; ++ks) {
        std::uint32_t a[4];
        load_tile(
            a, read + static_cast<std::uint32_t>(
                          ((16 * tile + (lane & 15)) * kRow + first_column(kLayer) + 16 * ks + (lane >> 4) * 8) * 2));
#pragma unroll
        for (int gate = 0; gate < 4; ++gate) mma<kBf16>(acc[gate], a, w[ks][gate], ks == 0 ? bias[gate] : acc[gate]);
      }
      float h[4];  // doubled
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float in = fmaf(kHalf, fast_tanh(acc[0][j]), kHalf);
        const float forget = fmaf(kHalf, fast_tanh(acc[1][j]), kHalf);
        const float cand = fast_tanh(acc[2][j]);
        const float output = fast_tanh(acc[3][j]);
        c[tile][j] = fmaf(forget, c[tile][j], in * cand);
        const float cell = fast_tanh(c[tile][j]);
        h[j] = fmaf(output, cell, cell);
      }
      // Lanes 4g..4g+3 hold units 2q, 2q + 1 of rows g and g + 8; each gathers one row's eight
      // units (16 bytes) and sends it to two of the four blocks.
      const std::uint32_t top = pack<kBf16>(h[0], h[1]), bottom = pack<kBf16>(h[2], h[3]);
      std::uint32_t words[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const std::uint32_t from_top = __shfl_sync(0xffffffffu, top, 4 * g + j);
        const std::uint32_t from_bottom = __shfl_sync(0xffffffffu, bottom, 4 * g + j);
        words[j] = (q & 1) ? from_bottom : from_top;
      }
      const int window = 16 * tile + g + ((q & 1) ? 8 : 0);
      auto* const target = reinterpret_cast<std::uint32_t*>(written + window * kRow);
#pragma unroll
      for (int r = (q >> 1) * 2; r < (q >> 1) * 2 + 2; ++r)
        ptx::st_async(cluster.map_shared_rank(target, r), words, cluster.map_shared_rank(&arrived[tick & 1], r));
    }
    if (stages && t + 1 < steps) {
      std::uint32_t words[4];
      pack_inputs<kBf16>(words, next);
      auto* const target = reinterpret_cast<std::uint32_t*>(rows + staged_window * kRow + 8 * (lane >> 4));
      ptx::st_async(cluster.map_shared_rank(target, staged_to), words,
                    cluster.map_shared_rank(&arrived[tick & 1], staged_to));
    }
  }
}

template <int L, bool kBf16>
__global__ void __launch_bounds__(block_threads(L), 1)
    batched_lstm_kernel(const uint2* __restrict__ weights, const float* __restrict__ biases,
                        const float* __restrict__ head, const float* __restrict__ windows, long long window_stride,
                        int batch, int steps, int features, int full_clusters, int tail_tiles,
                        float* __restrict__ out) {
  constexpr int kThreads = block_threads(L);
  cg::cluster_group cluster = cg::this_cluster();
  const int rank = static_cast<int>(cluster.block_rank());
  // Clusters of kTiles tiles, then (batch_split) clusters of tail_tiles.
  const int index = static_cast<int>(blockIdx.x / kBlocks);
  const bool full = index < full_clusters;
  const int first = full ? index * kWindows : full_clusters * kWindows + (index - full_clusters) * 16 * tail_tiles;
  const int tiles = min(full ? kTiles : tail_tiles, (batch - first + 15) / 16);
  const int end = min(batch, first + 16 * tiles);
  const int tid = static_cast<int>(threadIdx.x), warp = tid / 32, lane = tid % 32;

  extern __shared__ uint4 shared[];
  std::uint16_t* const hs = reinterpret_cast<std::uint16_t*>(shared);
  // arrived[p]: the hidden values written at ticks of parity p, counted in bytes by st.async.
  __shared__ alignas(8) std::uint64_t arrived[2];

  // Every step's inputs of the windows this block stages (a quarter of the cluster's), pulled into
  // L2 when the kernel starts, so that the steps' loads of a few bytes a window hit L2 rather than
  // DRAM: +1% at 65,536 windows (docs/PERFORMANCE.md). A series of overlapping windows is small
  // enough to stay in L2 anyway.
  {
    const long long bytes = static_cast<long long>(steps) * features * static_cast<long long>(sizeof(float));
    const int lines = static_cast<int>((bytes + 127) / 128) + 1;  // a window need not start on a line
    for (int i = tid; i < 16 * lines; i += kThreads) {
      const int window = first + 16 * rank + i / lines;
      if (window >= end) continue;
      const char* const start = reinterpret_cast<const char*>(windows + window * window_stride);
      const long long offset = static_cast<long long>(i % lines) * 128;
      asm volatile("prefetch.global.L2 [%0];" ::"l"(start + (offset < bytes ? offset : bytes - 1)));
    }
  }
  for (int i = tid; i < 2 * kBufferBytes / 16; i += kThreads) shared[i] = make_uint4(0, 0, 0, 0);
  if (tid == 0) init_tick_barriers(arrived);
  const int layer = warp / kWarpsPerLayer, group = warp % kWarpsPerLayer;
  __syncthreads();
  // The first step's inputs, into the rows that tick 0 reads.
  if (layer == 0 && stages_inputs(features, lane) && group < tiles) {
    const int window = 16 * group + (lane & 15);
    std::uint32_t words[4];
    pack_inputs<kBf16>(words, load_inputs(windows, window_stride, end, features, first + window, 0, lane));
    *reinterpret_cast<uint4*>(hs + kWindows * kRow + window * kRow + 8 * (lane >> 4)) =
        make_uint4(words[0], words[1], words[2], words[3]);
  }
  cluster.sync();  // every block started, zeroed and its barriers set before anyone writes into it

  const uint2* const fragments = weights + static_cast<std::size_t>(rank) * (weight_bytes(L) / 8);
  if (layer == 0)
    compute_layer<L, 0, kBf16>(cluster, arrived, hs, fragments, biases, windows, window_stride, end, features, first,
                               tiles, rank, group, lane, steps, tid == 0);
  else if constexpr (L > 1)
    compute_layer<L, 1, kBf16>(cluster, arrived, hs, fragments, biases, windows, window_stride, end, features, first,
                               tiles, rank, group, lane, steps, false);
  const int ticks = steps + L - 1;
  wait_for_tick(arrived, ticks - 1);  // also: nothing is sent to a block after this, so it may exit

  // The head on the last layer's last step: block r for the r-th quarter of the windows.
  constexpr int kHeadWindows = kWindows / kBlocks;
  const std::uint16_t* last = hs + ((ticks - 1) & 1) * kWindows * kRow + kInputs + (L - 1) * kHidden;
  for (int w = warp; w < kHeadWindows; w += kThreads / 32) {
    const int window = kHeadWindows * rank + w;
    float s = 0.0f;
#pragma unroll
    for (int k = lane; k < kHidden; k += 32) s = fmaf(widen<kBf16>(last[window * kRow + k]), head[k], s);
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) s += __shfl_xor_sync(0xffffffffu, s, offset);
    if (lane == 0 && first + window < end) out[first + window] = fmaf(kHalf, s, head[kHidden]);
  }
}

// How a batch is split into clusters: full_clusters of kTiles tiles, then clusters of tail_tiles.
struct BatchSplit {
  int clusters, full_clusters, tail_tiles;
};
// Every cluster takes about as long (the tick is bound by each SM's own work, and all run the same
// steps), so they run in waves of `active` (the clusters the GPU holds at once). The tiles beyond
// the last full wave are spread over one more wave in clusters of as few tiles as fit it, since a
// cluster of fewer tiles finishes its ticks sooner: 65,536 windows, 4,096 tiles on an H200 with 30
// active, are 34 waves of 30 clusters of 4 tiles and one of 16 clusters of 1 (not 35 of 4, the
// last with 4 clusters). Without the count (active < 1), clusters of kTiles alone.
BatchSplit batch_split(int batch, int active) {
  const int tiles = (batch + 15) / 16;
  if (active < 1) {
    const int clusters = (tiles + kTiles - 1) / kTiles;
    return {clusters, clusters, kTiles};
  }
  const int full_clusters = tiles / (kTiles * active) * active;
  const int rest = tiles - full_clusters * kTiles;
  const int tail_tiles = rest == 0 ? kTiles : (rest + active - 1) / active;
  return {full_clusters + (rest + tail_tiles - 1) / tail_tiles, full_clusters, tail_tiles};
}

// `check` asks whether a cluster fits on this GPU instead of launching; with `active` too, how many
// clusters the GPU holds at once goes there.
template <int L, bool kBf16>
cudaError_t run(const ClusterLstmShape& s, const uint2* weights, const float* biases, const float* head,
                const float* windows, long long window_stride, int batch, float* out, cudaStream_t stream, bool check,
                int* active = nullptr);

// How many clusters of the kernel the current GPU holds at once, asked once a device.
template <int L, bool kBf16>
cudaError_t active_clusters(int& active) {
  return once_per_device(active, [](int& count) {
    return run<L, kBf16>({}, nullptr, nullptr, nullptr, nullptr, 0, kWindows, nullptr, nullptr, true, &count);
  });
}

template <int L, bool kBf16>
cudaError_t run(const ClusterLstmShape& s, const uint2* weights, const float* biases, const float* head,
                const float* windows, long long window_stride, int batch, float* out, cudaStream_t stream, bool check,
                int* active) {
  int resident = 0;  // unknown: batch_split then makes clusters of kTiles alone
  if (!check && active_clusters<L, kBf16>(resident) != cudaSuccess) resident = 0;
  const BatchSplit split = batch_split(batch, resident);
  return launch_clusters_or_count(batched_lstm_kernel<L, kBf16>, static_cast<unsigned>(kBlocks * split.clusters),
                                  static_cast<unsigned>(block_threads(L)), static_cast<std::size_t>(2 * kBufferBytes),
                                  kBlocks, stream, check, active, weights, biases, head, windows, window_stride, batch,
                                  s.steps, s.features, split.full_clusters, split.tail_tiles, out);
}

cudaError_t dispatch(const ClusterLstmShape& s, HalfFormat format, const void* weights, const float* biases,
                     const float* head, const float* windows, long long window_stride, int batch, float* out,
                     cudaStream_t stream, bool check) {
  if (!batched_lstm_serves(s) || batch < 1) return cudaErrorNotSupported;
  const auto* w = static_cast<const uint2*>(weights);
  const bool bf16 = format == HalfFormat::kBf16;
  if (s.layers == 1)
    return bf16 ? run<1, true>(s, w, biases, head, windows, window_stride, batch, out, stream, check)
                : run<1, false>(s, w, biases, head, windows, window_stride, batch, out, stream, check);
  return bf16 ? run<2, true>(s, w, biases, head, windows, window_stride, batch, out, stream, check)
              : run<2, false>(s, w, biases, head, windows, window_stride, batch, out, stream, check);
}

std::uint16_t bits_of(float x, HalfFormat format) {
  std::uint16_t bits = 0;
  if (format == HalfFormat::kBf16) {
    const __nv_bfloat16 v = __float2bfloat16_rn(x);
    std::memcpy(&bits, &v, sizeof bits);
  } else {
    const __half v = __float2half_rn(x);
    std::memcpy(&bits, &v, sizeof bits);
  }
  return bits;
}

}  // namespace

bool batched_lstm_serves(const ClusterLstmShape& s) {
  return s.hidden == kHidden && (s.layers == 1 || s.layers == 2) && s.features >= 1 && s.features <= kInputs &&
         s.steps >= 1;
}

BatchedLstmWeights batched_lstm_pack(const ClusterLstmShape& s, const std::vector<LstmLayerWeights>& layers,
                                     HalfFormat format) {
  BatchedLstmWeights packed;
  if (!batched_lstm_serves(s)) return packed;
  const int L = s.layers, per_block = weight_bytes(L) / 2;  // 16-bit values a block
  packed.weights.assign(static_cast<std::size_t>(kBlocks) * per_block, 0);
  packed.biases.assign(static_cast<std::size_t>(L) * 4 * kHidden, 0.0f);
  // The kernel's halves (fast_tanh): of the i, f and o rows (gates 0, 1, 3), and of the columns
  // that read the doubled hidden values.
  const auto row_scale = [](int row) { return row / kHidden == 2 ? 1.0f : 0.5f; };
  for (int layer = 0; layer < L; ++layer) {
    const LstmLayerWeights& w = layers[static_cast<std::size_t>(layer)];
    for (int row = 0; row < 4 * kHidden; ++row)
      packed.biases[static_cast<std::size_t>(layer) * 4 * kHidden + row] =
          row_scale(row) * (w.input_bias[row] + w.recurrent_bias[row]);
    // Column k of the row over the layer's input row as the kernel lays it out.
    const auto unscaled = [&](int row, int k) -> float {
      if (layer > 0) return k < kHidden ? w.input[row * kHidden + k] : w.recurrent[row * kHidden + (k - kHidden)];
      if (k < kInputs) return k < s.features ? w.input[row * s.features + k] : 0.0f;
      return w.recurrent[row * kHidden + (k - kInputs)];
    };
    const auto column = [&](int row, int k) {
      const bool reads_hidden = layer > 0 || k >= kInputs;
      return row_scale(row) * (reads_hidden ? 0.5f : 1.0f) * unscaled(row, k);
    };
    const int k_steps = layer == 0 ? kSteps0 : kSteps1;
    for (int rank = 0; rank < kBlocks; ++rank)
      for (int group = 0; group < kWarpsPerLayer; ++group)
        for (int ks = 0; ks < k_steps; ++ks)
          for (int gate = 0; gate < 4; ++gate)
            for (int lane = 0; lane < 32; ++lane) {
              // mma.sync's B fragment: column lane / 4 (a unit), rows (k) 2q, 2q + 1, 2q + 8, 2q + 9.
              const int row = gate * kHidden + rank * kUnitsPerBlock + group * 8 + lane / 4;
              const int k0 = 16 * ks + 2 * (lane % 4);
              const std::size_t at =
                  static_cast<std::size_t>(rank) * per_block +
                  ((static_cast<std::size_t>(first_step(layer, group) + ks) * 4 + gate) * 32 + lane) * 4;
              packed.weights[at + 0] = bits_of(column(row, k0), format);
              packed.weights[at + 1] = bits_of(column(row, k0 + 1), format);
              packed.weights[at + 2] = bits_of(column(row, k0 + 8), format);
              packed.weights[at + 3] = bits_of(column(row, k0 + 9), format);
            }
  }
  return packed;
}

cudaError_t batched_lstm_fits(const ClusterLstmShape& s, HalfFormat format) {
  return dispatch(s, format, nullptr, nullptr, nullptr, nullptr, 0, kWindows, nullptr, nullptr, true);
}

cudaError_t batched_lstm_forward(const ClusterLstmShape& s, HalfFormat format, const void* weights, const float* biases,
                                 const float* head, const float* windows, long long window_stride, int batch,
                                 float* out, cudaStream_t stream) {
  return dispatch(s, format, weights, biases, head, windows, window_stride, batch, out, stream, false);
}

}  // namespace gt::ml::cuda
