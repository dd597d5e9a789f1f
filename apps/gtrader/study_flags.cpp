#include "study_flags.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "gt/cache.hpp"
#include "gt/error.hpp"
#include "gt/gpu.hpp"
#include "gt/rules.hpp"

namespace gtrader {

void resolve_strategy_and_grid(const StrategyChoice& strategy, const std::vector<std::string>& grid,
                               const std::vector<std::string>& fixed, const std::string& grid_file,
                               gt::StudyRequest& request) {
  strategy.require_one();
  if (strategy.is_rules()) {
    if (!strategy.entry.empty() && !grid_file.empty())
      throw gt::ParamError(
          "inline rules take their parameters from --param and --grid; with --grid-file, write the "
          "rules in a --strategy-file");
    const gt::rules::RuleTexts texts = strategy.rules(split_assignments(fixed), grid);
    request.rule_strategy = gt::rules::compile(texts);
    request.rules = gt::rules::rules_json(texts);
  }
  const gt::Strategy& chosen = request.rule_strategy ? *request.rule_strategy : gt::find_strategy(strategy.name);
  request.grid.emplace(
      gt::parse_grid(chosen, grid, grid_file.empty() ? std::nullopt : std::optional<std::filesystem::path>(grid_file),
                     split_assignments(fixed)));
}

void StudyFlags::add_to(CLI::App& cmd) {
  cmd.add_option("--threads", threads, "Worker threads (0: all cores)")
      ->check(CLI::Range(0, 4096).description("0 to 4096"));
  cmd.add_flag("--no-progress", no_progress, "No progress bar, even on a terminal");
  cmd.add_option("--device", device, "cpu, cuda (the GPU engine) or auto (CUDA when a GPU is present)")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  cmd.add_option("--gpus", gpus, "With --device cuda: all, or GPU ordinals such as 0,1 (all)");
  cmd.add_flag("--reference", reference, "Use the reference engine for every combination (slow; for checks)");
  cmd.add_option("--cache", cache_location,
                 "Result cache: a folder, or redis://[[user]:password@]host[:port][/db] shared by every worker")
      ->envname("GT_CACHE");
  cmd.add_option("--cache-dir", cache_dir, "Folder of the on-disk cache and run journals (~/.cache/gpt-trader)");
  cmd.add_flag("--no-cache", no_cache, "Neither read nor feed the result cache (the run is still journaled)");
  cmd.add_flag("--force", force,
               "Start even when the study's estimated memory or disk use exceeds what this machine has free");
  cmd.add_flag("--resume", resume,
               "Continue an interrupted run: only missing combinations are computed (always so with the cache on)");
  cmd.add_option("--engine", engine, "local (this machine's cores) or ray (a Ray cluster, via Python)")
      ->check(CLI::IsMember({"local", "ray"}));
  cmd.add_option("--address", address, "Ray cluster address (with --engine ray; default: start a local one)");
  const auto positive_or_auto = [](bool allow_auto) {
    return CLI::Validator(
        [allow_auto](std::string& text) -> std::string {
          if (allow_auto && text == "auto") return {};
          long long value = 0;
          const auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), value);
          if (err == std::errc() && end == text.data() + text.size() && value >= 1) return {};
          return fmt::format("'{}' is not {}a whole number >= 1", text, allow_auto ? "auto or " : "");
        },
        allow_auto ? "auto|N>=1" : "N>=1");
  };
  cmd.add_option("--workers", workers, "Ray workers, a number or auto (with --engine ray)")
      ->check(positive_or_auto(true));
  cmd.add_option("--chunk-size", chunk_size, "Combinations per Ray task (with --engine ray)")
      ->check(positive_or_auto(false));
}

void StudyFlags::apply(gt::StudyRequest& request) const {
  auto& o = request.ranking;
  o.threads = threads;
  o.device = device;
  o.reference = reference;
  o.progress = !no_progress && ::isatty(STDERR_FILENO);
  o.gpus = gt::gpus_for(device, gpus);
  request.force = force;
  // The cache folder unless told otherwise; --no-cache keeps a journal private to the run. On Ray
  // only a cache given explicitly is used (every node must reach it); a journal would live on
  // this machine alone.
  const std::filesystem::path dir = cache_dir.empty() ? gt::default_cache_dir() : std::filesystem::path(cache_dir);
  gt::StudyStore store;
  store.resume = resume;
  if (on_ray()) {
    if (!no_cache) store.cache = !cache_location.empty() ? cache_location : cache_dir;
  } else if (no_cache) {
    store.journal = dir / "runs";
  } else {
    store.cache = cache_location.empty() ? dir.string() : cache_location;
  }
  request.store = store;
}

void StudyFlags::hand_over_to_ray(const DataOptions& data, nlohmann::ordered_json task) const {
  nlohmann::ordered_json inputs = nlohmann::ordered_json::array();
  for (const auto& input : data.inputs) inputs.push_back(input.string());
  const auto whole = [](const std::string& text) -> nlohmann::ordered_json {
    if (text.empty()) return nullptr;
    if (text == "auto") return text;
    return std::stoll(text);
  };
  task["data"] = {{"inputs", inputs}, {"skip_bad_rows", data.skip_bad_rows}};
  task["ray"] = {{"address", address.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(address)},
                 {"workers", workers.empty() ? nlohmann::ordered_json("auto") : whole(workers)},
                 {"chunk_size", whole(chunk_size)}};
  std::string python;
  if (const char* env = std::getenv("GT_PYTHON"))
    python = env;
  else if (std::filesystem::exists(GT_DEFAULT_PYTHON))
    python = GT_DEFAULT_PYTHON;
  else
    python = "python3";
  std::vector<std::string> args = {python, "-m", "gpt_trader.ray_study", task.dump()};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::fflush(stdout);
  ::execvp(python.c_str(), argv.data());
  throw gt::Error(
      fmt::format("--engine ray: cannot run {} ({}); install the Python package with `pip install .` "
                  "and Ray with `pip install 'ray>=2.40'`, or set GT_PYTHON",
                  python, std::strerror(errno)));
}

}  // namespace gtrader
