// Data-parallel training: one replica and one thread per device, every global batch split evenly,
// gradients summed over replicas after each backward pass (each replica's share weighted by its
// part of the batch, so the sum is the whole batch's mean gradient), then identical clipping and
// AdamW steps everywhere. Rank 0 validates, keeps the best weights and decides when to stop.
#include <fmt/format.h>
#include <torch/torch.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>

#if defined(GT_TORCH_CUDA)
#include <c10/cuda/CUDAGuard.h>

#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "gt/error.hpp"
#include "trainer.hpp"

namespace gt::ml {
namespace {

// Sums replicas' gradients; identical results on every rank.
class Reducer {
 public:
  virtual ~Reducer() = default;
  virtual void all_reduce(int rank, torch::Tensor& flat) = 0;
  // A failing rank leaves, so that the others are not left waiting for its gradients.
  virtual void abandon() {}
};

// CPU replicas in one process: each rank posts its gradients, then every rank adds them up in rank
// order (so all ranks hold the same bits).
class ThreadReducer : public Reducer {
 public:
  explicit ThreadReducer(int ranks) : slots_(static_cast<std::size_t>(ranks)), barrier_(ranks) {}
  void all_reduce(int rank, torch::Tensor& flat) override {
    slots_[static_cast<std::size_t>(rank)] = flat;
    barrier_.arrive_and_wait();
    torch::Tensor total = slots_[0].clone();
    for (std::size_t r = 1; r < slots_.size(); ++r) total.add_(slots_[r]);
    barrier_.arrive_and_wait();  // nobody posts the next step's gradients before all have summed
    flat = total;
  }
  void abandon() override { barrier_.arrive_and_drop(); }

 private:
  std::vector<torch::Tensor> slots_;
  std::barrier<> barrier_;
};

#if defined(GT_TORCH_CUDA)
// GPUs: NCCL through LibTorch's c10d, one process group per rank over an in-process store.
class NcclReducer : public Reducer {
 public:
  explicit NcclReducer(int ranks)
      : store_(c10::make_intrusive<c10d::HashStore>()), groups_(static_cast<std::size_t>(ranks)) {
    // NVLink multicast stays off: on shared multi-GPU hosts it can take every GPU out of service.
    ::setenv("NCCL_NVLS_ENABLE", "0", 1);
  }
  // Called by each rank's thread before its first reduction (NCCL communicators are per rank).
  void join(int rank, int ranks) {
    auto options = c10d::ProcessGroupNCCL::Options::create();
    groups_[static_cast<std::size_t>(rank)] = c10::make_intrusive<c10d::ProcessGroupNCCL>(store_, rank, ranks, options);
  }
  ~NcclReducer() override {
    for (auto& group : groups_)
      if (group) group->shutdown();
  }
  void all_reduce(int rank, torch::Tensor& flat) override {
    std::vector<torch::Tensor> tensors{flat};
    groups_[static_cast<std::size_t>(rank)]->allreduce(tensors)->wait();
  }

