// SignalModel's public face: every call goes to the LibTorch module (torch_module.hpp), loaded on
// the first call that needs it.
#include <dlfcn.h>
#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "gt/error.hpp"
#include "gt/ml.hpp"
#include "torch_module.hpp"

namespace gt::ml {
namespace {

#if defined(GT_TORCH)
constexpr const char* kModuleFile = "libgt_torch.so";
constexpr const char* kModuleVariable = "GT_TORCH_MODULE";

// $GT_TORCH_MODULE alone when it is set; else the module beside the file that holds this
// code (gtrader, the Python extension, a test program), then beside the running executable.
std::vector<std::filesystem::path> module_candidates() {
  if (const char* forced = std::getenv(kModuleVariable); forced && *forced) return {forced};
  std::vector<std::filesystem::path> out;
  Dl_info info{};
  // dladdr names the main program by its argv[0], which has no folder when it came from PATH.
  if (dladdr(reinterpret_cast<void*>(&module_candidates), &info) && info.dli_fname &&
      std::string_view(info.dli_fname).find('/') != std::string_view::npos)
    out.push_back(std::filesystem::path(info.dli_fname).parent_path() / kModuleFile);
  std::error_code error;
  const auto executable = std::filesystem::read_symlink("/proc/self/exe", error);
  if (!error) out.push_back(executable.parent_path() / kModuleFile);
  return out;
}
#endif

struct LoadedModule {
  const TorchModule* module = nullptr;
  std::string failure;  // why there is none
};

LoadedModule load_module() {
#if !defined(GT_TORCH)
  return {nullptr,
          "this build of GPT-Trader has no LibTorch, so it cannot train or run models: install PyPI's torch into the "
          "project's .venv (scripts/setup.sh does) and rebuild with -DGT_TORCH=ON"};
#else
  std::string tried;
  for (const auto& path : module_candidates()) {
    std::error_code error;
    if (!std::filesystem::exists(path, error)) {
      tried += fmt::format("\n  {}: no such file", path.string());
      continue;
    }
    // Never closed: the models it makes, and LibTorch's own state, live in it until exit.
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      tried += fmt::format("\n  {}: {}", path.string(), dlerror());
      continue;
    }
    using Entry = const TorchModule* (*)(int);
    const auto entry = reinterpret_cast<Entry>(dlsym(handle, "gt_torch_module"));
    const TorchModule* module = entry ? entry(kTorchModuleVersion) : nullptr;
    if (module) return {module, {}};
    tried += fmt::format("\n  {}: built from another version of GPT-Trader", path.string());
  }
  return {nullptr, fmt::format("the signal models need the LibTorch module {}, which could not be loaded (rebuild, or "
                               "set {} to its path); tried:{}",
                               kModuleFile, kModuleVariable, tried)};
#endif
}

const TorchModule& torch_module() {
  static const LoadedModule loaded = load_module();
  if (!loaded.module) throw Error(loaded.failure);
  return *loaded.module;
}

}  // namespace

bool torch_available() {
  try {
    torch_module();
    return true;
  } catch (const Error&) {
    return false;
  }
}
std::string resolve_device(std::string_view requested) {
  return torch_module().resolve_device(requested);
}
std::vector<std::string> resolve_gpus(std::string_view spec) {
  return torch_module().resolve_gpus(spec);
}

SignalModel::SignalModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SignalModel::SignalModel(const ModelSpec& spec, std::uint64_t seed, std::string_view device)
    : impl_(torch_module().create(spec, seed, device)) {}
SignalModel::SignalModel(SignalModel&&) noexcept = default;
SignalModel& SignalModel::operator=(SignalModel&&) noexcept = default;
SignalModel::~SignalModel() = default;

SignalModel SignalModel::load(const std::filesystem::path& path, std::string_view device) {
  return SignalModel(torch_module().load(path, device));
}
void SignalModel::save(const std::filesystem::path& path) const {
  impl_->save(path);
}
const ModelSpec& SignalModel::spec() const {
  return impl_->spec();
}
std::string SignalModel::device() const {
  return impl_->device();
}
TrainReport SignalModel::train(const Samples& train, const Samples& validation, const Samples& test,
                               const TrainOptions& options, const EpochCallback& on_epoch) {
  return impl_->train(train, validation, test, options, on_epoch);
}
TrainReport SignalModel::train(const Dataset& data, const TrainOptions& options, const EpochCallback& on_epoch) {
  return impl_->train(data, options, on_epoch);
}
TrainReport SignalModel::train_parallel(const Dataset& data, const TrainOptions& options,
                                        const std::vector<std::string>& devices, const EpochCallback& on_epoch) {
  return impl_->train_parallel(data, options, devices, on_epoch);
}
std::vector<float> SignalModel::predict(const Samples& samples, Precision precision, std::size_t batch_size) const {
  return impl_->predict(samples, precision, batch_size);
}
std::vector<double> SignalModel::predict_bars(const Bars& bars, Precision precision) const {
  return impl_->predict_bars(bars, precision);
}
void SignalModel::predict_into(std::span<const float> windows, std::span<float> out, Precision precision) {
  impl_->predict_into(windows, out, precision);
}

}  // namespace gt::ml
