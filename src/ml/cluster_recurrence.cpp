// LSTMs through our own kernels: prediction of small batches in fp32 and of large ones on tensor
// cores, and fp32 training (cluster_recurrence.hpp).
#include "cluster_recurrence.hpp"

#include <ATen/autocast_mode.h>
#include <fmt/format.h>

#include <cstdlib>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "gt/error.hpp"
#include "own_kernels.hpp"

namespace gt::ml {
namespace {

cuda::ClusterLstmShape shape_of(const ModelSpec& spec) {
  return {static_cast<int>(spec.data.features.size()), spec.config.hidden_dim, spec.config.num_layers,
          static_cast<int>(spec.data.sequence_length)};
}

struct HostLayers {
  std::vector<torch::Tensor> kept;  // PyTorch's layout on the host in fp32
  std::vector<cuda::LstmLayerWeights> layers;
  torch::Tensor head;  // H weights, then the bias
};

HostLayers host_layers(const SignalNet& net, int layers) {
  const auto parameters = net->named_parameters();
  const auto host = [&](const std::string& name) {
    return parameters[name].detach().to(torch::kCPU, torch::kFloat).contiguous();
  };
  HostLayers out;
  for (int layer = 0; layer < layers; ++layer) {
    cuda::LstmLayerWeights w;
    const auto take = [&](const char* what) {
      out.kept.push_back(host(fmt::format("rnn.{}_l{}", what, layer)));
      return out.kept.back().data_ptr<float>();
    };
    w.input = take("weight_ih");
    w.recurrent = take("weight_hh");
    w.input_bias = take("bias_ih");
    w.recurrent_bias = take("bias_hh");
    out.layers.push_back(w);
  }
  out.head = torch::cat({host("head.weight").flatten(), host("head.bias").flatten()});
  return out;
}

template <typename T>
torch::Tensor upload(std::vector<T>& values, torch::ScalarType type, torch::Device device) {
  return torch::from_blob(values.data(), {static_cast<std::int64_t>(values.size())}, torch::TensorOptions().dtype(type))
      .to(device);
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
  use_cuda_device(device_index_);
  check_cuda(cuda::cluster_lstm_fits(shape_, static_cast<int>(batch)), "placing a cluster of 16 blocks on this GPU");
  // Packed on the host, then uploaded once.
  HostLayers host = host_layers(net, shape_.layers);
  cuda::ClusterLstmWeights packed = cuda::cluster_lstm_pack(shape_, host.layers);
  weights_ = upload(packed.weights, torch::kFloat, device);
  biases_ = upload(packed.biases, torch::kFloat, device);
  head_ = host.head.to(device);
  output_ = torch::empty({batch}, torch::TensorOptions().dtype(torch::kFloat).device(device));
}

torch::Tensor ClusterRecurrence::raw_output(const torch::Tensor& windows) {
  use_cuda_device(device_index_);
  check_cuda(cuda::cluster_lstm_forward(shape_, weights_.data_ptr<float>(), biases_.data_ptr<float>(),
                                        head_.data_ptr<float>(), windows.data_ptr<float>(), static_cast<int>(batch_),
                                        output_.data_ptr<float>(), current_cuda_stream(device_index_)),
             "launching the cluster LSTM kernel");
  return output_;
}

bool TensorCoreRecurrence::serves(const ModelSpec& spec, Precision precision) {
  return spec.config.model_type == "lstm" && (precision == Precision::kFp16 || precision == Precision::kBf16) &&
         cuda::batched_lstm_serves(shape_of(spec));
}

TensorCoreRecurrence::TensorCoreRecurrence(const SignalNet& net, const ModelSpec& spec, Precision precision,
                                           torch::Device device)
    : shape_(shape_of(spec)),
      format_(precision == Precision::kBf16 ? cuda::HalfFormat::kBf16 : cuda::HalfFormat::kFp16),
      device_index_(device.index() < 0 ? 0 : device.index()) {
  if (!serves(spec, precision))
    throw Error(
        fmt::format("the tensor-core LSTM kernel does not serve a {} of hidden_dim {}, {} layers and {} "
                    "features in {}",
                    spec.config.model_type, spec.config.hidden_dim, spec.config.num_layers, spec.data.features.size(),
                    precision_name(precision)));
  use_cuda_device(device_index_);
  check_cuda(cuda::batched_lstm_fits(shape_, format_), "placing a cluster of 4 blocks on this GPU");
  HostLayers host = host_layers(net, shape_.layers);
  cuda::BatchedLstmWeights packed = cuda::batched_lstm_pack(shape_, host.layers, format_);
  weights_ = upload(packed.weights, torch::kInt16, device);
  biases_ = upload(packed.biases, torch::kFloat, device);
  head_ = host.head.to(device);
}

void TensorCoreRecurrence::raw_output(const torch::Tensor& windows, torch::Tensor& out) {
  const auto F = static_cast<std::int64_t>(shape_.features);
  if (windows.dim() != 3 || windows.scalar_type() != torch::kFloat || windows.stride(2) != 1 ||
      windows.stride(1) != F || windows.size(1) != shape_.steps || windows.size(2) != F || !out.is_contiguous() ||
      out.numel() != windows.size(0) || windows.size(0) > std::numeric_limits<int>::max())
    throw Error("the tensor-core LSTM kernel takes fp32 windows of strides (any, features, 1) and one output each");
  use_cuda_device(device_index_);
  check_cuda(cuda::batched_lstm_forward(shape_, format_, weights_.data_ptr(), biases_.data_ptr<float>(),
                                        head_.data_ptr<float>(), windows.data_ptr<float>(), windows.stride(0),
                                        static_cast<int>(windows.size(0)), out.data_ptr<float>(),
                                        current_cuda_stream(device_index_)),
             "launching the tensor-core LSTM kernel");
}

namespace {

// One layer's recurrence: from its input projection (batch x L x 4H, x W_ih^T), both biases added
// (4H) and W_hh to its hidden sequence (batch x L x H).
class LstmRecurrence : public torch::autograd::Function<LstmRecurrence> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* context, const torch::Tensor& inputs,
                               const torch::Tensor& bias, const torch::Tensor& recurrent) {
    const cuda::LstmRecurrenceShape shape = shape_of(inputs, recurrent);
    if (!bias.is_contiguous() || bias.numel() != 4 * shape.hidden || bias.scalar_type() != torch::kFloat)
      throw Error("the LSTM training kernel takes the layer's two biases added, 4H contiguous fp32 values");
    const int device = inputs.device().index();
    use_cuda_device(device);
    const torch::Tensor hidden = torch::empty({shape.batch, shape.steps, shape.hidden}, inputs.options());
    const torch::Tensor cells = torch::empty_like(hidden), gates = torch::empty_like(inputs);
    check_cuda(
        cuda::lstm_recurrence_forward(shape, inputs.data_ptr<float>(), bias.data_ptr<float>(),
                                      recurrent.data_ptr<float>(), hidden.data_ptr<float>(), cells.data_ptr<float>(),
                                      gates.data_ptr<float>(), current_cuda_stream(device)),
        "launching the LSTM training kernel (forward)");
    context->save_for_backward({recurrent, hidden, cells, gates});
    return hidden;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* context,
                                                 torch::autograd::variable_list outputs) {
    const auto saved = context->get_saved_variables();
    const torch::Tensor &recurrent = saved[0], &hidden = saved[1], &cells = saved[2], &gates = saved[3];
    const torch::Tensor d_hidden = outputs[0].defined() ? outputs[0].contiguous() : torch::zeros_like(hidden);
    const cuda::LstmRecurrenceShape shape = shape_of(gates, recurrent);
    const int device = gates.device().index();
    use_cuda_device(device);
    const torch::Tensor d_gates = torch::empty_like(gates);
    int bias_rows = 0;
    check_cuda(cuda::lstm_recurrence_bias_rows(shape, bias_rows), "placing the LSTM training kernel (backward)");
    const torch::Tensor bias_sums = torch::empty({bias_rows, 4 * shape.hidden}, gates.options());
    check_cuda(
        cuda::lstm_recurrence_backward(shape, recurrent.data_ptr<float>(), gates.data_ptr<float>(),
                                       cells.data_ptr<float>(), d_hidden.data_ptr<float>(), d_gates.data_ptr<float>(),
                                       bias_sums.data_ptr<float>(), current_cuda_stream(device)),
        "launching the LSTM training kernel (backward)");
    return {d_gates, bias_sums.sum(0), recurrent_gradient(d_gates, hidden)};
  }

