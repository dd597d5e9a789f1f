// The CUDA engine's entry points in a build without CUDA (-DGT_CUDA=OFF or no nvcc): every call
// says how to get it, so `--device auto` falls back to the CPU and `--device cuda` fails clearly.
#include "gt/error.hpp"
#include "gt/gpu.hpp"

namespace gt {

namespace {
constexpr const char* kWhy =
    "this gtrader was built without CUDA (configure with -DGT_CUDA=ON where nvcc is installed)";
}

bool cuda_available(std::string* why) {
  if (why) *why = kWhy;
  return false;
}

std::string cuda_devices() {
  return kWhy;
}

std::vector<int> parse_gpus(const std::string&) {
  throw Error({"gpus"}, std::string("gpus: ") + kWhy);
}

std::unique_ptr<CudaEvaluator> make_cuda_evaluator(const Bars&, const Grid&, const ExecutionOptions&,
                                                   const std::vector<int>&) {
  throw Error({"device"}, std::string("device cuda: ") + kWhy);
}

}  // namespace gt
