// Launching a kernel in clusters of thread blocks, or asking whether one cluster of it fits on the
// current GPU (cluster_lstm.cu, batched_lstm.cu).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

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

template <typename... Params, typename... Args>
cudaError_t launch_clusters(void (*kernel)(Params...), unsigned blocks, unsigned threads, std::size_t shared,
                            unsigned cluster, cudaStream_t stream, bool check, Args... args) {
  return launch_clusters_or_count(kernel, blocks, threads, shared, cluster, stream, check, nullptr, args...);
}

}  // namespace gt::ml::cuda