 private:
  // dW_hh = sum over windows b and steps t >= 1 of dg_{b,t}^T h_{b,t-1} (h_{-1} is zero). As rows of
  // (batch x steps) matrices, that pairs each dg row r with h row r - 1: one GEMM over the dense
  // matrices shifted by a row, without copying the steps apart, minus the pairs that cross from one
  // window's last step into the next window's step 0 (a GEMM of batch - 1 rows, read in place).
  static torch::Tensor recurrent_gradient(const torch::Tensor& d_gates, const torch::Tensor& hidden) {
    const std::int64_t B = hidden.size(0), T = hidden.size(1), H = hidden.size(2), rows = B * T;
    const torch::Tensor dg = d_gates.view({rows, 4 * H}), h = hidden.view({rows, H});
    if (T == 1) return torch::zeros({4 * H, H}, d_gates.options());
    const torch::Tensor shifted = torch::mm(dg.slice(0, 1).t(), h.slice(0, 0, rows - 1));
    if (B == 1) return shifted;
    // Rows T, 2T, ... of dg (step 0 of windows 1..B-1) against rows T-1, 2T-1, ... of h.
    return at::addmm(shifted, dg.slice(0, T, rows, T).t(), h.slice(0, T - 1, rows - 1, T), /*beta=*/1,
                     /*alpha=*/-1);
  }

