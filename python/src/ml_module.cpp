// gpt_trader._core's signal models: datasets as NumPy arrays, SignalModel as a class. Training and
// prediction release the GIL.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/vector.h>

#include <cmath>

#include "bindings.hpp"
#include "gt/error.hpp"
#include "gt/ml.hpp"
#include "owned_array.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

namespace ml = gt::ml;
using gt_python::owned_array;

using InWindows = nb::ndarray<const float, nb::ndim<3>, nb::c_contig, nb::device::cpu>;
using InLabels = nb::ndarray<const float, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

nb::dict scaler_dict(const ml::Scaler& s) {
  nb::dict d;
  d["mean"] = s.mean;
  d["scale"] = s.scale;
  d["label_mean"] = s.label_mean;
  d["label_scale"] = s.label_scale;
  return d;
}

ml::ModelSpec spec_from(const nb::dict& d) {
  ml::ModelSpec s;
  s.config.model_type = nb::cast<std::string>(d["model_type"]);
  s.config.hidden_dim = nb::cast<int>(d["hidden_dim"]);
  s.config.num_layers = nb::cast<int>(d["num_layers"]);
  s.config.dropout = nb::cast<double>(d["dropout"]);
  s.data.sequence_length = nb::cast<std::size_t>(d["sequence_length"]);
  s.data.features = nb::cast<std::vector<std::string>>(d["features"]);
  s.data.label = ml::parse_label(nb::cast<std::string>(d["label"]));
  s.data.validation_fraction = nb::cast<double>(d["validation_fraction"]);
  s.data.test_fraction = nb::cast<double>(d["test_fraction"]);
  const nb::dict scaler = nb::cast<nb::dict>(d["scaler"]);
  s.scaler.mean = nb::cast<std::vector<double>>(scaler["mean"]);
  s.scaler.scale = nb::cast<std::vector<double>>(scaler["scale"]);
  s.scaler.label_mean = nb::cast<double>(scaler["label_mean"]);
  s.scaler.label_scale = nb::cast<double>(scaler["label_scale"]);
  s.trained_on = nb::cast<std::string>(d["trained_on"]);
  return s;
}

nb::dict spec_dict(const ml::ModelSpec& s) {
  nb::dict d;
  d["model_type"] = s.config.model_type;
  d["hidden_dim"] = s.config.hidden_dim;
  d["num_layers"] = s.config.num_layers;
  d["dropout"] = s.config.dropout;
  d["sequence_length"] = s.data.sequence_length;
  d["features"] = s.data.features;
  d["label"] = std::string(ml::label_name(s.data.label));
  d["validation_fraction"] = s.data.validation_fraction;
  d["test_fraction"] = s.data.test_fraction;
  d["scaler"] = scaler_dict(s.scaler);
  d["trained_on"] = s.trained_on;
  return d;
}

ml::TrainOptions train_options(const nb::dict& d) {
  ml::TrainOptions o;
  for (auto [key, value] : d) {
    const std::string k = nb::cast<std::string>(key);
    if (k == "epochs")
      o.epochs = nb::cast<int>(value);
    else if (k == "batch_size")
      o.batch_size = nb::cast<int>(value);
    else if (k == "learning_rate")
      o.learning_rate = nb::cast<double>(value);
    else if (k == "weight_decay")
      o.weight_decay = nb::cast<double>(value);
    else if (k == "patience")
      o.patience = nb::cast<int>(value);
    else if (k == "max_grad_norm")
      o.max_grad_norm = nb::cast<double>(value);
    else if (k == "seed")
      o.seed = nb::cast<std::uint64_t>(value);
    else if (k == "precision")
      o.precision = ml::parse_precision(nb::cast<std::string>(value));
    else if (k == "cuda_graphs")
      o.cuda_graphs = nb::cast<bool>(value);
    else
      throw gt::ParamError("unknown training option '" + k +
                           "'; allowed: epochs, batch_size, learning_rate, weight_decay, patience, max_grad_norm, "
                           "seed, precision, cuda_graphs");
  }
  return o;
}

// Windows [begin, end) of X (independent windows, no labels).
ml::Samples windows_of(const InWindows& x, std::size_t begin, std::size_t end) {
  const std::size_t window = x.shape(1) * x.shape(2);
  ml::Samples s;
  s.values = std::span<const float>(x.data() + begin * window, (end - begin) * window);
  s.sequence_length = x.shape(1);
  s.features = x.shape(2);
  s.overlapping = false;
  return s;
}

nb::dict report_dict(const ml::TrainReport& r) {
  nb::list history;
  for (const auto& e : r.history) {
    nb::dict h;
    h["epoch"] = e.epoch;
    h["train_loss"] = e.train_loss;
    h["validation_loss"] = e.validation_loss;
    h["validation_accuracy"] = e.validation_accuracy;
    h["seconds"] = e.seconds;
    h["samples_per_sec"] = e.samples_per_second;
    history.append(h);
  }
  nb::dict d;
  d["device"] = r.device;
  d["history"] = history;
  d["best_epoch"] = r.best_epoch;
  d["best_validation_loss"] = r.best_validation_loss;
  d["stopped_early"] = r.stopped_early;
  d["test_loss"] = r.test_loss;
  d["test_accuracy"] = r.test_accuracy;
  d["train_samples"] = r.train_samples;
  d["validation_samples"] = r.validation_samples;
  d["test_samples"] = r.test_samples;
  return d;
}

}  // namespace

