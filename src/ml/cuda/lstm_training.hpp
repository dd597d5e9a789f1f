// The recurrence of one LSTM layer for fp32 training, forward and backward through time, each in
// one kernel launch. What cuDNN's standard algorithm spends a chain of small kernels on (a GEMM and
// an elementwise kernel a step, 60 steps, two layers, both passes) runs here as clusters of thread
// blocks that keep the recurrent weights in registers and trade each step's values through
// distributed shared memory, in well under cuDNN's time for the seed's epoch (docs/PERFORMANCE.md
// "Signal models"). The kernels also add
// the layer's biases and sum their gradient; everything else that is not sequential in time (the
// input projection, the weight gradients, dropout, the head) stays with LibTorch as large GEMMs
// (cluster_recurrence.cpp wires it into autograd).
//
// Plain fp32 arithmetic: no TF32, so the GPU's gradients match the CPU's to rounding.
//
// Plain CUDA and host C++ (no LibTorch), so that bench/ml/lstm_training_check.cu can check it
// against a double-precision reference on its own. Built only in GT_TORCH_CUDA builds with nvcc.
#pragma once

#include <cuda_runtime.h>

namespace gt::ml::cuda {

struct LstmRecurrenceShape {
  int hidden = 0, steps = 0, batch = 0;
};

// Whether the kernels serve this shape: hidden 64 or 128, at least one step and one window.
bool lstm_recurrence_serves(const LstmRecurrenceShape& shape);
// cudaSuccess when a cluster of the kernels (hidden / 64 blocks) fits on the current GPU.
cudaError_t lstm_recurrence_fits(const LstmRecurrenceShape& shape);

// All tensors dense, fp32, on the device, window-major: [batch][steps][...].
//   inputs      batch x steps x 4H: the layer's input projection (x W_ih^T)
//   bias        4H: both biases added (b_ih + b_hh)
//   recurrent   4H x H: W_hh in PyTorch's layout (gate rows i, f, g, o)
//   hidden      batch x steps x H: h_t (written)
//   cells       batch x steps x H: c_t (written; kept for the backward pass)
//   gates       batch x steps x 4H: the gates after their activations (written; kept likewise)
// The initial h and c are zero. Enqueued on `stream`; capturable in a CUDA graph.
cudaError_t lstm_recurrence_forward(const LstmRecurrenceShape& shape, const float* inputs, const float* bias,
                                    const float* recurrent, float* hidden, float* cells, float* gates,
                                    cudaStream_t stream);

// From the loss's gradient with respect to every h_t (d_hidden, batch x steps x H) to its gradient
// with respect to every gate before its activation (d_gates, batch x steps x 4H), which is also
// the gradient with respect to `inputs`, and to the bias's: d_bias (lstm_recurrence_bias_rows x
// 4H) gets partial sums of d_gates over windows and steps, whose column sums are the gradient.
// The gradient of W_hh is sum_t d_gates_t^T h_{t-1}, one GEMM for the caller.
cudaError_t lstm_recurrence_backward(const LstmRecurrenceShape& shape, const float* recurrent, const float* gates,
                                     const float* cells, const float* d_hidden, float* d_gates, float* d_bias,
                                     cudaStream_t stream);
// How many rows of partial bias sums lstm_recurrence_backward writes for this shape (one a cluster
// of the kernel; at most batch).
cudaError_t lstm_recurrence_bias_rows(const LstmRecurrenceShape& shape, int& rows);

}  // namespace gt::ml::cuda
