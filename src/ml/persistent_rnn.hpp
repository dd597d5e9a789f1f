// Small-batch prediction through cuDNN's persistent-static RNN kernel, which keeps the recurrent
// weights on chip for all the steps of a window: at small batches it beats the standard algorithm
// that LibTorch runs, and loses to it from a few windows on (docs/PERFORMANCE.md "Signal models").
// LibTorch picks its cuDNN algorithm by its own heuristics, so this calls cuDNN directly on a copy
// of the network's weights. Only in builds whose LibTorch has CUDA (GT_TORCH_CUDA). LSTMs that our
// own kernel serves take that one instead (cluster_recurrence.hpp); GRUs and the other LSTMs come
// here.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>

#include "network.hpp"

namespace gt::ml {

class PersistentRecurrence {
 public:
  // The recurrent stack of `net` (on a CUDA device, its weights in fp32 or fp16 as `precision`
  // says) for windows of `batch` x L x F in that precision. Throws Error when cuDNN refuses the
  // configuration; callers then keep LibTorch's path.
  PersistentRecurrence(const SignalNet& net, const ModelSpec& spec, std::int64_t batch, torch::Device device,
                       Precision precision);
  // Whether it runs in `precision` at all (fp32 and fp16; not bf16).
  static bool serves(Precision precision) { return precision == Precision::kFp32 || precision == Precision::kFp16; }
  ~PersistentRecurrence();
  PersistentRecurrence(const PersistentRecurrence&) = delete;
  PersistentRecurrence& operator=(const PersistentRecurrence&) = delete;

  // The last step's hidden state (batch x hidden) for `windows` (batch x L x F in the precision it
  // was built for, contiguous, on the device), on the current CUDA stream: capturable in a graph.
  torch::Tensor last_step(const torch::Tensor& windows);

  // The batches it serves: at most this many windows.
  static constexpr std::int64_t kLargestBatch = 1;

 private:
  struct Descriptors;
  std::unique_ptr<Descriptors> d_;
  torch::Tensor weights_, workspace_, sequence_lengths_, output_;
};

}  // namespace gt::ml