  static cuda::LstmRecurrenceShape shape_of(const torch::Tensor& inputs, const torch::Tensor& recurrent) {
    const auto H = recurrent.size(1);
    if (inputs.dim() != 3 || !inputs.is_contiguous() || inputs.size(2) != 4 * H || !recurrent.is_contiguous() ||
        recurrent.size(0) != 4 * H || inputs.scalar_type() != torch::kFloat ||
        recurrent.scalar_type() != torch::kFloat || inputs.size(0) > std::numeric_limits<int>::max() ||
        inputs.size(1) > std::numeric_limits<int>::max())
      throw Error("the LSTM training kernel takes contiguous fp32 inputs (batch x steps x 4H) and W_hh (4H x H)");
    return {static_cast<int>(H), static_cast<int>(inputs.size(1)), static_cast<int>(inputs.size(0))};
  }
};

}  // namespace

bool own_lstm_training(const torch::nn::LSTM& lstm, const torch::Tensor& windows) {
  const torch::nn::LSTMOptions& o = lstm->options;
  if (!lstm->is_training() || !torch::GradMode::is_enabled() || !windows.is_cuda() || windows.dim() != 3 ||
      windows.scalar_type() != torch::kFloat || at::autocast::is_autocast_enabled(at::kCUDA) || o.bidirectional() ||
      !o.batch_first() || o.proj_size() != 0 || !o.bias() || windows.size(0) > std::numeric_limits<int>::max())
    return false;
  const cuda::LstmRecurrenceShape shape{static_cast<int>(o.hidden_size()), static_cast<int>(windows.size(1)),
                                        static_cast<int>(windows.size(0))};
  if (!cuda::lstm_recurrence_serves(shape)) return false;
  use_cuda_device(windows.device().index());
  return cuda::lstm_recurrence_fits(shape) == cudaSuccess;
}

torch::Tensor lstm_training_forward(const torch::nn::LSTM& lstm, const torch::Tensor& windows) {
  const torch::nn::LSTMOptions& o = lstm->options;
  const std::vector<torch::Tensor> weights = lstm->all_weights();  // per layer: W_ih, W_hh, b_ih, b_hh
  torch::Tensor sequence = windows;
  for (std::int64_t layer = 0; layer < o.num_layers(); ++layer) {
    const auto w = [&](std::int64_t i) { return weights[static_cast<std::size_t>(4 * layer + i)]; };
    // The kernels add the biases and sum their gradient (a reduction over batch x L rows that
    // LibTorch's linear would run as a kernel of its own).
    const torch::Tensor inputs = at::linear(sequence, w(0)).contiguous();
    sequence = LstmRecurrence::apply(inputs, w(2) + w(3), w(1));
    if (layer + 1 < o.num_layers() && o.dropout() > 0) sequence = torch::dropout(sequence, o.dropout(), true);
  }
  return sequence;
}

}  // namespace gt::ml
