// The fp32 training recurrence (src/ml/cuda/lstm_training.cu) on its own, without LibTorch: the
// forward kernel's h, c and gates and the backward kernel's gate and bias gradients against a
// double-precision reference, for hidden 64 and 128 and batches that take each windows-a-cluster
// variant; then the time of one layer's forward and backward at the seed's shape (hidden 128, 60
// steps) per batch. Exit status 1 when any check fails. `--check-only` skips the timing.
//   nvcc -O3 -std=c++20 -arch=sm_90 -Isrc/ml/cuda bench/ml/lstm_training_check.cu
//     src/ml/cuda/lstm_training.cu
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "exit_on_cuda_error.hpp"
#include "lstm_training.hpp"

namespace {

namespace gc = gt::ml::cuda;

struct Reference {
  std::vector<double> hidden, cells, gates, d_gates, d_bias;
};

// PyTorch's LSTM recurrence (gates i, f, g, o; zero initial state) and its backward pass through
// time, in double, windows on all cores.
Reference reference(const gc::LstmRecurrenceShape& s, const std::vector<float>& inputs, const std::vector<float>& bias,
                    const std::vector<float>& recurrent, const std::vector<float>& d_hidden) {
  const int H = s.hidden, T = s.steps;
  Reference r;
  const std::size_t n = static_cast<std::size_t>(s.batch) * T;
  r.hidden.resize(n * H);
  r.cells.resize(n * H);
  r.gates.resize(n * 4 * H);
  r.d_gates.resize(n * 4 * H);
  const auto sig = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
  const auto one = [&](int b) {
    const std::size_t base = static_cast<std::size_t>(b) * T;
    std::vector<double> h(H, 0.0), c(H, 0.0);
    for (int t = 0; t < T; ++t) {
      const std::size_t at = base + t;
      double* g = &r.gates[at * 4 * H];
      for (int row = 0; row < 4 * H; ++row) {
        double v = static_cast<double>(inputs[at * 4 * H + row]) + bias[row];
        for (int k = 0; k < H; ++k) v += static_cast<double>(recurrent[row * H + k]) * h[k];
        g[row] = row / H == 2 ? std::tanh(v) : sig(v);
      }
      for (int k = 0; k < H; ++k) {
        c[k] = g[H + k] * c[k] + g[k] * g[2 * H + k];
        h[k] = g[3 * H + k] * std::tanh(c[k]);
        r.cells[at * H + k] = c[k];
        r.hidden[at * H + k] = h[k];
      }
    }
    std::vector<double> dh_next(H, 0.0), dc_next(H, 0.0);
    for (int t = T - 1; t >= 0; --t) {
      const std::size_t at = base + t;
      const double* g = &r.gates[at * 4 * H];
      double* d = &r.d_gates[at * 4 * H];
      for (int k = 0; k < H; ++k) {
        const double dh = d_hidden[at * H + k] + dh_next[k];
        const double tc = std::tanh(r.cells[at * H + k]);
        const double c_before = t > 0 ? r.cells[(at - 1) * H + k] : 0.0;
        const double i = g[k], f = g[H + k], gg = g[2 * H + k], o = g[3 * H + k];
        const double dc = dh * o * (1 - tc * tc) + dc_next[k];
        d[k] = dc * gg * i * (1 - i);
        d[H + k] = dc * c_before * f * (1 - f);
        d[2 * H + k] = dc * i * (1 - gg * gg);
        d[3 * H + k] = dh * tc * o * (1 - o);
        dc_next[k] = dc * f;
      }
      for (int k = 0; k < H; ++k) {
        double v = 0;
        for (int row = 0; row < 4 * H; ++row) v += static_cast<double>(recurrent[row * H + k]) * d[row];
        dh_next[k] = v;
      }
    }
  };
  const int workers = std::max(1, std::min(s.batch, static_cast<int>(std::thread::hardware_concurrency())));
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w)
    threads.emplace_back([&, w] {
      for (int b = w; b < s.batch; b += workers) one(b);
    });
  for (auto& t : threads) t.join();
  r.d_bias.assign(4 * H, 0.0);
  for (std::size_t at = 0; at < n; ++at)
    for (int row = 0; row < 4 * H; ++row) r.d_bias[row] += r.d_gates[at * 4 * H + row];
  return r;
}

