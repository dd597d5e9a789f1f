// Functions the CUDA engine (src/optimize/cuda) shares with the CPU engines are marked
// GT_HOST_DEVICE: compiled for both when nvcc reads them, plain C++ otherwise.
#pragma once

#ifdef __CUDACC__
#define GT_HOST_DEVICE __host__ __device__
#else
#define GT_HOST_DEVICE
#endif
