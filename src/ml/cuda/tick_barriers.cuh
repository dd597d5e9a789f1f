// The exchange that ends each tick of the cluster LSTM kernels (cluster_lstm.cu, batched_lstm.cu).
// At tick k, layer l computes step k - l from the hidden values written at tick k - 1 (one buffer
// read, the other written, swapped each tick) and sends its new values to every block of the
// cluster with st.async, whose byte count completes the receiver's mbarrier arrived[k & 1]; one
// thread a block arrives there once per tick, expecting the bytes that tick brings. A block waits
// only for the values it reads, never for a barrier of the whole cluster (on an H100, 1.0 us a tick
// against 1.5 us with barrier.cluster).
//
// Why the phases never mix: every thread waits on every tick, so the expectation for tick k comes
// after the phase of tick k - 2 on the same mbarrier completed; no block can send values of tick k
// before it received this block's values of tick k - 1, which this block sends only after it read
// the buffer they overwrite, so one buffer pair suffices.
#pragma once

#include <cstdint>
#include <cuda/ptx>

namespace gt::ml::cuda {

// Before the cluster's first sync, by one thread of each block.
__device__ __forceinline__ void init_tick_barriers(std::uint64_t (&arrived)[2]) {
  namespace ptx = ::cuda::ptx;
  ptx::mbarrier_init(&arrived[0], 1);
  ptx::mbarrier_init(&arrived[1], 1);
  ptx::fence_mbarrier_init(ptx::sem_release, ptx::scope_cluster);
}

// Until all the values written at `tick` arrived in this block.
__device__ __forceinline__ void wait_for_tick(std::uint64_t (&arrived)[2], int tick) {
  namespace ptx = ::cuda::ptx;
  while (!ptx::mbarrier_try_wait_parity(ptx::sem_acquire, ptx::scope_cluster, &arrived[tick & 1],
                                        static_cast<std::uint32_t>((tick >> 1) & 1))) {
  }
}

// By one thread a block at the start of `tick`, after waiting for tick - 1: this block receives
// `bytes_per_layer` from each layer that has a step at this tick, and `other_bytes` more (the
// next step's inputs, where a kernel sends them so). Its release also publishes what this thread
// (and its warp, after __syncwarp) stored in the block before it.
__device__ __forceinline__ void expect_tick(std::uint64_t (&arrived)[2], int tick, int layers, int steps,
                                            int bytes_per_layer, int other_bytes = 0) {
  namespace ptx = ::cuda::ptx;
  const int active = min(tick, layers - 1) - max(0, tick - steps + 1) + 1;
  ptx::mbarrier_arrive_expect_tx(ptx::sem_release, ptx::scope_cta, ptx::space_shared, &arrived[tick & 1],
                                 static_cast<std::uint32_t>(bytes_per_layer * active + other_bytes));
}

}  // namespace gt::ml::cuda