 private:
  c10::intrusive_ptr<c10d::Store> store_;
  std::vector<c10::intrusive_ptr<c10d::ProcessGroupNCCL>> groups_;
};
#endif

// The reduction as the trainer sees it: flatten, sum over ranks, write back.
GradientReduce reduce_with(Reducer& reducer, int rank) {
  return [&reducer, rank](std::vector<torch::Tensor>& grads) {
    std::vector<torch::Tensor> views;
    for (const auto& g : grads) views.push_back(g.reshape({-1}));
    torch::Tensor flat = torch::cat(views);
    reducer.all_reduce(rank, flat);
    std::int64_t offset = 0;
    torch::NoGradGuard no_grad;
    for (auto& g : grads) {
      g.copy_(flat.slice(0, offset, offset + g.numel()).view_as(g));
      offset += g.numel();
    }
  };
}

}  // namespace

TrainReport TorchModel::train_parallel(const Dataset& data, const TrainOptions& options,
                                       const std::vector<std::string>& devices, const EpochCallback& on_epoch) {
  options.validate();
  if (devices.empty()) throw ParamError("data-parallel training needs at least one device");
  std::vector<torch::Device> places;
  for (const auto& d : devices) places.emplace_back(torch_device(d));
  for (const auto& p : places)
    if (p.type() != places.front().type())
      throw ParamError(fmt::format("data-parallel devices must be all CUDA or all CPU, got {} and {}",
                                   places.front().str(), p.str()));
  const bool cuda = places.front().is_cuda();
  check_training_precision(options.precision, places.front().str());
  const Samples train_set = slice_of(data, data.train), validation_set = slice_of(data, data.validation);
  const Samples test_set = slice_of(data, data.test);
  if (train_set.count() == 0) throw ParamError("no training samples");
  const auto ranks = static_cast<int>(places.size());
  weights_changed();

  // Replicas start from the model's own weights (the same bits on every rank).
  std::vector<SignalNet> replicas;
  for (const auto& place : places) {
    SignalNet replica(spec_.config, static_cast<std::int64_t>(spec_.data.features.size()));
    copy_weights(net_, replica);
    replica->to(place);
    replica->train();
    replicas.push_back(replica);
  }
  std::unique_ptr<Reducer> reducer;
#if defined(GT_TORCH_CUDA)
  if (cuda) reducer = std::make_unique<NcclReducer>(ranks);
#endif
  if (!reducer) reducer = std::make_unique<ThreadReducer>(ranks);

  TrainReport report;
  report.device = fmt::format("{} x {}", ranks, places.front().is_cuda() ? "cuda" : "cpu");
  report.train_samples = train_set.count();
  report.validation_samples = validation_set.count();
  report.test_samples = test_set.count();
  const auto n = static_cast<std::int64_t>(train_set.count());
  const std::int64_t batch = std::min<std::int64_t>(options.batch_size, n);
  Progress progress(report, options, train_set.count(), on_epoch);
  torch::manual_seed(options.seed);  // dropout, before the threads start

  std::barrier<> epoch_end(ranks);
  std::atomic<bool> stop = false;
  std::mutex failure_mutex;
  std::exception_ptr failure;
  std::vector<double> loss_sums(static_cast<std::size_t>(ranks));
  std::unique_ptr<Trainer> rank0_trainer;
  torch::Tensor x_val, y_val;

  const auto rank_main = [&](int rank) {
    try {
      const torch::Device place = places[static_cast<std::size_t>(rank)];
#if defined(GT_TORCH_CUDA)
      std::optional<c10::cuda::CUDAGuard> guard;
      if (cuda) {
        guard.emplace(place);
        static_cast<NcclReducer&>(*reducer).join(rank, ranks);
      }
#endif
      // Every rank holds the whole training set and draws the same permutation each epoch.
      const torch::Tensor x_train = windows_tensor(train_set, spec_, place);
      const torch::Tensor y_train = labels_tensor(train_set, place);
      auto shuffle = at::make_generator<at::CPUGeneratorImpl>(options.seed);
      Trainer trainer(replicas[static_cast<std::size_t>(rank)], spec_, options, place);
      const GradientReduce reduce = reduce_with(*reducer, rank);
      for (int epoch = 1; epoch <= options.epochs; ++epoch) {
        const auto start = std::chrono::steady_clock::now();
        const torch::Tensor order = torch::randperm(n, shuffle, torch::TensorOptions().dtype(torch::kLong));
        for (std::int64_t first = 0; first < n; first += batch) {
          const std::int64_t size = std::min(batch, n - first);
          const std::int64_t begin = first + size * rank / ranks, end = first + size * (rank + 1) / ranks;
          const torch::Tensor index = order.slice(0, begin, end).to(place);
          trainer.step(x_train.index_select(0, index), y_train.index_select(0, index), false,
                       static_cast<double>(end - begin) / static_cast<double>(size), reduce);
        }
        loss_sums[static_cast<std::size_t>(rank)] = trainer.take_loss_sum();
        epoch_end.arrive_and_wait();
        if (rank == 0) {
          double total = 0;
          for (double s : loss_sums) total += s;
          const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
          if (!x_val.defined()) {
            x_val = windows_tensor(validation_set, spec_, place);
            y_val = labels_tensor(validation_set, place);
          }
          stop = progress.finish_epoch(epoch, total / static_cast<double>(n), seconds, trainer.evaluate(x_val, y_val),
                                       replicas[0]);
        }
        epoch_end.arrive_and_wait();
        if (stop) break;
      }
    } catch (...) {
      {
        std::lock_guard lock(failure_mutex);
        if (!failure) failure = std::current_exception();
      }
      stop = true;
      reducer->abandon();
      epoch_end.arrive_and_drop();  // the others finish their epoch, see `stop`, and leave
    }
  };
  std::vector<std::thread> threads;
  for (int r = 1; r < ranks; ++r) threads.emplace_back(rank_main, r);
  rank_main(0);
  for (auto& t : threads) t.join();
  if (failure) std::rethrow_exception(failure);

  // Rank 0's best weights become the model's; the test part is scored once, on rank 0's device.
  progress.restore_best(replicas[0]);
  copy_weights(replicas[0], net_);
  Trainer scorer(replicas[0], spec_, options, places.front());
  const LossParts test =
      scorer.evaluate(windows_tensor(test_set, spec_, places.front()), labels_tensor(test_set, places.front()));
  report.test_loss = test.loss;
  report.test_accuracy = test.accuracy;
  net_->eval();
  return report;
}

}  // namespace gt::ml
