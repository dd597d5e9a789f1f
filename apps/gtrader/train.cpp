#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "gt/error.hpp"
#include "gt/ml.hpp"

namespace gtrader {
namespace {

struct TrainCommand {
  DataOptions data;
  gt::ml::ModelConfig model;
  gt::ml::DatasetOptions dataset;
  gt::ml::TrainOptions train;
  std::string label = "direction", precision = "fp32", device = "auto", gpus, out;
  std::vector<std::string> features;
  bool no_cuda_graphs = false, json = false;
};

nlohmann::json report_json(const gt::ml::TrainReport& r, const std::string& out) {
  nlohmann::json history = nlohmann::json::array();
  for (const auto& e : r.history)
    history.push_back({{"epoch", e.epoch},
                       {"train_loss", e.train_loss},
                       {"validation_loss", e.validation_loss},
                       {"validation_accuracy", e.validation_accuracy},
                       {"seconds", e.seconds},
                       {"samples_per_sec", e.samples_per_second}});
  // NaN (no test part, or return labels' accuracy) is written as null.
  const auto number = [](double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); };
  return {{"model", out},
          {"device", r.device},
          {"train_samples", r.train_samples},
          {"validation_samples", r.validation_samples},
          {"test_samples", r.test_samples},
          {"epochs", r.history.size()},
          {"best_epoch", r.best_epoch},
          {"best_validation_loss", number(r.best_validation_loss)},
          {"stopped_early", r.stopped_early},
          {"test_loss", number(r.test_loss)},
          {"test_accuracy", number(r.test_accuracy)},
          {"history", history}};
}

void run(TrainCommand& c) {
  c.model.validate();
  c.train.precision = gt::ml::parse_precision(c.precision);
  c.train.cuda_graphs = !c.no_cuda_graphs;
  c.train.validate();
  c.dataset.label = gt::ml::parse_label(c.label);
  if (!c.features.empty()) c.dataset.features = c.features;
  // --gpus: data-parallel over those GPUs (the first is rank 0, which validates and saves).
  const std::vector<std::string> replicas = c.gpus.empty() ? std::vector<std::string>{} : gt::ml::resolve_gpus(c.gpus);
  const std::string device = replicas.empty() ? gt::ml::resolve_device(c.device) : replicas.front();
  gt::ml::check_training_precision(c.train.precision, device);
  const auto symbols = c.data.load();
  if (symbols.size() != 1)
    throw gt::ParamError(fmt::format("train takes one symbol's data, got {}; give one --data file", symbols.size()));
  const gt::Bars& bars = symbols.front();
  const gt::ml::Dataset data = gt::ml::prepare_dataset(bars, c.dataset);

  std::FILE* progress = c.json ? stderr : stdout;
  if (replicas.size() > 1)
    fmt::print(progress, "devices: {} GPUs, data-parallel (NCCL all-reduce), global batch {}\n", replicas.size(),
               c.train.batch_size);
  else
    fmt::print(progress, "device: {}{}\n", device,
               c.device == "auto" && c.gpus.empty() ? " (auto: CUDA, then MPS, then CPU)" : "");
  fmt::print(progress, "data: {} ({} bars): {} train, {} validation, {} test samples of {} bars x {} features\n",
             bars.symbol, bars.size(), data.train.size(), data.validation.size(), data.test.size(),
             data.sequence_length, data.features);
  fmt::print(progress, "model: {} {} x {}, precision {}, batch {}, AdamW lr {}\n", c.model.model_type,
             c.model.num_layers, c.model.hidden_dim, c.precision, c.train.batch_size, c.train.learning_rate);
  std::fflush(progress);

  gt::ml::ModelSpec spec{c.model, data.options, data.scaler, bars.symbol};
  gt::ml::SignalModel model(spec, c.train.seed, device);
  const bool direction = c.dataset.label == gt::ml::Label::kDirection;
  const auto print_epoch = [&](const gt::ml::EpochReport& e) {
    const std::string accuracy = direction && !std::isnan(e.validation_accuracy)
                                     ? fmt::format("  val acc {:5.1f}%", 100 * e.validation_accuracy)
                                     : std::string();
    fmt::print(progress, "epoch {:>4}/{}  train loss {:.5f}  val loss {:.5f}{}  {:.2f} s  {:.0f} samples/s{}\n",
               e.epoch, c.train.epochs, e.train_loss, e.validation_loss, accuracy, e.seconds, e.samples_per_second,
               e.improved ? "  *" : "");
    std::fflush(progress);
  };
  const auto report = replicas.size() > 1 ? model.train_parallel(data, c.train, replicas, print_epoch)
                                          : model.train(data, c.train, print_epoch);
  model.save(c.out);
  if (c.json) {
    fmt::print("{}\n", report_json(report, c.out).dump(2));
    return;
  }
  fmt::print("best epoch {} (validation loss {:.5f}){}; test loss {:.5f}{}\n", report.best_epoch,
             report.best_validation_loss, report.stopped_early ? ", stopped early" : "", report.test_loss,
             direction ? fmt::format(", test accuracy {:.1f}%", 100 * report.test_accuracy) : std::string());
  fmt::print("model written to {}\n", c.out);
}

}  // namespace

