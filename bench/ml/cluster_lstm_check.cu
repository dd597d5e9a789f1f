// Our LSTM kernels (src/ml/cuda/cluster_lstm.cu for small batches, batched_lstm.cu for large ones
// in fp16/bf16) on their own, without LibTorch: outputs against a double-precision reference for
// several shapes and batches, then their times per call at the seed's shape (LSTM 2 x 128, 60
// steps of 5 features): the large-batch kernel alone from batch 256 up, the small-batch one from
// batch 1 up, alone and end to end as `predict_into` runs it (pinned input copied in, kernel,
// output copied out, one CUDA graph, timed on the host). Exit status 1 when any check fails.
// `--check-only` skips the timing; `--profile` only launches the large-batch kernel at batch 4,096
// (for ncu); `--time-batched` only times the large-batch kernel (for A/B runs of two builds).
//   nvcc -O3 -std=c++20 -arch=sm_90 -Isrc/ml/cuda bench/ml/cluster_lstm_check.cu
//     src/ml/cuda/cluster_lstm.cu src/ml/cuda/batched_lstm.cu
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "batched_lstm.hpp"
#include "cluster_lstm.hpp"
#include "exit_on_cuda_error.hpp"

namespace {

namespace gc = gt::ml::cuda;

struct Network {
  gc::ClusterLstmShape shape;
  std::vector<std::vector<float>> input, recurrent, input_bias, recurrent_bias;
  std::vector<float> head;  // H weights, then the bias
};

Network random_network(const gc::ClusterLstmShape& shape, std::mt19937& rng) {
  const int H = shape.hidden;
  std::uniform_real_distribution<float> u(-1.0f / std::sqrt(static_cast<float>(H)),
                                          1.0f / std::sqrt(static_cast<float>(H)));
  Network n{shape, {}, {}, {}, {}, {}};
  for (int l = 0; l < shape.layers; ++l) {
    const int inputs = l == 0 ? shape.features : H;
    auto fill = [&](std::size_t count) {
      std::vector<float> v(count);
      for (float& x : v) x = u(rng);
      return v;
    };
    n.input.push_back(fill(static_cast<std::size_t>(4 * H * inputs)));
    n.recurrent.push_back(fill(static_cast<std::size_t>(4 * H * H)));
    n.input_bias.push_back(fill(static_cast<std::size_t>(4 * H)));
    n.recurrent_bias.push_back(fill(static_cast<std::size_t>(4 * H)));
  }
  n.head = [&] {
    std::vector<float> v(static_cast<std::size_t>(H + 1));
    for (float& x : v) x = u(rng);
    return v;
  }();
  return n;
}

// PyTorch's LSTM (gates i, f, g, o) in double, then the head on the last step; windows on all cores.
std::vector<double> reference(const Network& n, const std::vector<float>& windows, int batch) {
  const auto& s = n.shape;
  const int H = s.hidden;
  std::vector<double> out(static_cast<std::size_t>(batch));
  const auto one = [&](int b) {
    std::vector<std::vector<double>> h(static_cast<std::size_t>(s.layers), std::vector<double>(H)), c = h;
    for (int t = 0; t < s.steps; ++t) {
      std::vector<double> x(windows.begin() + (static_cast<std::size_t>(b) * s.steps + t) * s.features,
                            windows.begin() + (static_cast<std::size_t>(b) * s.steps + t + 1) * s.features);
      for (int l = 0; l < s.layers; ++l) {
        const int inputs = static_cast<int>(x.size());
        std::vector<double> gates(static_cast<std::size_t>(4 * H));
        for (int r = 0; r < 4 * H; ++r) {
          double g = n.input_bias[l][r] + n.recurrent_bias[l][r];
          for (int k = 0; k < inputs; ++k) g += n.input[l][r * inputs + k] * x[k];
          for (int k = 0; k < H; ++k) g += n.recurrent[l][r * H + k] * h[l][k];
          gates[r] = g;
        }
        const auto sig = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
        for (int k = 0; k < H; ++k) {
          c[l][k] = sig(gates[H + k]) * c[l][k] + sig(gates[k]) * std::tanh(gates[2 * H + k]);
          h[l][k] = sig(gates[3 * H + k]) * std::tanh(c[l][k]);
        }
        x = h[l];
      }
    }
    double y = n.head[H];
    for (int k = 0; k < H; ++k) y += n.head[k] * h[s.layers - 1][k];
    out[b] = y;
  };
  const int workers = std::max(1, std::min(batch, static_cast<int>(std::thread::hardware_concurrency())));
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w)
    threads.emplace_back([&, w] {
      for (int b = w; b < batch; b += workers) one(b);
    });
  for (auto& t : threads) t.join();
  return out;
}

