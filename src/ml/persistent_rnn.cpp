// cuDNN's persistent-static RNN for small-batch prediction (persistent_rnn.hpp).
#include "persistent_rnn.hpp"

#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <fmt/format.h>

#include <string>
#include <vector>

#include "../cuda_status.hpp"
#include "gt/error.hpp"

namespace gt::ml {
namespace {

void check(cudnnStatus_t status, const char* what) {
  if (status != CUDNN_STATUS_SUCCESS)
    throw Error(fmt::format("cuDNN: {} failed: {}", what, cudnnGetErrorString(status)));
}
void check(cudaError_t status, const char* what) {
  check_cuda(status, what);
}

}  // namespace

struct PersistentRecurrence::Descriptors {
  cudnnHandle_t handle = nullptr;
  cudnnDropoutDescriptor_t dropout = nullptr;
  cudnnRNNDescriptor_t rnn = nullptr;
  cudnnRNNDataDescriptor_t x = nullptr, y = nullptr;
  cudnnTensorDescriptor_t h = nullptr, matrix = nullptr, bias = nullptr;

  ~Descriptors() {
    if (matrix) cudnnDestroyTensorDescriptor(matrix);
    if (bias) cudnnDestroyTensorDescriptor(bias);
    if (h) cudnnDestroyTensorDescriptor(h);
    if (x) cudnnDestroyRNNDataDescriptor(x);
    if (y) cudnnDestroyRNNDataDescriptor(y);
    if (rnn) cudnnDestroyRNNDescriptor(rnn);
    if (dropout) cudnnDestroyDropoutDescriptor(dropout);
    if (handle) cudnnDestroy(handle);
  }
};

PersistentRecurrence::PersistentRecurrence(const SignalNet& net, const ModelSpec& spec, std::int64_t batch,
                                           torch::Device device, Precision precision)
    : d_(std::make_unique<Descriptors>()) {
  const bool lstm = spec.config.model_type == "lstm";
  const int layers = spec.config.num_layers, hidden = spec.config.hidden_dim;
  const int features = static_cast<int>(spec.data.features.size());
  const int steps = static_cast<int>(spec.data.sequence_length);
  if (!serves(precision)) throw Error("cuDNN's persistent RNN runs in fp32 or fp16 only");
  const bool half = precision == Precision::kFp16;
  const cudnnDataType_t data_type = half ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT;
  const torch::ScalarType scalar = half ? torch::kHalf : torch::kFloat;
  Descriptors& d = *d_;
  check(cudnnCreate(&d.handle), "cudnnCreate");
  check(cudnnCreateDropoutDescriptor(&d.dropout), "cudnnCreateDropoutDescriptor");
  check(cudnnSetDropoutDescriptor(d.dropout, d.handle, 0.0f, nullptr, 0, 0), "cudnnSetDropoutDescriptor");
  check(cudnnCreateRNNDescriptor(&d.rnn), "cudnnCreateRNNDescriptor");
  // fp32: plain fp32 arithmetic (no TF32), closer to the CPU's predictions than LibTorch's default;
  // fp16: tensor cores, accumulating in fp32.
  check(cudnnSetRNNDescriptor_v8(d.rnn, CUDNN_RNN_ALGO_PERSIST_STATIC, lstm ? CUDNN_LSTM : CUDNN_GRU,
                                 CUDNN_RNN_DOUBLE_BIAS, CUDNN_UNIDIRECTIONAL, CUDNN_LINEAR_INPUT, data_type,
                                 CUDNN_DATA_FLOAT, half ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH, features, hidden,
                                 hidden, layers, d.dropout, CUDNN_RNN_PADDED_IO_ENABLED),
        "cudnnSetRNNDescriptor_v8");
  const std::vector<int> lengths(static_cast<std::size_t>(batch), steps);
  float padding = 0;
  check(cudnnCreateRNNDataDescriptor(&d.x), "cudnnCreateRNNDataDescriptor");
  check(cudnnCreateRNNDataDescriptor(&d.y), "cudnnCreateRNNDataDescriptor");
  check(cudnnSetRNNDataDescriptor(d.x, data_type, CUDNN_RNN_DATA_LAYOUT_BATCH_MAJOR_UNPACKED, steps,
                                  static_cast<int>(batch), features, lengths.data(), &padding),
        "cudnnSetRNNDataDescriptor");
  check(cudnnSetRNNDataDescriptor(d.y, data_type, CUDNN_RNN_DATA_LAYOUT_BATCH_MAJOR_UNPACKED, steps,
                                  static_cast<int>(batch), hidden, lengths.data(), &padding),
        "cudnnSetRNNDataDescriptor");
  check(cudnnCreateTensorDescriptor(&d.h), "cudnnCreateTensorDescriptor");
  const int dims[3] = {layers, static_cast<int>(batch), hidden};
  const int strides[3] = {static_cast<int>(batch) * hidden, hidden, 1};
  check(cudnnSetTensorNdDescriptor(d.h, data_type, 3, dims, strides), "cudnnSetTensorNdDescriptor");

  // The weights: cuDNN's layout holds, per layer, one matrix and one bias per gate for the input
  // and again for the recurrence, in PyTorch's gate order (LSTM i, f, g, o; GRU r, z, n), each
  // matrix row-major like PyTorch's own rows for that gate.
  std::size_t weight_bytes = 0, work_bytes = 0, reserve_bytes = 0;
  check(cudnnGetRNNWeightSpaceSize(d.handle, d.rnn, &weight_bytes), "cudnnGetRNNWeightSpaceSize");
  check(cudnnGetRNNTempSpaceSizes(d.handle, d.rnn, CUDNN_FWD_MODE_INFERENCE, d.x, &work_bytes, &reserve_bytes),
        "cudnnGetRNNTempSpaceSizes");
  const auto bytes = torch::TensorOptions().dtype(torch::kUInt8).device(device);
  weights_ = torch::zeros({static_cast<std::int64_t>(weight_bytes)}, bytes);
  workspace_ = torch::empty({static_cast<std::int64_t>(std::max<std::size_t>(work_bytes, 1))}, bytes);
  sequence_lengths_ = torch::full({batch}, steps, torch::TensorOptions().dtype(torch::kInt32).device(device));
  output_ = torch::empty({batch, steps, hidden}, torch::TensorOptions().dtype(scalar).device(device));
  check(cudnnCreateTensorDescriptor(&d.matrix), "cudnnCreateTensorDescriptor");
  check(cudnnCreateTensorDescriptor(&d.bias), "cudnnCreateTensorDescriptor");
  const auto parameters = net->named_parameters();
  const int gates = lstm ? 4 : 3;
  for (int layer = 0; layer < layers; ++layer) {
    const torch::Tensor w_ih = parameters[fmt::format("rnn.weight_ih_l{}", layer)].detach().to(scalar);
    const torch::Tensor w_hh = parameters[fmt::format("rnn.weight_hh_l{}", layer)].detach().to(scalar);
    const torch::Tensor b_ih = parameters[fmt::format("rnn.bias_ih_l{}", layer)].detach().to(scalar);
    const torch::Tensor b_hh = parameters[fmt::format("rnn.bias_hh_l{}", layer)].detach().to(scalar);
    for (int id = 0; id < 2 * gates; ++id) {
      void *matrix = nullptr, *bias = nullptr;
      check(cudnnGetRNNWeightParams(d.handle, d.rnn, layer, weight_bytes, weights_.data_ptr(), id, d.matrix, &matrix,
                                    d.bias, &bias),
            "cudnnGetRNNWeightParams");
      const bool recurrent = id >= gates;
      const std::int64_t gate = recurrent ? id - gates : id;
      const torch::Tensor rows = (recurrent ? w_hh : w_ih).narrow(0, gate * hidden, hidden).contiguous();
      const torch::Tensor offsets = (recurrent ? b_hh : b_ih).narrow(0, gate * hidden, hidden).contiguous();
      // The matrix's element count, to catch a layout that is not the one assumed above.
      cudnnDataType_t type;
      int rank = 0, shape[3] = {0, 0, 0}, stride[3] = {0, 0, 0};
      check(cudnnGetTensorNdDescriptor(d.matrix, 3, &type, &rank, shape, stride), "cudnnGetTensorNdDescriptor");
      if (static_cast<std::int64_t>(shape[0]) * shape[1] * shape[2] != rows.numel())
        throw Error(fmt::format("cuDNN: layer {} matrix {} holds {} x {} x {} values, the network's {}", layer, id,
                                shape[0], shape[1], shape[2], rows.numel()));
      check(cudaMemcpy(matrix, rows.data_ptr(), rows.nbytes(), cudaMemcpyDeviceToDevice),
            "copying weights to cuDNN's layout");
      check(cudaMemcpy(bias, offsets.data_ptr(), offsets.nbytes(), cudaMemcpyDeviceToDevice),
            "copying biases to cuDNN's layout");
    }
  }
}

PersistentRecurrence::~PersistentRecurrence() = default;

torch::Tensor PersistentRecurrence::last_step(const torch::Tensor& windows) {
  Descriptors& d = *d_;
  check(cudnnSetStream(d.handle, c10::cuda::getCurrentCUDAStream(windows.device().index()).stream()), "cudnnSetStream");
  check(cudnnRNNForward(d.handle, d.rnn, CUDNN_FWD_MODE_INFERENCE, sequence_lengths_.data_ptr<std::int32_t>(), d.x,
                        windows.data_ptr(), d.y, output_.data_ptr(), d.h, nullptr, nullptr, d.h, nullptr, nullptr,
                        static_cast<std::size_t>(weights_.numel()), weights_.data_ptr(),
                        static_cast<std::size_t>(workspace_.numel()), workspace_.data_ptr(), 0, nullptr),
        "cudnnRNNForward");
  return output_.select(1, -1);
}

}  // namespace gt::ml
