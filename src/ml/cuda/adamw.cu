// The fp32 optimizer step (adamw.hpp). Every tensor is cut into chunks of kChunk elements, one
// block each: the first kernel writes each chunk's sum of squared gradients and counts the step,
// the second has every block add those sums up in the same fixed order (so that all blocks and all
// runs see the same norm) and update its chunk.
#include <cmath>

#include "adamw.hpp"

namespace gt::ml::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kChunk = 4 * kThreads;

__host__ __device__ int chunks_of(std::int64_t size) {
  return static_cast<int>((size + kChunk - 1) / kChunk);
}

struct Chunk {
  int tensor = 0;
  std::int64_t begin = 0, end = 0;
};

// Which tensor and elements block `block` serves: chunks are numbered tensor by tensor.
__device__ Chunk chunk_of(const AdamwTensors& t, int block) {
  Chunk c;
  for (int k = 0; k < t.count; ++k) {
    const int chunks = chunks_of(t.size[k]);
    if (block < chunks) {
      c.tensor = k;
      c.begin = static_cast<std::int64_t>(block) * kChunk;
      c.end = c.begin + kChunk < t.size[k] ? c.begin + kChunk : t.size[k];
      return c;
    }
    block -= chunks;
  }
  return c;  // not reached: the grid has as many blocks as chunks
}

// The block's sum of `value`, in a fixed order; the result in thread 0.
__device__ float block_sum(float value) {
  __shared__ float warps[kThreads / 32];
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_down_sync(0xffffffffu, value, offset);
  if (threadIdx.x % 32 == 0) warps[threadIdx.x / 32] = value;
  __syncthreads();
  value = threadIdx.x < kThreads / 32 ? warps[threadIdx.x] : 0.0f;
  if (threadIdx.x < 32) {
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) value += __shfl_down_sync(0xffffffffu, value, offset);
  }
  return value;
}

__device__ bool skipped(const float* found_inf) {
  return found_inf != nullptr && *found_inf != 0.0f;
}

__global__ void __launch_bounds__(kThreads)
    squared_gradient_sums(AdamwTensors t, bool clip, const float* found_inf, float* step, float* sums) {
  float sum = 0.0f;
  if (clip) {
    const Chunk c = chunk_of(t, static_cast<int>(blockIdx.x));
    const float* g = t.grad[c.tensor];
    for (std::int64_t i = c.begin + threadIdx.x; i < c.end; i += kThreads) sum = fmaf(g[i], g[i], sum);
    sum = block_sum(sum);
    if (threadIdx.x == 0) sums[blockIdx.x] = sum;
  }
  if (blockIdx.x == 0 && threadIdx.x == 0 && !skipped(found_inf)) *step += 1.0f;
}

__global__ void __launch_bounds__(kThreads)
    adamw_update(AdamwTensors t, AdamwSettings s, int blocks, const float* learning_rate, const float* step,
                 const float* found_inf, const float* sums) {
  if (skipped(found_inf)) return;
  __shared__ float shared_factor;
  float factor = 1.0f;
  if (s.max_grad_norm > 0) {
    float sum = 0.0f;
    for (int i = static_cast<int>(threadIdx.x); i < blocks; i += kThreads) sum += sums[i];
    sum = block_sum(sum);
    // As LibTorch's clipping computes it: max_norm / (norm + 1e-6) in fp32, at most 1.
    if (threadIdx.x == 0) shared_factor = fminf(static_cast<float>(s.max_grad_norm) / (sqrtf(sum) + 1e-6f), 1.0f);
    __syncthreads();
    factor = shared_factor;
  }
  const double lr = *learning_rate, steps = *step;
  const float bias_correction1 = static_cast<float>(1.0 - pow(s.beta1, steps));
  const float step_size = static_cast<float>(lr / bias_correction1);
  const float bias_correction2_sqrt = sqrtf(static_cast<float>(1.0 - pow(s.beta2, steps)));
  const Chunk c = chunk_of(t, static_cast<int>(blockIdx.x));
  float *const param = t.param[c.tensor], *const exp_avg = t.exp_avg[c.tensor],
               *const exp_avg_sq = t.exp_avg_sq[c.tensor];
  const float* const grad = t.grad[c.tensor];
  for (std::int64_t i = c.begin + threadIdx.x; i < c.end; i += kThreads) {
    const float g = grad[i] * factor;
    float p = param[i];
    // PyTorch's fused AdamW, operation by operation (its scalars are doubles).
    if (s.weight_decay != 0) p = static_cast<float>(p - lr * s.weight_decay * p);
    const float m = static_cast<float>(s.beta1 * exp_avg[i] + (1 - s.beta1) * g);
    const float v = static_cast<float>(s.beta2 * exp_avg_sq[i] + (1 - s.beta2) * g * g);
    const float denom = static_cast<float>(sqrtf(v) / bias_correction2_sqrt + s.eps);
    param[i] = p - step_size * m / denom;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
  }
}

}  // namespace

std::int64_t adamw_workspace(const AdamwTensors& tensors) {
  std::int64_t blocks = 0;
  for (int k = 0; k < tensors.count; ++k) blocks += chunks_of(tensors.size[k]);
  return blocks;
}

cudaError_t adamw_step(const AdamwTensors& tensors, const AdamwSettings& settings, const float* learning_rate,
                       float* step, const float* found_inf, float* workspace, cudaStream_t stream) {
  if (tensors.count < 1 || tensors.count > AdamwTensors::kMaxTensors) return cudaErrorInvalidValue;
  const auto blocks = static_cast<int>(adamw_workspace(tensors));
  if (blocks < 1) return cudaErrorInvalidValue;
  const bool clip = settings.max_grad_norm > 0;
  squared_gradient_sums<<<clip ? blocks : 1, kThreads, 0, stream>>>(tensors, clip, found_inf, step, workspace);
  adamw_update<<<blocks, kThreads, 0, stream>>>(tensors, settings, blocks, learning_rate, step, found_inf, workspace);
  return cudaGetLastError();
}

}  // namespace gt::ml::cuda
