// What the LibTorch code that launches our own CUDA kernels (cuda/*.hpp) shares: the glue between
// LibTorch's CUDA state and the kernels'. Only in builds with nvcc and a CUDA LibTorch
// (GT_OWN_CUDA_KERNELS).
#pragma once

#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <fmt/format.h>

#include "../cuda_status.hpp"
#include "gt/error.hpp"

namespace gt::ml {

// The kernels' CUDA runtime is their own (linked statically), so its current device is set here
// rather than inherited from LibTorch's.
inline void use_cuda_device(int index) {
  int current = -1;
  check_cuda(cudaGetDevice(&current), "cudaGetDevice");
  if (current != index) check_cuda(cudaSetDevice(index), "cudaSetDevice");
}

// LibTorch's current stream on that device, where the kernels queue (and join a graph being captured).
inline cudaStream_t current_cuda_stream(int device_index) {
  return c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device_index)).stream();
}

}  // namespace gt::ml
