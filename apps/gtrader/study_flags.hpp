// The flags of every command that runs studies (optimize, walkforward): threads and device, the
// store (cache, journal, resume), the size check, and the engine (this machine, or a Ray cluster
// through the Python package).
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "commands.hpp"
#include "gt/study.hpp"

namespace gtrader {

// The request's strategy (a built-in, or rules with their JSON form) and its grid from --strategy,
// --strategy-file or inline rules, --grid, --grid-file and --param.
void resolve_strategy_and_grid(const StrategyChoice& strategy, const std::vector<std::string>& grid,
                               const std::vector<std::string>& fixed, const std::string& grid_file,
                               gt::StudyRequest& request);

struct StudyFlags {
  int threads = 0;
  std::string device = "cpu", gpus = "all";
  bool reference = false, no_progress = false;
  std::string cache_location;  // a folder or redis://...; empty: the cache folder
  std::string cache_dir;
  bool no_cache = false, resume = false, force = false;
  std::string engine = "local", address, workers, chunk_size;

  void add_to(CLI::App& cmd);
  // Threads, device, GPUs, reference and progress into the request's ranking; its store and force.
  void apply(gt::StudyRequest& request) const;
  bool on_ray() const { return engine == "ray"; }
  // --engine ray: `task` (the library's JSON request as "study", the command's own keys beside
  // it) goes to the Python package's Ray executor (gpt_trader.ray_study) with the data inputs and
  // the Ray settings; it prints what this command prints. Does not return unless exec fails.
  [[noreturn]] void hand_over_to_ray(const DataOptions& data, nlohmann::ordered_json task) const;
};

}  // namespace gtrader
