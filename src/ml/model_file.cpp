// The model file: LibTorch's archive holding the format's name, the spec as JSON and the weights;
// what is written is checked again when read, naming the file.
#include <ATen/autocast_mode.h>
#include <fmt/format.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "gt/atomic_file.hpp"
#include "gt/error.hpp"
#include "network.hpp"

namespace gt::ml {
namespace {

constexpr const char* kFormat = "gpt-trader-signal-model/1";

nlohmann::json spec_json(const ModelSpec& s) {
  return {{"model_type", s.config.model_type},
          {"hidden_dim", s.config.hidden_dim},
          {"num_layers", s.config.num_layers},
          {"dropout", s.config.dropout},
          {"sequence_length", s.data.sequence_length},
          {"features", s.data.features},
          {"label", label_name(s.data.label)},
          {"validation_fraction", s.data.validation_fraction},
          {"test_fraction", s.data.test_fraction},
          {"scaler_mean", s.scaler.mean},
          {"scaler_scale", s.scaler.scale},
          {"label_mean", s.scaler.label_mean},
          {"label_scale", s.scaler.label_scale},
          {"trained_on", s.trained_on}};
}

ModelSpec spec_from_json(const nlohmann::json& j) {
  ModelSpec s;
  s.config.model_type = j.at("model_type").get<std::string>();
  s.config.hidden_dim = j.at("hidden_dim").get<int>();
  s.config.num_layers = j.at("num_layers").get<int>();
  s.config.dropout = j.at("dropout").get<double>();
  s.data.sequence_length = j.at("sequence_length").get<std::size_t>();
  s.data.features = j.at("features").get<std::vector<std::string>>();
  s.data.label = parse_label(j.at("label").get<std::string>());
  s.data.validation_fraction = j.at("validation_fraction").get<double>();
  s.data.test_fraction = j.at("test_fraction").get<double>();
  s.scaler.mean = j.at("scaler_mean").get<std::vector<double>>();
  s.scaler.scale = j.at("scaler_scale").get<std::vector<double>>();
  s.scaler.label_mean = j.at("label_mean").get<double>();
  s.scaler.label_scale = j.at("label_scale").get<double>();
  s.trained_on = j.at("trained_on").get<std::string>();
  return s;
}

std::string shape_text(c10::IntArrayRef sizes) {
  std::string out = "[";
  for (std::size_t i = 0; i < sizes.size(); ++i) out += fmt::format("{}{}", i ? ", " : "", sizes[i]);
  return out + "]";
}

}  // namespace

void check_spec(const ModelSpec& s) {
  s.config.validate();
  if (s.data.features.empty()) throw ParamError("a model needs at least one feature");
  if (s.data.sequence_length < 1) throw ParamError("sequence_length must be at least 1");
  if (s.scaler.mean.size() != s.data.features.size() || s.scaler.scale.size() != s.data.features.size())
    throw ParamError(
        fmt::format("the scaler has {} features, the model {}", s.scaler.mean.size(), s.data.features.size()));
}

void TorchModel::save(const std::filesystem::path& path) const {
  torch::serialize::OutputArchive archive;
  archive.write("gt_format", c10::IValue(std::string(kFormat)));
  archive.write("gt_spec", c10::IValue(spec_json(spec_).dump()));
  torch::serialize::OutputArchive weights;
  {
    // Written from the CPU so that a file loads on any device.
    torch::NoGradGuard no_grad;
    for (const auto& p : net_->named_parameters()) weights.write(p.key(), p.value().to(torch::kCPU));
  }
  archive.write("weights", weights);
  std::ostringstream bytes;
  archive.save_to(bytes);
  write_file_atomically(path, bytes.str());
}

std::unique_ptr<TorchModel> load_model(const std::filesystem::path& path, std::string_view device) {
  const std::string file = path.string();
  if (!std::filesystem::exists(path)) throw Error(fmt::format("{}: no such model file", file));
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(file, torch::Device(torch::kCPU));
  } catch (const c10::Error&) {
    throw Error(fmt::format("{}: not a model file (expected one written by `gtrader train`)", file));
  }
  c10::IValue format, spec_text;
  if (!archive.try_read("gt_format", format) || !format.isString() || format.toStringRef() != kFormat)
    throw Error(fmt::format("{}: not a GPT-Trader model file of format {}", file, kFormat));
  if (!archive.try_read("gt_spec", spec_text) || !spec_text.isString())
    throw Error(fmt::format("{}: the model file has no spec", file));
  ModelSpec spec;
  try {
    spec = spec_from_json(nlohmann::json::parse(spec_text.toStringRef()));
    check_spec(spec);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: the model's spec is damaged: {}", file, e.what()));
  } catch (const ParamError& e) {
    throw Error(fmt::format("{}: the model's spec is invalid: {}", file, e.what()));
  }
  // Built on the CPU without reseeding the global generator: its initial weights are overwritten
  // below, then it moves to its device.
  auto model = std::make_unique<TorchModel>(spec, torch::Device(torch::kCPU));
  torch::serialize::InputArchive weights;
  if (!archive.try_read("weights", weights)) throw Error(fmt::format("{}: the model file holds no weights", file));
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model->net()->named_parameters()) {
      torch::Tensor stored;
      if (!weights.try_read(p.key(), stored))
        throw Error(fmt::format("{}: weight '{}' is missing for a {} of hidden_dim {} and {} layers", file, p.key(),
                                spec.config.model_type, spec.config.hidden_dim, spec.config.num_layers));
      if (stored.sizes() != p.value().sizes())
        throw Error(
            fmt::format("{}: weight '{}' has shape {}, but a {} of hidden_dim {}, {} layers and {} features "
                        "needs {}: the file does not match its own spec",
                        file, p.key(), shape_text(stored.sizes()), spec.config.model_type, spec.config.hidden_dim,
                        spec.config.num_layers, spec.data.features.size(), shape_text(p.value().sizes())));
      p.value().copy_(stored);
    }
  }
  model->place_on(torch::Device(torch_device(device)));
  return model;
}

}  // namespace gt::ml
