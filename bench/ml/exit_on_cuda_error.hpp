// For the standalone kernel checks (cluster_lstm_check.cu, lstm_training_check.cu): a failed CUDA
// call ends the program with status 2, naming what failed, so that it never reads as a failed check.
#pragma once

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

#include "../../src/cuda_status.hpp"

inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    std::fprintf(stderr, "%s\n", gt::cuda_failure(status, what).c_str());
    std::exit(2);
  }
}