struct DeviceNetwork {
  float *weights = nullptr, *biases = nullptr, *head = nullptr;
};

DeviceNetwork upload(const Network& n) {
  std::vector<gc::LstmLayerWeights> layers;
  for (int l = 0; l < n.shape.layers; ++l)
    layers.push_back({n.input[l].data(), n.recurrent[l].data(), n.input_bias[l].data(), n.recurrent_bias[l].data()});
  const gc::ClusterLstmWeights packed = gc::cluster_lstm_pack(n.shape, layers);
  DeviceNetwork d;
  check(cudaMalloc(&d.weights, packed.weights.size() * sizeof(float)), "cudaMalloc");
  check(cudaMalloc(&d.biases, packed.biases.size() * sizeof(float)), "cudaMalloc");
  check(cudaMalloc(&d.head, n.head.size() * sizeof(float)), "cudaMalloc");
  check(cudaMemcpy(d.weights, packed.weights.data(), packed.weights.size() * sizeof(float), cudaMemcpyHostToDevice),
        "copy");
  check(cudaMemcpy(d.biases, packed.biases.data(), packed.biases.size() * sizeof(float), cudaMemcpyHostToDevice),
        "copy");
  check(cudaMemcpy(d.head, n.head.data(), n.head.size() * sizeof(float), cudaMemcpyHostToDevice), "copy");
  return d;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct DeviceBatched {
  void* weights = nullptr;
  float *biases = nullptr, *head = nullptr;
};

DeviceBatched upload_batched(const Network& n, gc::HalfFormat format) {
  std::vector<gc::LstmLayerWeights> layers;
  for (int l = 0; l < n.shape.layers; ++l)
    layers.push_back({n.input[l].data(), n.recurrent[l].data(), n.input_bias[l].data(), n.recurrent_bias[l].data()});
  const gc::BatchedLstmWeights packed = gc::batched_lstm_pack(n.shape, layers, format);
  DeviceBatched d;
  check(cudaMalloc(&d.weights, packed.weights.size() * sizeof(std::uint16_t)), "cudaMalloc");
  check(cudaMalloc(&d.biases, packed.biases.size() * sizeof(float)), "cudaMalloc");
  check(cudaMalloc(&d.head, n.head.size() * sizeof(float)), "cudaMalloc");
  check(cudaMemcpy(d.weights, packed.weights.data(), packed.weights.size() * sizeof(std::uint16_t),
                   cudaMemcpyHostToDevice),
        "copy");
  check(cudaMemcpy(d.biases, packed.biases.data(), packed.biases.size() * sizeof(float), cudaMemcpyHostToDevice),
        "copy");
  check(cudaMemcpy(d.head, n.head.data(), n.head.size() * sizeof(float), cudaMemcpyHostToDevice), "copy");
  return d;
}

// The large-batch kernel in fp16 and bf16: contiguous windows, and the overlapping windows of a
// series (stride of one row); within 5e-3 (fp16) or 3e-2 (bf16) of the reference, and finite.
int check_batched(std::mt19937& rng, cudaStream_t stream) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  int failures = 0;
  const gc::ClusterLstmShape shapes[] = {
      {5, 128, 2, 60}, {5, 128, 1, 60}, {16, 128, 2, 30}, {9, 128, 2, 3}, {1, 128, 2, 1}};
  for (const auto& shape : shapes) {
    const Network net = random_network(shape, rng);
    const DeviceBatched formats[] = {upload_batched(net, gc::HalfFormat::kFp16),
                                     upload_batched(net, gc::HalfFormat::kBf16)};
    // Batches split into clusters of 1 to 4 tiles of 16 windows (batched_lstm.cu, batch_split):
    // 8,390 windows are full waves and a last one of clusters of 2 tiles on an H200 (30 at once).
    for (const int batch : {1, 64, 65, 129, 1000, 8390}) {
      if (batch > 1000 && shape.steps > 3) continue;  // the reference's time
      for (const bool series : {false, true}) {
        const int F = shape.features, T = shape.steps;
        const std::size_t rows = series ? static_cast<std::size_t>(batch + T - 1) : static_cast<std::size_t>(batch) * T;
        std::vector<float> values(rows * F);
        for (float& x : values) x = normal(rng);
        std::vector<float> windows(static_cast<std::size_t>(batch) * T * F);
        for (int b = 0; b < batch; ++b)
          std::copy_n(values.begin() + static_cast<std::ptrdiff_t>(series ? b * F : b * T * F), T * F,
                      windows.begin() + static_cast<std::ptrdiff_t>(b) * T * F);
        const std::vector<double> want = reference(net, windows, batch);
        float *in = nullptr, *out = nullptr;
        check(cudaMalloc(&in, values.size() * sizeof(float)), "cudaMalloc");
        check(cudaMalloc(&out, batch * sizeof(float)), "cudaMalloc");
        check(cudaMemcpy(in, values.data(), values.size() * sizeof(float), cudaMemcpyHostToDevice), "copy");
        for (const gc::HalfFormat format : {gc::HalfFormat::kFp16, gc::HalfFormat::kBf16}) {
          const bool bf16 = format == gc::HalfFormat::kBf16;
          const DeviceBatched& d = formats[bf16 ? 1 : 0];
          check(cudaMemset(out, 0xff, batch * sizeof(float)), "memset");  // NaN where nothing is written
          check(gc::batched_lstm_forward(shape, format, d.weights, d.biases, d.head, in, series ? F : T * F, batch, out,
                                         stream),
                "batched launch");
          check(cudaStreamSynchronize(stream), "batched kernel");
          std::vector<float> got(static_cast<std::size_t>(batch));
          check(cudaMemcpy(got.data(), out, got.size() * sizeof(float), cudaMemcpyDeviceToHost), "copy");
          double worst = 0;
          bool finite = true;
          for (int b = 0; b < batch; ++b) {
            finite = finite && std::isfinite(got[b]);
            worst = std::max(worst, std::abs(got[b] - want[b]));
          }
          const bool ok = finite && worst <= (bf16 ? 3e-2 : 5e-3);
          failures += !ok;
          std::printf("check batched %s F=%d H=128 L=%d T=%d batch %d%s: max |diff| %.3g %s\n", bf16 ? "bf16" : "fp16",
                      F, shape.layers, T, batch, series ? " (series)" : "", finite ? worst : NAN, ok ? "ok" : "FAILED");
        }
        cudaFree(in);
        cudaFree(out);
      }
    }
  }
  return failures;
}

