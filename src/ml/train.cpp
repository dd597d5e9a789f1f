// Training on one device: early stopping on validation loss with the best weights kept, fixed
// seeds, and on CUDA the whole step (gather, forward, backward, clipping, optimizer, loss-scale
// update; trainer.cpp) captured once as a graph and replayed, so that a step costs its kernels and
// not one launch per operation.
#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <optional>

#if defined(GT_TORCH_CUDA)
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "gt/error.hpp"
#include "trainer.hpp"

namespace gt::ml {
namespace {

constexpr int kGraphWarmupSteps = 3;

#if defined(GT_TORCH_CUDA)
// Work queued on `consumer` after this call waits for work queued on `producer` before it.
void wait_for(const c10::cuda::CUDAStream& consumer, const c10::cuda::CUDAStream& producer) {
  at::cuda::CUDAEvent event;
  event.record(producer);
  event.block(consumer);
}
#endif

}  // namespace

TrainReport TorchModel::train(const Dataset& data, const TrainOptions& options, const EpochCallback& on_epoch) {
  return train(slice_of(data, data.train), slice_of(data, data.validation), slice_of(data, data.test), options,
               on_epoch);
}

TrainReport TorchModel::train(const Samples& train_set, const Samples& validation_set, const Samples& test_set,
                              const TrainOptions& options, const EpochCallback& on_epoch) {
  options.validate();
  const torch::Device device = device_;
  check_training_precision(options.precision, device.str());
  if (train_set.count() == 0) throw ParamError("no training samples");
  weights_changed();

  TrainReport report;
  report.device = device.str();
  report.train_samples = train_set.count();
  report.validation_samples = validation_set.count();
  report.test_samples = test_set.count();

  const torch::Tensor x_train = windows_tensor(train_set, spec_, device), y_train = labels_tensor(train_set, device);
  const torch::Tensor x_val = windows_tensor(validation_set, spec_, device);
  const torch::Tensor y_val = labels_tensor(validation_set, device);
  SignalNet net = net_;
  net->train();
  net->use_own_recurrence(options.own_lstm_recurrence);
  Trainer trainer(net, spec_, options, device);

  const std::int64_t n = x_train.size(0);
  const std::int64_t batch = std::min<std::int64_t>(options.batch_size, n);
  const std::int64_t full_batches = n / batch;
  // Shuffling draws from its own generator seeded by the options, the same on every device.
  auto shuffle = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  torch::manual_seed(options.seed);  // dropout

#if defined(GT_TORCH_CUDA)
  const bool graphs = options.cuda_graphs && device.is_cuda();
  std::optional<at::cuda::CUDAGraph> graph;
  torch::Tensor static_index, static_x, static_y;
  std::optional<c10::cuda::CUDAStream> side_stream;
  int eager_steps = 0;
  if (graphs) {
    static_index = torch::zeros({batch}, torch::TensorOptions().device(device).dtype(torch::kLong));
    side_stream = c10::cuda::getStreamFromPool(false, device.index());
  }
#endif

  Progress progress(report, options, static_cast<std::size_t>(n), on_epoch);
  for (int epoch = 1; epoch <= options.epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    const torch::Tensor order = torch::randperm(n, shuffle, torch::TensorOptions().dtype(torch::kLong)).to(device);
    for (std::int64_t b = 0; b * batch < n; ++b) {
      const torch::Tensor index = order.slice(0, b * batch, std::min(n, (b + 1) * batch));
#if defined(GT_TORCH_CUDA)
      if (graphs && b < full_batches) {
        static_index.copy_(index);
        if (graph) {
          graph->replay();
          continue;
        }
        // The first full batches run eagerly on a side stream (cuDNN settles its algorithms and
        // workspaces), then the step is captured; the captured step is not run by capturing.
        const c10::cuda::CUDAStream main_stream = c10::cuda::getCurrentCUDAStream(device.index());
        c10::cuda::CUDAStreamGuard guard(*side_stream);
        wait_for(*side_stream, main_stream);
        const bool capture = eager_steps == kGraphWarmupSteps;
        if (capture) {
          graph.emplace();
          graph->capture_begin();
        }
        static_x = x_train.index_select(0, static_index);
        static_y = y_train.index_select(0, static_index);
        trainer.step(static_x, static_y, capture);
        if (capture) {
          graph->capture_end();
          graph->replay();
        }
        ++eager_steps;
        wait_for(main_stream, *side_stream);
        continue;
      }
#endif
      trainer.step(x_train.index_select(0, index), y_train.index_select(0, index), false);
    }
    const double train_loss = trainer.take_loss_sum() / static_cast<double>(n);  // waits for the epoch's steps
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (progress.finish_epoch(epoch, train_loss, seconds, trainer.evaluate(x_val, y_val), net)) break;
  }
  progress.restore_best(net);
  const torch::Tensor x_test = windows_tensor(test_set, spec_, device), y_test = labels_tensor(test_set, device);
  const LossParts test = trainer.evaluate(x_test, y_test);
  report.test_loss = test.loss;
  report.test_accuracy = test.accuracy;
  net->eval();
  return report;
}

}  // namespace gt::ml
