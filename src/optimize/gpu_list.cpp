// The `gpus` list ("all" or ordinals such as 0,1) for every engine that runs on GPUs, whoever counts the devices.
#include <sstream>
#include <string>
#include <vector>

#include "gt/error.hpp"
#include "gt/gpu.hpp"

namespace gt {

std::vector<int> parse_gpu_list(const std::string& spec, int count) {
  std::vector<int> gpus;
  if (spec.empty() || spec == "all") {
    for (int i = 0; i < count; ++i) gpus.push_back(i);
    return gpus;
  }
  std::stringstream in(spec);
  for (std::string item; std::getline(in, item, ',');) {
    int value = -1;
    try {
      value = std::stoi(item);
    } catch (const std::exception&) {
    }
    if (value < 0 || value >= count)
      throw ParamError({"gpus"}, "gpus " + spec + ": '" + item + "' is not a GPU of this machine (allowed: all" +
                                     (count > 0 ? ", or 0.." + std::to_string(count - 1) : "; none is visible") + ")");
    gpus.push_back(value);
  }
  return gpus;
}

std::vector<int> gpus_for(std::string_view device, const std::string& spec) {
  if (device == "cpu" || !cuda_available()) return {};
  return parse_gpus(spec);
}

}  // namespace gt