std::vector<float> download(const float* p, std::size_t count) {
  std::vector<float> v(count);
  check(cudaMemcpy(v.data(), p, count * sizeof(float), cudaMemcpyDeviceToHost), "cudaMemcpy");
  return v;
}

struct Device {
  float *inputs = nullptr, *bias = nullptr, *recurrent = nullptr, *hidden = nullptr, *cells = nullptr;
  float *gates = nullptr, *d_hidden = nullptr, *d_gates = nullptr, *d_bias = nullptr;
  int bias_rows = 0;
  explicit Device(const gc::LstmRecurrenceShape& s) {
    const std::size_t n = static_cast<std::size_t>(s.batch) * s.steps, H = static_cast<std::size_t>(s.hidden);
    check(gc::lstm_recurrence_bias_rows(s, bias_rows), "lstm_recurrence_bias_rows");
    for (auto [p, count] : {std::pair{&inputs, n * 4 * H},
                            {&bias, 4 * H},
                            {&d_bias, static_cast<std::size_t>(bias_rows) * 4 * H},
                            {&recurrent, 4 * H * H},
                            {&hidden, n * H},
                            {&cells, n * H},
                            {&gates, n * 4 * H},
                            {&d_hidden, n * H},
                            {&d_gates, n * 4 * H}})
      check(cudaMalloc(p, count * sizeof(float)), "cudaMalloc");
  }
  ~Device() {
    for (float* p : {inputs, bias, recurrent, hidden, cells, gates, d_hidden, d_gates, d_bias}) cudaFree(p);
  }
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;
  void forward(const gc::LstmRecurrenceShape& s, cudaStream_t stream) const {
    check(gc::lstm_recurrence_forward(s, inputs, bias, recurrent, hidden, cells, gates, stream), "forward");
  }
  void backward(const gc::LstmRecurrenceShape& s, cudaStream_t stream) const {
    check(gc::lstm_recurrence_backward(s, recurrent, gates, cells, d_hidden, d_gates, d_bias, stream), "backward");
  }
  // The bias gradient: the kernel's partial sums added up.
  std::vector<float> bias_gradient(const gc::LstmRecurrenceShape& s) const {
    const std::size_t rows = 4 * static_cast<std::size_t>(s.hidden);
    const std::vector<float> partial = download(d_bias, static_cast<std::size_t>(bias_rows) * rows);
    std::vector<float> sum(rows, 0.0f);
    for (std::size_t i = 0; i < partial.size(); ++i) sum[i % rows] += partial[i];
    return sum;
  }
};

