// The CUDA grid engine: ma_cross combinations evaluated on one or several GPUs, every metric
// reduced on the device by the same formulas as the CPU engine (finalize_metrics). Built with
// -DGT_CUDA=ON (the default when nvcc is found); without it, or without a GPU at run time,
// cuda_available() is false and make_cuda_evaluator says why.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gt/optimize.hpp"

namespace gt {

// True when this build has the CUDA engine and a GPU is visible; `why` says what is missing.
bool cuda_available(std::string* why = nullptr);
// "2 x NVIDIA H100 80GB HBM3 (sm_90)" or the reason there is none.
std::string cuda_devices();
// Parses "all" or "0,1" into device ordinals (empty: all); throws ParamError for unknown ones.
std::vector<int> parse_gpus(const std::string& spec);
// The GPUs `spec` names for a run on `device` (cpu, cuda, auto): none for the CPU, or where no
// GPU can be used (the engine then says why, or falls back with auto).
std::vector<int> gpus_for(std::string_view device, const std::string& spec);
// The same against `count` devices, whoever counted them (the CUDA engine, or LibTorch).
std::vector<int> parse_gpu_list(const std::string& spec, int count);

class CudaEvaluator : public Evaluator {
 public:
  // Seconds the last evaluate() spent in the kernel alone (device events), for benchmarks.
  virtual double last_kernel_seconds() const = 0;
  // The moving averages one of its GPUs computed, [type][bar][period] for the grid's MA types and
  // periods in ascending order (for checks against ind::ma_many).
  virtual std::vector<double> moving_average_table(std::size_t gpu_index) const = 0;
  // Bars per kernel launch: 0 runs every pair over all bars in one launch; otherwise launches of
  // that many bars each, every pair's state carried from one to the next. Chosen when the
  // evaluator is built (segments when the float table is larger than the GPU's L2); checks force
  // short segments to test that path on small data.
  virtual int segment_bars() const = 0;
  virtual void set_segment_bars(int bars) = 0;
};

// Throws ParamError when the strategy or options are outside what the kernel reproduces exactly
// (ma_cross, long-only, whole-equity entries), and Error when no GPU can be used.
std::unique_ptr<CudaEvaluator> make_cuda_evaluator(const Bars& bars, const Grid& grid, const ExecutionOptions& options,
                                                   const std::vector<int>& gpus);

}  // namespace gt
