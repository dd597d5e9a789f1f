// Small-batch LSTM prediction through our own cluster kernel (cluster_recurrence.hpp).
#include "cluster_recurrence.hpp"

#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <vector>

#include "gt/error.hpp"

namespace gt::ml {
namespace {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw Error(fmt::format("CUDA: {} failed: {}", what, cudaGetErrorString(status)));
}

cuda::ClusterLstmShape shape_of(const ModelSpec& spec) {
  return {static_cast<int>(spec.data.features.size()), spec.config.hidden_dim, spec.config.num_layers,
          static_cast<int>(spec.data.sequence_length)};
}

// This library's CUDA runtime is its own (linked statically), so its current device is set here
// rather than inherited from LibTorch's.
void use_device(int index) {
  int current = -1;
  check(cudaGetDevice(&current), "cudaGetDevice");
  if (current != index) check(cudaSetDevice(index), "cudaSetDevice");
}

}  // namespace

bool ClusterRecurrence::serves(const ModelSpec& spec, std::int64_t batch) {
  return spec.config.model_type == "lstm" && batch >= 1 && batch <= kLargestBatch &&
         cuda::cluster_lstm_windows_per_cluster(shape_of(spec), static_cast<int>(batch)) > 0;
}

ClusterRecurrence::ClusterRecurrence(const SignalNet& net, const ModelSpec& spec, std::int64_t batch,
                                     torch::Device device)
    : shape_(shape_of(spec)), batch_(batch), device_index_(device.index() < 0 ? 0 : device.index()) {
  if (!serves(spec, batch))
    throw Error(fmt::format(
        "the cluster LSTM kernel does not serve a {} of hidden_dim {}, {} layers and {} features "
        "at batch {}",
        spec.config.model_type, spec.config.hidden_dim, spec.config.num_layers, spec.data.features.size(), batch));
  use_device(device_index_);
  check(cuda::cluster_lstm_fits(shape_, static_cast<int>(batch)), "placing a cluster of 16 blocks on this GPU");
  // PyTorch's layout on the host in fp32, packed there, then uploaded once.
  const auto parameters = net->named_parameters();
  const auto host = [&](const std::string& name) {
    return parameters[name].detach().to(torch::kCPU, torch::kFloat).contiguous();
  };
  std::vector<torch::Tensor> kept;
  std::vector<cuda::LstmLayerWeights> layers;
  for (int layer = 0; layer < shape_.layers; ++layer) {
    cuda::LstmLayerWeights w;
    const auto take = [&](const char* what) {
      kept.push_back(host(fmt::format("rnn.{}_l{}", what, layer)));
      return kept.back().data_ptr<float>();
    };
    w.input = take("weight_ih");
    w.recurrent = take("weight_hh");
    w.input_bias = take("bias_ih");
    w.recurrent_bias = take("bias_hh");
    layers.push_back(w);
  }
  cuda::ClusterLstmWeights packed = cuda::cluster_lstm_pack(shape_, layers);
  const auto on_device = torch::TensorOptions().dtype(torch::kFloat).device(device);
  const auto upload = [&](std::vector<float>& values) {
    return torch::from_blob(values.data(), {static_cast<std::int64_t>(values.size())}).to(on_device);
  };
  weights_ = upload(packed.weights);
  biases_ = upload(packed.biases);
  head_ = torch::cat({host("head.weight").flatten(), host("head.bias").flatten()}).to(on_device);
  output_ = torch::empty({batch}, on_device);
}

torch::Tensor ClusterRecurrence::raw_output(const torch::Tensor& windows) {
  use_device(device_index_);
  check(cuda::cluster_lstm_forward(
            shape_, weights_.data_ptr<float>(), biases_.data_ptr<float>(), head_.data_ptr<float>(),
            windows.data_ptr<float>(), static_cast<int>(batch_), output_.data_ptr<float>(),
            c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device_index_)).stream()),
        "launching the cluster LSTM kernel");
  return output_;
}

}  // namespace gt::ml