// The largest |a - b| over the largest |b| (1 where b is all zeros).
double relative_error(const std::vector<float>& a, const std::vector<double>& b) {
  double worst = 0, scale = 0;
  for (std::size_t i = 0; i < b.size(); ++i) {
    worst = std::max(worst, std::abs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return worst / (scale > 0 ? scale : 1.0);
}

int check_shape(const gc::LstmRecurrenceShape& s, std::mt19937& rng, cudaStream_t stream) {
  const std::size_t n = static_cast<std::size_t>(s.batch) * s.steps, H = static_cast<std::size_t>(s.hidden);
  const float bound = 1.0f / std::sqrt(static_cast<float>(H));
  std::uniform_real_distribution<float> weight(-bound, bound), input(-1.0f, 1.0f), grad(-0.1f, 0.1f);
  std::vector<float> inputs(n * 4 * H), bias(4 * H), recurrent(4 * H * H), d_hidden(n * H);
  for (float& v : inputs) v = input(rng);
  for (float& v : bias) v = weight(rng);
  for (float& v : recurrent) v = weight(rng);
  for (float& v : d_hidden) v = grad(rng);
  const Device d(s);
  check(cudaMemcpy(d.inputs, inputs.data(), inputs.size() * sizeof(float), cudaMemcpyHostToDevice), "copy");
  check(cudaMemcpy(d.bias, bias.data(), bias.size() * sizeof(float), cudaMemcpyHostToDevice), "copy");
  check(cudaMemcpy(d.recurrent, recurrent.data(), recurrent.size() * sizeof(float), cudaMemcpyHostToDevice), "copy");
  check(cudaMemcpy(d.d_hidden, d_hidden.data(), d_hidden.size() * sizeof(float), cudaMemcpyHostToDevice), "copy");
  d.forward(s, stream);
  d.backward(s, stream);
  check(cudaStreamSynchronize(stream), "the kernels");
  const Reference r = reference(s, inputs, bias, recurrent, d_hidden);
  const double errors[5] = {
      relative_error(download(d.hidden, n * H), r.hidden), relative_error(download(d.cells, n * H), r.cells),
      relative_error(download(d.gates, n * 4 * H), r.gates), relative_error(download(d.d_gates, n * 4 * H), r.d_gates),
      relative_error(d.bias_gradient(s), r.d_bias)};
  // fp32 rounding over 60 steps of H-term sums: about 1e-6 measured; 1e-4 leaves room, and a wrong
  // index or a missed exchange shows as 1e-2 or more.
  const bool ok = *std::max_element(errors, errors + 5) < 1e-4;
  std::printf(
      "check lstm_training hidden %3d steps %2d batch %5d: h %.2e c %.2e gates %.2e d_gates %.2e d_bias %.2e %s\n",
      s.hidden, s.steps, s.batch, errors[0], errors[1], errors[2], errors[3], errors[4], ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void time_shape(const gc::LstmRecurrenceShape& s, cudaStream_t stream) {
  const Device d(s);
  check(cudaMemset(d.inputs, 0, static_cast<std::size_t>(s.batch) * s.steps * 4 * s.hidden * sizeof(float)), "set");
  check(cudaMemset(d.recurrent, 0, 4ull * s.hidden * s.hidden * sizeof(float)), "set");
  check(cudaMemset(d.bias, 0, 4ull * s.hidden * sizeof(float)), "set");
  check(cudaMemset(d.d_hidden, 0, static_cast<std::size_t>(s.batch) * s.steps * s.hidden * sizeof(float)), "set");
  cudaEvent_t start, middle, stop;
  check(cudaEventCreate(&start), "event");
  check(cudaEventCreate(&middle), "event");
  check(cudaEventCreate(&stop), "event");
  for (int i = 0; i < 5; ++i) d.forward(s, stream), d.backward(s, stream);
  std::vector<double> forward, backward;
  for (int i = 0; i < 50; ++i) {
    check(cudaEventRecord(start, stream), "record");
    d.forward(s, stream);
    check(cudaEventRecord(middle, stream), "record");
    d.backward(s, stream);
    check(cudaEventRecord(stop, stream), "record");
    check(cudaEventSynchronize(stop), "sync");
    float a = 0, b = 0;
    check(cudaEventElapsedTime(&a, start, middle), "elapsed");
    check(cudaEventElapsedTime(&b, middle, stop), "elapsed");
    forward.push_back(1e3 * a);
    backward.push_back(1e3 * b);
  }
  std::printf("time lstm_training hidden %d steps %d batch %5d: forward %7.1f us  backward %7.1f us (one layer)\n",
              s.hidden, s.steps, s.batch, median(forward), median(backward));
  cudaEventDestroy(start);
  cudaEventDestroy(middle);
  cudaEventDestroy(stop);
}

}  // namespace

int main(int argc, char** argv) {
  const bool timing = !(argc > 1 && std::string(argv[1]) == "--check-only");
  cudaStream_t stream;
  check(cudaStreamCreate(&stream), "cudaStreamCreate");
  check(gc::lstm_recurrence_fits({128, 60, 256}), "placing a cluster of the training kernels");
  std::mt19937 rng(7);
  int failures = 0;
  // Batches that take 4, 8 and 16 windows a cluster on an H100 or H200, partial clusters, and the
  // shortest sequences (one step: no exchange at all; two: one of each buffer).
  for (const int hidden : {64, 128})
    for (const int batch : {1, 5, 256, 300, 1000}) failures += check_shape({hidden, 60, batch}, rng, stream);
  for (const int steps : {1, 2, 3}) failures += check_shape({128, steps, 9}, rng, stream);
  if (failures == 0 && timing)
    for (const int batch : {256, 1024, 4096}) time_shape({128, 60, batch}, stream);
  cudaStreamDestroy(stream);
  std::printf("%s\n", failures ? "lstm_training_check: FAILED" : "lstm_training_check: all checks passed");
  return failures ? 1 : 0;
}
