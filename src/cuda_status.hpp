// How every CUDA caller of the library turns a failed status into an error naming the call.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "gt/error.hpp"

namespace gt {

inline std::string cuda_failure(cudaError_t status, const char* what) {
  return std::string("CUDA: ") + what + " failed: " + cudaGetErrorString(status);
}

inline void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw Error(cuda_failure(status, what));
}

}  // namespace gt