// Predictions a second of the large-batch kernel at the seed's shape, windows already on the GPU
// (as PyTorch's peer has them), the kernel timed by events (median of `calls` after a first one).
// A negative batch is a series.
void time_batched(std::mt19937& rng, cudaStream_t stream, const std::vector<gc::HalfFormat>& formats,
                  const std::vector<int>& batches, int calls) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const gc::ClusterLstmShape seed{5, 128, 2, 60};
  const Network net = random_network(seed, rng);
  for (const gc::HalfFormat format : formats) {
    const DeviceBatched d = upload_batched(net, format);
    for (const int batch : batches) {
      const bool series = batch < 0;
      const int n = series ? -batch : batch;
      const std::size_t values = series ? static_cast<std::size_t>(n + 59) * 5 : static_cast<std::size_t>(n) * 300;
      std::vector<float> host(values);
      for (float& x : host) x = normal(rng);
      float *in = nullptr, *out = nullptr;
      check(cudaMalloc(&in, values * sizeof(float)), "cudaMalloc");
      check(cudaMalloc(&out, n * sizeof(float)), "cudaMalloc");
      check(cudaMemcpy(in, host.data(), values * sizeof(float), cudaMemcpyHostToDevice), "copy");
      cudaEvent_t start, stop;
      cudaEventCreate(&start);
      cudaEventCreate(&stop);
      std::vector<double> us;
      for (int i = 0; i <= calls; ++i) {
        cudaEventRecord(start, stream);
        check(gc::batched_lstm_forward(seed, format, d.weights, d.biases, d.head, in, series ? 5 : 300, n, out, stream),
              "batched launch");
        cudaEventRecord(stop, stream);
        check(cudaEventSynchronize(stop), "batched kernel");
        float ms = 0;
        cudaEventElapsedTime(&ms, start, stop);
        if (i > 0) us.push_back(ms * 1e3);
      }
      const double m = median(us);
      std::printf("time batched %s H=128 L=2 T=60 %s %6d: kernel %9.1f us, %.3g predictions/s\n",
                  format == gc::HalfFormat::kBf16 ? "bf16" : "fp16", series ? "series" : "batch", n, m, n / (m * 1e-6));
      cudaEventDestroy(start);
      cudaEventDestroy(stop);
      cudaFree(in);
      cudaFree(out);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  const bool timing = mode != "--check-only";
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  int failures = 0;
  const gc::ClusterLstmShape shapes[] = {
      {5, 128, 2, 60}, {5, 128, 1, 60}, {5, 128, 3, 20}, {16, 64, 2, 30}, {1, 64, 1, 7}};
  check(gc::cluster_lstm_fits({5, 128, 2, 60}, 1), "a cluster of 16 blocks on this GPU");
  cudaStream_t stream;
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
  if (mode == "--profile") {  // one launch of the large-batch kernel, for a profiler
    time_batched(rng, stream, {gc::HalfFormat::kFp16}, {4096}, 1);
    return 0;
  }
  if (mode == "--time-batched") {  // the large-batch kernel's timings alone, for A/B runs
    time_batched(rng, stream, {gc::HalfFormat::kFp16, gc::HalfFormat::kBf16},
                 {256, 1920, 3840, 16384, 61440, 65536, 262144, -65558}, 30);
    return 0;
  }
  for (const auto& shape : shapes) {
    const Network net = random_network(shape, rng);
    const DeviceNetwork d = upload(net);
    for (const int batch : {1, 3, 4, 16, 37, 1000}) {
      if (gc::cluster_lstm_windows_per_cluster(shape, batch) == 0) continue;
      std::vector<float> windows(static_cast<std::size_t>(batch) * shape.steps * shape.features);
      for (float& x : windows) x = normal(rng);
      float *in = nullptr, *out = nullptr;
      check(cudaMalloc(&in, windows.size() * sizeof(float)), "cudaMalloc");
      check(cudaMalloc(&out, batch * sizeof(float)), "cudaMalloc");
      check(cudaMemcpy(in, windows.data(), windows.size() * sizeof(float), cudaMemcpyHostToDevice), "copy");
      check(gc::cluster_lstm_forward(shape, d.weights, d.biases, d.head, in, batch, out, stream), "launch");
      check(cudaStreamSynchronize(stream), "kernel");
      std::vector<float> got(static_cast<std::size_t>(batch));
      check(cudaMemcpy(got.data(), out, got.size() * sizeof(float), cudaMemcpyDeviceToHost), "copy");
      const std::vector<double> want = reference(net, windows, batch);
      double worst = 0;
      for (int b = 0; b < batch; ++b) worst = std::max(worst, std::abs(got[b] - want[b]));
      const bool ok = worst <= 1e-5;
      failures += !ok;
      std::printf("check F=%d H=%d L=%d T=%d batch %d: max |diff| %.3g %s\n", shape.features, shape.hidden,
                  shape.layers, shape.steps, batch, worst, ok ? "ok" : "FAILED");
      cudaFree(in);
      cudaFree(out);
    }
  }

  check(gc::batched_lstm_fits({5, 128, 2, 60}, gc::HalfFormat::kFp16), "a cluster of the batched kernel");
  failures += check_batched(rng, stream);
  if (timing)
    time_batched(rng, stream, {gc::HalfFormat::kFp16, gc::HalfFormat::kBf16},
                 {256, 1920, 3840, 16384, 61440, 65536, 262144, -65558}, 30);

  // Timing at the seed's shape.
  if (!timing) {
    std::printf("%s\n", failures ? "FAILED" : "all checks passed");
    return failures ? 1 : 0;
  }
  const gc::ClusterLstmShape seed{5, 128, 2, 60};
  const Network net = random_network(seed, rng);
  const DeviceNetwork d = upload(net);
  for (const int batch : {1, 2, 4, 16, 64, 256, 1024}) {
    if (gc::cluster_lstm_windows_per_cluster(seed, batch) == 0) continue;
    const std::size_t values = static_cast<std::size_t>(batch) * seed.steps * seed.features;
    float *host_in = nullptr, *host_out = nullptr, *in = nullptr, *out = nullptr;
    check(cudaMallocHost(&host_in, values * sizeof(float)), "pinned");
    check(cudaMallocHost(&host_out, batch * sizeof(float)), "pinned");
    for (std::size_t i = 0; i < values; ++i) host_in[i] = normal(rng);
    check(cudaMalloc(&in, values * sizeof(float)), "cudaMalloc");
    check(cudaMalloc(&out, batch * sizeof(float)), "cudaMalloc");
    check(cudaMemcpy(in, host_in, values * sizeof(float), cudaMemcpyHostToDevice), "copy");
    cudaGraph_t kernel_graph, full_graph;
    cudaGraphExec_t kernel_exec, full_exec;
    check(gc::cluster_lstm_forward(seed, d.weights, d.biases, d.head, in, batch, out, stream), "warm-up");
    check(cudaStreamSynchronize(stream), "warm-up");
    check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "capture");
    check(gc::cluster_lstm_forward(seed, d.weights, d.biases, d.head, in, batch, out, stream), "launch");
    check(cudaStreamEndCapture(stream, &kernel_graph), "capture");
    check(cudaGraphInstantiate(&kernel_exec, kernel_graph, 0), "instantiate");
    check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "capture");
    check(cudaMemcpyAsync(in, host_in, values * sizeof(float), cudaMemcpyHostToDevice, stream), "copy");
    check(gc::cluster_lstm_forward(seed, d.weights, d.biases, d.head, in, batch, out, stream), "launch");
    check(cudaMemcpyAsync(host_out, out, batch * sizeof(float), cudaMemcpyDeviceToHost, stream), "copy");
    check(cudaStreamEndCapture(stream, &full_graph), "capture");
    check(cudaGraphInstantiate(&full_exec, full_graph, 0), "instantiate");
    cudaEvent_t start, stop;
    cudaEventCreate(&start);
    cudaEventCreate(&stop);
    std::vector<double> kernel_us, full_us;
    for (int i = 0; i < 300; ++i) {
      cudaEventRecord(start, stream);
      cudaGraphLaunch(kernel_exec, stream);
      cudaEventRecord(stop, stream);
      check(cudaEventSynchronize(stop), "replay");
      float ms = 0;
      cudaEventElapsedTime(&ms, start, stop);
      kernel_us.push_back(ms * 1e3);
    }
    for (int i = 0; i < 300; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      cudaGraphLaunch(full_exec, stream);
      check(cudaStreamSynchronize(stream), "replay");
      full_us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    }
    const double k = median(kernel_us), f = median(full_us);
    std::printf("time H=128 L=2 T=60 batch %5d: kernel %8.1f us, end to end %8.1f us, %.3g predictions/s\n", batch, k,
                f, batch / (f * 1e-6));
    cudaGraphExecDestroy(kernel_exec);
    cudaGraphExecDestroy(full_exec);
    cudaGraphDestroy(kernel_graph);
    cudaGraphDestroy(full_graph);
    cudaFreeHost(host_in);
    cudaFreeHost(host_out);
    cudaFree(in);
    cudaFree(out);
  }
  std::printf("%s\n", failures ? "FAILED" : "all checks passed");
  return failures ? 1 : 0;
}