namespace gt_python {

void bind_ml(nb::module_& m) {
  m.def("torch_available", &ml::torch_available, "Whether this build has LibTorch (the signal models).");
  m.def(
      "resolve_device", [](const std::string& d) { return ml::resolve_device(d); }, "device"_a);
  m.def("feature_names", [] {
    std::vector<std::string> names;
    for (const auto& f : ml::feature_catalog()) names.push_back(f.name);
    return names;
  });
  m.def("default_features", [] { return ml::default_features(); });

  m.def(
      "prepare_dataset",
      [](const gt::Bars& bars, std::size_t sequence_length, std::vector<std::string> features, const std::string& label,
         double validation_fraction, double test_fraction) {
        ml::DatasetOptions o;
        o.sequence_length = sequence_length;
        if (!features.empty()) o.features = std::move(features);
        o.label = ml::parse_label(label);
        o.validation_fraction = validation_fraction;
        o.test_fraction = test_fraction;
        ml::Dataset d;
        std::vector<float> windows;
        {
          nb::gil_scoped_release release;
          d = ml::prepare_dataset(bars, o);
          windows = d.windows({0, d.samples()});
        }
        std::vector<std::int64_t> end_time(d.samples());
        for (std::size_t i = 0; i < d.samples(); ++i) end_time[i] = bars.time[d.end_bar(i)];
        nb::dict out;
        const std::size_t n = d.samples();
        out["X"] = owned_array<float, 3>(std::move(windows), {n, d.sequence_length, d.features});
        out["y"] = owned_array<float, 1>(d.labels, {n});
        out["end_time"] = owned_array<std::int64_t, 1>(std::move(end_time), {n});
        out["train"] = nb::make_tuple(d.train.begin, d.train.end);
        out["validation"] = nb::make_tuple(d.validation.begin, d.validation.end);
        out["test"] = nb::make_tuple(d.test.begin, d.test.end);
        out["features"] = o.features;
        out["scaler"] = scaler_dict(d.scaler);
        return out;
      },
      "bars"_a, "sequence_length"_a, "features"_a, "label"_a, "validation_fraction"_a, "test_fraction"_a);

  nb::class_<ml::SignalModel>(m, "SignalModel", "An LSTM/GRU signal model on LibTorch")
      .def(
          "__init__",
          [](ml::SignalModel* self, const nb::dict& spec, std::uint64_t seed, const std::string& device) {
            new (self) ml::SignalModel(spec_from(spec), seed, device);
          },
          "spec"_a, "seed"_a, "device"_a = "auto")
      .def_static(
          "load",
          [](const std::string& path, const std::string& device) { return ml::SignalModel::load(path, device); },
          "path"_a, "device"_a = "auto")
      .def(
          "save", [](const ml::SignalModel& s, const std::string& path) { s.save(path); }, "path"_a)
      .def_prop_ro("device", &ml::SignalModel::device)
      .def_prop_ro("spec", [](const ml::SignalModel& s) { return spec_dict(s.spec()); })
      .def(
          "train",
          [](ml::SignalModel& self, InWindows x, InLabels y, std::size_t train_end, std::size_t validation_end,
             const nb::dict& options) {
            const std::size_t n = x.shape(0);
            if (y.shape(0) != n)
              throw gt::ParamError("X has " + std::to_string(n) + " samples but y has " + std::to_string(y.shape(0)));
            if (!(train_end <= validation_end && validation_end <= n))
              throw gt::ParamError("splits must satisfy train_end <= validation_end <= samples");
            const ml::TrainOptions o = train_options(options);
            const auto part = [&](std::size_t begin, std::size_t end) {
              ml::Samples s = windows_of(x, begin, end);
              s.labels = std::span<const float>(y.data() + begin, end - begin);
              return s;
            };
            ml::TrainReport r;
            {
              nb::gil_scoped_release release;
              r = self.train(part(0, train_end), part(train_end, validation_end), part(validation_end, n), o);
            }
            return report_dict(r);
          },
          "X"_a, "y"_a, "train_end"_a, "validation_end"_a, "options"_a)
      .def(
          "predict",
          [](const ml::SignalModel& self, InWindows x, const std::string& precision, std::size_t batch_size) {
            std::vector<float> out;
            {
              nb::gil_scoped_release release;
              out = self.predict(windows_of(x, 0, x.shape(0)), ml::parse_precision(precision), batch_size);
            }
            const std::size_t n = out.size();
            return owned_array<float, 1>(std::move(out), {n});
          },
          "X"_a, "precision"_a = "fp32", "batch_size"_a = 0)
      .def(
          "predict_bars",
          [](const ml::SignalModel& self, const gt::Bars& bars, const std::string& precision) {
            std::vector<double> out;
            {
              nb::gil_scoped_release release;
              out = self.predict_bars(bars, ml::parse_precision(precision));
            }
            const std::size_t n = out.size();
            return owned_array<double, 1>(std::move(out), {n});
          },
          "bars"_a, "precision"_a = "fp32");
}

}  // namespace gt_python
