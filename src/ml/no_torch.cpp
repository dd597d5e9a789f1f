// Builds without LibTorch: every model entry point says how to get one.
#include "gt/error.hpp"
#include "gt/ml.hpp"

namespace gt::ml {
namespace {

[[noreturn]] void no_torch() {
  throw Error(
      "this gtrader was built without LibTorch, so it cannot train or run models: install PyPI's torch into the "
      "project's .venv (scripts/setup.sh does) and rebuild with -DGT_TORCH=ON");
}

}  // namespace

struct SignalModel::Impl {};

bool torch_available() {
  return false;
}
std::string resolve_device(std::string_view) {
  no_torch();
}
SignalModel::SignalModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SignalModel::SignalModel(const ModelSpec&, std::uint64_t, std::string_view) {
  no_torch();
}
SignalModel::SignalModel(SignalModel&&) noexcept = default;
SignalModel& SignalModel::operator=(SignalModel&&) noexcept = default;
SignalModel::~SignalModel() = default;
SignalModel SignalModel::load(const std::filesystem::path&, std::string_view) {
  no_torch();
}
void SignalModel::save(const std::filesystem::path&) const {
  no_torch();
}
const ModelSpec& SignalModel::spec() const {
  no_torch();
}
std::string SignalModel::device() const {
  no_torch();
}
TrainReport SignalModel::train(const Samples&, const Samples&, const Samples&, const TrainOptions&,
                               const std::function<void(const EpochReport&)>&) {
  no_torch();
}
TrainReport SignalModel::train(const Dataset&, const TrainOptions&, const std::function<void(const EpochReport&)>&) {
  no_torch();
}
std::vector<float> SignalModel::predict(const Samples&, Precision, std::size_t) const {
  no_torch();
}
std::vector<double> SignalModel::predict_bars(const Bars&, Precision) const {
  no_torch();
}
void SignalModel::predict_into(std::span<const float>, std::span<float>, Precision) {
  no_torch();
}

}  // namespace gt::ml
