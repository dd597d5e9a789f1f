// Devices as LibTorch sees them: "auto", "cpu", "cuda[:N]", "mps", and the `gpus` list.
#include <ATen/autocast_mode.h>
#include <fmt/format.h>
#include <torch/torch.h>

#include "gt/error.hpp"
#include "gt/gpu.hpp"
#include "network.hpp"

namespace gt::ml {

std::string torch_device(std::string_view requested) {
  if (requested == "auto") {
    if (torch::cuda::is_available()) return "cuda:0";
    if (torch::mps::is_available()) return "mps";
    return "cpu";
  }
  if (requested == "cpu") return "cpu";
  if (requested == "mps") {
    if (!torch::mps::is_available()) throw Error("device 'mps' was asked for, but this machine has no MPS device");
    return "mps";
  }
  if (requested == "cuda" || requested.starts_with("cuda:")) {
    if (!torch::cuda::is_available())
      throw Error({"device"},
                  fmt::format("device '{}' was asked for, but LibTorch sees no CUDA GPU here; use device cpu or auto",
                              requested));
    int index = 0;
    if (requested.size() > 5) {
      const std::string digits(requested.substr(5));
      if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos)
        throw ParamError(fmt::format("device '{}': expected cuda:N with N a GPU index", requested));
      index = std::stoi(digits);
    }
    const auto count = static_cast<int>(torch::cuda::device_count());
    if (index >= count)
      throw Error(fmt::format("device '{}' was asked for, but this machine has {} CUDA GPU(s)", requested, count));
    return fmt::format("cuda:{}", index);
  }
  throw ParamError(fmt::format("unknown device '{}'; allowed: auto, cpu, cuda, cuda:N, mps", requested));
}

std::vector<std::string> torch_gpus(std::string_view spec) {
  const auto count = static_cast<int>(torch::cuda::is_available() ? torch::cuda::device_count() : 0);
  if (count == 0) throw Error({"gpus"}, fmt::format("gpus {} was asked for, but LibTorch sees no CUDA GPU here", spec));
  std::vector<std::string> devices;
  for (const int gpu : parse_gpu_list(std::string(spec), count)) {
    devices.push_back(fmt::format("cuda:{}", gpu));
    if (std::count(devices.begin(), devices.end(), devices.back()) > 1)
      throw ParamError({"gpus"}, fmt::format("gpus {}: GPU {} is named twice", spec, gpu));
  }
  return devices;
}

}  // namespace gt::ml
