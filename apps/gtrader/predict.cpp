#include <fmt/format.h>

#include <cmath>
#include <memory>

#include "commands.hpp"
#include "gt/atomic_file.hpp"
#include "gt/error.hpp"
#include "gt/ml.hpp"

namespace gtrader {
namespace {

struct PredictCommand {
  DataOptions data;
  std::string model_path, out, precision = "fp32", device = "auto";
};

void run(PredictCommand& c) {
  const gt::ml::Precision precision = gt::ml::parse_precision(c.precision);
  const auto model = gt::ml::SignalModel::load(c.model_path, c.device);
  const auto symbols = c.data.load();
  const bool many = symbols.size() > 1;
  const bool direction = model.spec().data.label == gt::ml::Label::kDirection;
  std::string csv = fmt::format("{}time,{}\n", many ? "symbol," : "", direction ? "p_up" : "expected_return");
  for (const auto& bars : symbols) {
    const auto outputs = model.predict_bars(bars, precision);
    for (std::size_t t = 0; t < bars.size(); ++t) {
      if (std::isnan(outputs[t])) continue;  // no full window ends here
      csv += fmt::format("{}{},{}\n", many ? gt::csv_field(bars.symbol) + "," : "",
                         gt::format_time(bars.time[t], bars.intraday), gt::csv_number(outputs[t]));
    }
  }
  if (c.out.empty()) {
    fmt::print("{}", csv);
  } else {
    gt::write_file_atomically(c.out, csv);
  }
}

}  // namespace

void add_predict(CLI::App& app) {
  auto c = std::make_shared<PredictCommand>();
  CLI::App* cmd = app.add_subcommand(
      "predict", "A trained model's output for every bar where a full window ends (P(up) or expected return)");
  cmd->add_option("--model", c->model_path, "Model file from `gtrader train`")->required();
  c->data.add_to(*cmd);
  cmd->add_option("--out", c->out, "Write the CSV to this file (atomically) instead of stdout")->check(output_file());
  cmd->add_option("--precision", c->precision, "fp32, fp16 or bf16 (fp16/bf16 need CUDA)")->capture_default_str();
  cmd->add_option("--device", c->device, "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")
      ->capture_default_str();
  cmd->callback([c] { run(*c); });
}

}  // namespace gtrader