void add_train(CLI::App& app) {
  auto c = std::make_shared<TrainCommand>();
  CLI::App* cmd = app.add_subcommand("train", "Train an LSTM/GRU signal model on one symbol's bars");
  c->data.add_to(*cmd);
  cmd->add_option("--model", c->model.model_type, "lstm or gru")->capture_default_str();
  cmd->add_option("--hidden", c->model.hidden_dim, "Units per recurrent layer")->capture_default_str();
  cmd->add_option("--layers", c->model.num_layers, "Recurrent layers")->capture_default_str();
  cmd->add_option("--dropout", c->model.dropout, "Dropout between recurrent layers")->capture_default_str();
  cmd->add_option("--seq-len", c->dataset.sequence_length, "Bars per input window")->capture_default_str();
  cmd->add_option("--features", c->features, "Comma-separated features (default return,range,gap,volume_z,rsi)")
      ->delimiter(',');
  cmd->add_option("--label", c->label, "direction (P(next close up)) or return (next close-to-close return)")
      ->capture_default_str();
  cmd->add_option("--validation", c->dataset.validation_fraction, "Fraction of samples for validation (in time order)")
      ->capture_default_str();
  cmd->add_option("--test", c->dataset.test_fraction, "Fraction of samples held out for the final test")
      ->capture_default_str();
  cmd->add_option("--epochs", c->train.epochs, "Most epochs to train")->capture_default_str();
  cmd->add_option("--batch-size", c->train.batch_size, "Samples per step")->capture_default_str();
  cmd->add_option("--lr", c->train.learning_rate, "AdamW learning rate")->capture_default_str();
  cmd->add_option("--weight-decay", c->train.weight_decay, "AdamW weight decay")->capture_default_str();
  cmd->add_option("--patience", c->train.patience,
                  "Stop after this many epochs without a better validation loss (0: never)")
      ->capture_default_str();
  cmd->add_option("--clip", c->train.max_grad_norm, "Clip gradients to this global norm (0: off)")
      ->capture_default_str();
  cmd->add_option("--seed", c->train.seed, "Seed of the initial weights, shuffling and dropout")->capture_default_str();
  cmd->add_option("--precision", c->precision, "fp32, fp16 (loss scaling) or bf16; fp16/bf16 need CUDA")
      ->capture_default_str();
  cmd->add_option("--device", c->device, "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")
      ->capture_default_str();
  cmd->add_option("--gpus", c->gpus, "all or 0,1: data-parallel training over these GPUs (NCCL all-reduce)");
  cmd->add_flag("--no-cuda-graphs", c->no_cuda_graphs, "Launch every step's kernels instead of replaying a graph");
  cmd->add_option("--out", c->out, "Model file to write (atomically)")->required()->check(output_file());
  cmd->add_flag("--json", c->json, "Print the training report as JSON (epoch lines go to stderr)");
  cmd->callback([c] { run(*c); });
}

}  // namespace gtrader
