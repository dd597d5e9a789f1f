// Launching a kernel in clusters of thread blocks, or asking whether one cluster of it fits on the
// current GPU (cluster_lstm.cu, batched_lstm.cu).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <map>
#include <mutex>

namespace gt::ml::cuda {

// `blocks` blocks of `threads` with `shared` bytes of dynamic shared memory each, in clusters of
// `cluster` on `stream`; with `check`, cudaSuccess when one cluster fits on this GPU (and
// cudaErrorNotSupported when none does) instead of launching; with `active` too, how many clusters
// of it the GPU runs at once goes there. The attributes are set on every call: cheap, and not
// stream work, so a graph capture allows them.
template <typename... Params, typename... Args>
cudaError_t launch_clusters_or_count(void (*kernel)(Params...), unsigned blocks, unsigned threads, std::size_t shared,
                                     unsigned cluster, cudaStream_t stream, bool check, int* active, Args... args) {
  cudaError_t status =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared));
  if (status == cudaSuccess && cluster > 8)  // beyond the portable cluster size
    status = cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1);
  if (status != cudaSuccess) return status;
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(blocks);
  config.blockDim = dim3(threads);
  config.dynamicSmemBytes = shared;
  config.stream = stream;
  cudaLaunchAttribute dimension;
  dimension.id = cudaLaunchAttributeClusterDimension;
  dimension.val.clusterDim.x = cluster;
  dimension.val.clusterDim.y = 1;
  dimension.val.clusterDim.z = 1;
  config.attrs = &dimension;
  config.numAttrs = 1;
  if (!check) return cudaLaunchKernelEx(&config, kernel, args...);
  int clusters = 0;
  status = cudaOccupancyMaxActiveClusters(&clusters, kernel, &config);
  if (active != nullptr) *active = clusters;
  return status != cudaSuccess ? status : clusters > 0 ? cudaSuccess : cudaErrorNotSupported;
}

// `active` as `ask(active)` (a cudaError_t) gives it for the current device, asked once a device and
// kept when it succeeds. The cache is per type of `ask`: a lambda's type is its own in each
// instantiation of the function template it is written in, so each kernel (or set of kernels)
// asked that way has its own. For launches that size themselves by it, so that a graph capture,
// which comes after a few eager launches, never asks.
template <typename Ask>
cudaError_t once_per_device(int& active, Ask ask) {
  static std::mutex mutex;
  static std::map<int, int> known;  // by device
  int device = 0;
  if (const cudaError_t status = cudaGetDevice(&device); status != cudaSuccess) return status;
  const std::lock_guard lock(mutex);
  if (const auto found = known.find(device); found != known.end()) {
    active = found->second;
    return cudaSuccess;
  }
  if (const cudaError_t status = ask(active); status != cudaSuccess) return status;
  known[device] = active;
  return cudaSuccess;
}

template <typename... Params, typename... Args>
cudaError_t launch_clusters(void (*kernel)(Params...), unsigned blocks, unsigned threads, std::size_t shared,
                            unsigned cluster, cudaStream_t stream, bool check, Args... args) {
  return launch_clusters_or_count(kernel, blocks, threads, shared, cluster, stream, check, nullptr, args...);
}

}  // namespace gt::ml::cuda
