// The signal models' benchmark: the seed's case (LSTM 2 x 128, 5,000 training sequences
// of 60 bars x 5 features, batch 256) trained per precision, epoch times and validation losses;
// prediction rates from batch 1 to 65,536; a check that a model trained on the GPU predicts the
// same on the CPU after a save and a load; and one that fp32 training on the GPU follows the same
// losses as on the CPU from the same seed.
//   ml_bench --device cuda --json out.json        (bench/ml/run.sh runs it beside PyTorch)
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "gt/data.hpp"
#include "gt/ml.hpp"

namespace {

using Clock = std::chrono::steady_clock;
namespace ml = gt::ml;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? NAN : v[v.size() / 2];
}

ml::Samples slice(const ml::Dataset& d, std::size_t begin, std::size_t end) {
  ml::Samples s;
  s.sequence_length = d.sequence_length;
  s.features = d.features;
  s.labels = std::span<const float>(d.labels).subspan(begin, end - begin);
  s.values =
      std::span<const float>(d.rows).subspan(begin * d.features, (end - begin + d.sequence_length - 1) * d.features);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ml_bench: signal-model training and prediction rates"};
  std::string data_path = std::string(GT_DATA_DIR) + "/orcl-1995-2014.csv", device = "auto", json_path;
  std::vector<std::string> precisions{"fp32", "fp16", "bf16"};
  std::vector<std::size_t> batches{1, 4, 16, 256, 4096, 16384, 65536};
  int epochs = 15, hidden = 128, layers = 2;
  std::size_t train_samples = 5000;
  bool skip_predict = false, graphs_ab = true, check_training = true;
  app.add_option("--data", data_path);
  app.add_option("--device", device);
  app.add_option("--precisions", precisions)->delimiter(',');
  app.add_option("--batches", batches)->delimiter(',');
  app.add_option("--epochs", epochs);
  app.add_option("--hidden", hidden);
  app.add_option("--layers", layers);
  app.add_option("--train-samples", train_samples);
  app.add_flag("--skip-predict", skip_predict);
  app.add_option("--graphs-ab", graphs_ab, "also time fp32 training without CUDA graphs");
  app.add_option("--check-training", check_training, "compare fp32 training on the GPU with the CPU's");
  app.add_option("--json", json_path);
  // A/B in one build: LibTorch's cuDNN LSTM and AdamW instead of our kernels (TrainOptions).
  bool cudnn_lstm = false, libtorch_adamw = false;
  app.add_flag("--cudnn-lstm", cudnn_lstm, "fp32 training through cuDNN's LSTM instead of our recurrence kernels");
  app.add_flag("--libtorch-adamw", libtorch_adamw, "LibTorch's AdamW instead of our two optimizer kernels");
  // Data-parallel scaling: a model and batch large enough for two GPUs to matter.
  int dp_gpus = 0, dp_hidden = 512, dp_batch = 4096, dp_epochs = 4;
  std::size_t dp_samples = 60000;
  app.add_option("--dp-gpus", dp_gpus, "also time data-parallel training on 1..N GPUs");
  app.add_option("--dp-hidden", dp_hidden);
  app.add_option("--dp-batch", dp_batch);
  app.add_option("--dp-epochs", dp_epochs);
  app.add_option("--dp-train-samples", dp_samples);
  CLI11_PARSE(app, argc, argv);

  const std::string resolved = ml::resolve_device(device);
  const bool cuda = resolved.starts_with("cuda");
  // The seed's case: 5,000 training sequences of 60 bars, the next 15% of bars for validation.
  ml::DatasetOptions options;
  options.validation_fraction = 0.15;
  options.test_fraction = 0.0;
  const auto validation = static_cast<std::size_t>(static_cast<double>(train_samples) * 0.2);
  const gt::Bars bars = gt::bars_of_length(gt::load_csv(data_path), train_samples + validation + 100);
  const ml::Dataset data = ml::prepare_dataset(bars, options);
  const ml::Samples train = slice(data, 0, train_samples);
  const ml::Samples val = slice(data, train_samples, std::min(data.samples(), train_samples + validation));
  const ml::Samples none = slice(data, 0, 0);
  ml::ModelSpec spec;
  spec.config.hidden_dim = hidden;
  spec.config.num_layers = layers;
  spec.data = options;
  spec.scaler = data.scaler;
  spec.trained_on = bars.symbol;
  fmt::print("device {} | LSTM {} x {} | {} train, {} validation sequences of {} x {} | batch 256\n", resolved, layers,
             hidden, train.count(), val.count(), data.sequence_length, data.features);

  nlohmann::json out = {{"device", resolved},
                        {"hidden", hidden},
                        {"layers", layers},
                        {"train_samples", train.count()},
                        {"validation_samples", val.count()}};
  nlohmann::json training = nlohmann::json::array();
  std::optional<ml::SignalModel> trained;
  const auto train_one = [&](const std::string& precision_name, bool graphs) {
    ml::TrainOptions t;
    t.epochs = epochs;
    t.patience = 0;
    t.precision = ml::parse_precision(precision_name);
    t.cuda_graphs = graphs;
    t.own_lstm_recurrence = !cudnn_lstm;
    t.own_adamw = !libtorch_adamw;
    ml::SignalModel model(spec, 42, resolved);
    const auto report = model.train(train, val, none, t);
    std::vector<double> seconds;
    for (const auto& e : report.history)
      if (e.epoch > 1) seconds.push_back(e.seconds);  // the first epoch warms up (and captures)
    const double epoch_s = median(seconds);
    fmt::print(
        "train {:>4} graphs {:<3}: epoch {:8.2f} ms (first {:8.2f} ms)  best val loss {:.5f} (epoch {})  final "
        "train loss {:.5f}\n",
        precision_name, graphs ? "on" : "off", 1e3 * epoch_s, 1e3 * report.history.front().seconds,
        report.best_validation_loss, report.best_epoch, report.history.back().train_loss);
    std::fflush(stdout);
    training.push_back({{"precision", precision_name},
                        {"cuda_graphs", graphs},
                        {"epoch_ms", 1e3 * epoch_s},
                        {"first_epoch_ms", 1e3 * report.history.front().seconds},
                        {"samples_per_sec", static_cast<double>(train.count()) / epoch_s},
                        {"best_validation_loss", report.best_validation_loss},
                        {"final_train_loss", report.history.back().train_loss}});
    if (precision_name == "fp32" && (graphs || !cuda) && !trained) trained.emplace(std::move(model));
  };
  for (const auto& p : precisions) {
    if (p != "fp32" && !cuda) continue;
    train_one(p, true);
  }
  if (cuda && graphs_ab) train_one("fp32", false);
  out["training"] = training;

  if (cuda && check_training) {
    // The same network, seed, batches and learning rate (raised, so that the losses move) trained
    // in fp32 on the GPU and on the CPU: a wrong gradient anywhere shows in the later epochs' losses.
    ml::TrainOptions t;
    t.epochs = 3;
    t.patience = 0;
    t.learning_rate = 1e-2;
    const ml::Samples part = slice(data, 0, std::min<std::size_t>(2048, train.count()));
    ml::SignalModel on_gpu(spec, 7, resolved), on_cpu(spec, 7, "cpu");
    const auto a = on_gpu.train(part, val, none, t), b = on_cpu.train(part, val, none, t);
    double worst = 0;
    nlohmann::json losses = nlohmann::json::array();
    for (std::size_t e = 0; e < a.history.size() && e < b.history.size(); ++e) {
      worst = std::max(worst, std::abs(a.history[e].train_loss - b.history[e].train_loss));
      losses.push_back({a.history[e].train_loss, b.history[e].train_loss});
    }
    const auto pa = on_gpu.predict(val), pb = on_cpu.predict(val);
    double worst_prediction = 0;
    for (std::size_t i = 0; i < pa.size(); ++i)
      worst_prediction = std::max(worst_prediction, static_cast<double>(std::abs(pa[i] - pb[i])));
    fmt::print(
        "check: fp32 training {} vs cpu, {} sequences, 3 epochs: train losses {:.7f} / {:.7f} (last epoch), max "
        "|diff| {:.3g}; validation predictions max |diff| {:.3g}\n",
        resolved, part.count(), a.history.back().train_loss, b.history.back().train_loss, worst, worst_prediction);
    out["check_training_vs_cpu"] = {
        {"losses_gpu_cpu", losses}, {"max_abs_loss_diff", worst}, {"max_abs_prediction_diff", worst_prediction}};
  }

  if (!skip_predict && trained) {
    nlohmann::json predict = nlohmann::json::array();
    const ml::Dataset series_rows =
        ml::prediction_rows(gt::bars_of_length(gt::load_csv(data_path), 65536 + 100), options, data.scaler);
    const std::size_t window = data.sequence_length * data.features;
    for (const auto& p : precisions) {
      if (p != "fp32" && !cuda) continue;
      const ml::Precision precision = ml::parse_precision(p);
      for (const std::size_t batch : batches) {
        // Independent windows from host memory, as a live system would hand them over.
        std::vector<float> windows(batch * window), outputs(batch);
        for (std::size_t i = 0; i < batch; ++i) {
          const std::size_t start = (i % (data.samples() - 1)) * data.features;
          std::copy_n(data.rows.begin() + static_cast<std::ptrdiff_t>(start), window,
                      windows.begin() + static_cast<std::ptrdiff_t>(i * window));
        }
        trained->predict_into(windows, outputs, precision);  // captures
        int calls = 0;
        const auto start = Clock::now();
        double elapsed = 0;
        while (elapsed < 0.5 || calls < 5) {
          trained->predict_into(windows, outputs, precision);
          ++calls;
          elapsed = std::chrono::duration<double>(Clock::now() - start).count();
        }
        const double per_call = elapsed / calls;
        fmt::print("predict {:>4} batch {:>6}: {:10.1f} us per call  {:12.0f} predictions/s\n", p, batch,
                   1e6 * per_call, static_cast<double>(batch) / per_call);
        std::fflush(stdout);
        predict.push_back({{"precision", p},
                           {"batch", batch},
                           {"path", "predict_into"},
                           {"us_per_call", 1e6 * per_call},
                           {"predictions_per_sec", static_cast<double>(batch) / per_call}});
      }
      // A series of bars: windows overlap, so only the rows travel to the device.
      const ml::Samples rows{series_rows.rows, {}, series_rows.sequence_length, series_rows.features, true};
      const std::size_t series = rows.count();
      (void)trained->predict(rows, precision);
      int calls = 0;
      const auto start = Clock::now();
      double elapsed = 0;
      while (elapsed < 0.5 || calls < 5) {
        (void)trained->predict(rows, precision);
        ++calls;
        elapsed = std::chrono::duration<double>(Clock::now() - start).count();
      }
      fmt::print("predict {:>4} series of {} windows: {:12.0f} predictions/s\n", p, series,
                 static_cast<double>(series) * calls / elapsed);
      predict.push_back({{"precision", p},
                         {"batch", series},
                         {"path", "series"},
                         {"us_per_call", 1e6 * elapsed / calls},
                         {"predictions_per_sec", static_cast<double>(series) * calls / elapsed}});
    }
    out["predict"] = predict;

    // The same weights on the CPU after a save and a load.
    const std::string path = "/tmp/gt-ml-bench-model.pt";
    trained->save(path);
    const auto on_cpu = ml::SignalModel::load(path, "cpu");
    const auto a = trained->predict(val), b = on_cpu.predict(val);
    double worst = 0;
    for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, static_cast<double>(std::abs(a[i] - b[i])));
    fmt::print("check: {} validation predictions, {} vs cpu after save/load: max |diff| {:.3g}\n", a.size(), resolved,
               worst);
    out["check_max_abs_diff_vs_cpu"] = worst;
    // predict_into's captured graphs (LSTMs up to batch 32: the cluster kernel; past that in
    // fp16/bf16 the tensor-core kernel) against the same CPU model, on the first 64 validation
    // windows (512 at batch 256) in groups of the batch size.
    const std::size_t window_values = val.sequence_length * val.features;
    nlohmann::json checks = nlohmann::json::array();
    for (const auto& p : precisions) {
      if (p != "fp32" && !cuda) continue;
      for (const std::size_t batch : {std::size_t{1}, std::size_t{4}, std::size_t{16}, std::size_t{256}}) {
        double worst_graphed = 0;
        const std::size_t checked = std::min<std::size_t>(std::max<std::size_t>(64, 2 * batch), val.count());
        for (std::size_t group = 0; group + batch <= checked; group += batch) {
          std::vector<float> windows(batch * window_values), outputs(batch);
          for (std::size_t i = 0; i < batch; ++i) {
            const std::size_t first = (val.overlapping ? val.features : window_values) * (group + i);
            std::copy_n(val.values.begin() + static_cast<std::ptrdiff_t>(first), window_values,
                        windows.begin() + static_cast<std::ptrdiff_t>(i * window_values));
          }
          trained->predict_into(windows, outputs, ml::parse_precision(p));
          for (std::size_t i = 0; i < batch; ++i)
            worst_graphed = std::max(worst_graphed, static_cast<double>(std::abs(outputs[i] - b[group + i])));
        }
        fmt::print("check: predict_into {} batch {}, {} vs cpu: max |diff| {:.3g}\n", p, batch, resolved,
                   worst_graphed);
        checks.push_back({{"precision", p}, {"batch", batch}, {"max_abs_diff_vs_cpu", worst_graphed}});
      }
    }
    out["check_predict_into_vs_cpu"] = checks;
  }
  if (dp_gpus > 0) {
    ml::DatasetOptions dp_options;
    dp_options.validation_fraction = 0.1;
    dp_options.test_fraction = 0.0;
    const ml::Dataset dp_data =
        ml::prepare_dataset(gt::bars_of_length(gt::load_csv(data_path), dp_samples * 10 / 9 + 100), dp_options);
    ml::ModelSpec dp_spec;
    dp_spec.config.hidden_dim = dp_hidden;
    dp_spec.config.num_layers = layers;
    dp_spec.data = dp_options;
    dp_spec.scaler = dp_data.scaler;
    nlohmann::json scaling = nlohmann::json::array();
    double one_gpu = 0;
    for (int g = 1; g <= dp_gpus; ++g) {
      std::vector<std::string> devices;
      for (int i = 0; i < g; ++i) devices.push_back(fmt::format("cuda:{}", i));
      ml::TrainOptions t;
      t.epochs = dp_epochs;
      t.patience = 0;
      t.batch_size = dp_batch;
      t.precision = ml::parse_precision(precisions.front());
      ml::SignalModel model(dp_spec, 42, "cuda:0");
      const auto report = model.train_parallel(dp_data, t, devices);
      std::vector<double> rates;
      for (const auto& e : report.history)
        if (e.epoch > 1) rates.push_back(e.samples_per_second);
      const double rate = median(rates);
      if (g == 1) one_gpu = rate;
      fmt::print(
          "data-parallel {} GPU(s): LSTM {} x {}, global batch {}, {} samples: {:.0f} samples/s ({:.2f}x one "
          "GPU), best val loss {:.5f}\n",
          g, layers, dp_hidden, dp_batch, dp_data.train.size(), rate, rate / one_gpu, report.best_validation_loss);
      std::fflush(stdout);
      scaling.push_back({{"gpus", g},
                         {"samples_per_sec", rate},
                         {"speedup", rate / one_gpu},
                         {"best_validation_loss", report.best_validation_loss}});
    }
    out["data_parallel"] = scaling;
  }
  if (!json_path.empty()) std::ofstream(json_path) << out.dump(2) << "\n";
  return 0;
}
