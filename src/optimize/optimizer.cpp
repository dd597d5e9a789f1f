#include <fmt/format.h>
#include <tbb/global_control.h>
#include <tbb/info.h>
#include <tbb/parallel_pipeline.h>
#include <tbb/task_group.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <utility>

#include "gt/error.hpp"
#include "gt/gpu.hpp"
#include "gt/indicators.hpp"
#include "gt/optimize.hpp"
#include "ma_cross_evaluator.hpp"
#include "rules_evaluator.hpp"

namespace gt {
namespace {

class ReferenceEvaluator final : public Evaluator {
 public:
  ReferenceEvaluator(const Bars& bars, const Grid& grid, const ExecutionOptions& options)
      : bars_(bars),
        strategy_(grid.strategy()),
        options_(options),
        periods_per_year_(resolve_periods_per_year(bars, options)) {}

  void evaluate(std::span<const double> params, std::size_t stride, std::span<Metrics> out) const override {
    evaluate_with_blocks(params, stride, out, {}, {});
  }
  void evaluate_with_blocks(std::span<const double> params, std::size_t stride, std::span<Metrics> out,
                            std::span<const std::size_t> starts, std::span<ReturnSums> blocks) const override {
    std::vector<std::uint8_t> signals(bars_.size());
    const std::size_t per = starts.empty() ? 0 : starts.size() - 1;
    for (std::size_t i = 0; i < out.size(); ++i) {
      const ParamValues combo(params.begin() + static_cast<std::ptrdiff_t>(i * stride),
                              params.begin() + static_cast<std::ptrdiff_t>((i + 1) * stride));
      strategy_.signals(bars_, combo, signals, cache_);
      const BlockReturns own{starts, blocks.subspan(i * per, per)};
      out[i] = backtest_metrics(bars_, signals, strategy_.options_for(options_, combo), periods_per_year_,
                                per ? &own : nullptr);
    }
  }
  std::string_view name() const override { return "reference"; }

 private:
  const Bars& bars_;
  const Strategy& strategy_;
  ExecutionOptions options_;
  double periods_per_year_;
  mutable SeriesCache cache_;  // thread-safe; shares indicator series across combinations
};

}  // namespace

void Evaluator::evaluate_with_blocks(std::span<const double>, std::size_t, std::span<Metrics>,
                                     std::span<const std::size_t>, std::span<ReturnSums>) const {
  throw ParamError({"robustness"}, fmt::format("robustness needs every combination's returns per block, which the {} "
                                               "engine does not keep: run it on the cpu device",
                                               name()));
}

namespace {

class Progress {
 public:
  Progress(bool enabled, std::uint64_t total) : enabled_(enabled), total_(total), start_(clock::now()), last_(start_) {}
  void advance(std::uint64_t n) {
    done_ += n;
    if (!enabled_) return;
    const auto now = clock::now();
    if (now - last_ < std::chrono::milliseconds(100) && done_ < total_) return;
    last_ = now;
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double rate = secs > 0 ? static_cast<double>(done_) / secs : 0;
    const double frac = total_ ? static_cast<double>(done_) / static_cast<double>(total_) : 1.0;
    const int width = 30;
    const int filled = static_cast<int>(frac * width);
    const double eta = rate > 0 ? static_cast<double>(total_ - done_) / rate : 0;
    fmt::print(stderr, "\r[{:#<{}}{:.<{}}] {:5.1f}%  {:.3g} combos/s  ETA {:.0f}s ", "", filled, "", width - filled,
               100 * frac, rate, eta);
    if (done_ >= total_) fmt::print(stderr, "\n");
  }

 private:
  using clock = std::chrono::steady_clock;
  bool enabled_;
  std::uint64_t total_, done_ = 0;
  clock::time_point start_, last_;
};

struct Chunk {
  ChunkResults results;
  std::string text;
};

// Computed results on their way to the cache. They wait until the first of: a second since the
// last store, kMaxBytes of them, or every chunk under way; then the thread that has just finished
// a chunk stores all of them (one write a symbol). A short run's results are thus written while
// its last chunks compute, when a core would otherwise idle, rather than while every core
// computes, where the kernel's copy into the page cache costs as much again in the engine's
// tables evicted from the caches. A killed run loses at most a second of results.
class UnstoredResults {
 public:
  UnstoredResults(ResultCache& cache, const std::vector<std::string>& namespaces)
      : cache_(cache), namespaces_(namespaces), pending_(namespaces.size()), last_store_(clock::now()) {}

  void add(std::size_t symbol, ResultCache::Encoded batch, bool all_under_way) {
    std::vector<std::vector<ResultCache::Encoded>> taken;
    {
      std::lock_guard lock(mutex_);
      bytes_ += batch.bytes();
      if (batch.bytes() > 0) pending_[symbol].push_back(std::move(batch));
      const auto now = clock::now();
      if (!all_under_way && bytes_ < kMaxBytes && now - last_store_ < kMaxWait) return;
      taken = std::exchange(pending_, std::vector<std::vector<ResultCache::Encoded>>(pending_.size()));
      bytes_ = 0;
      last_store_ = now;
    }
    store(taken);
  }

  void store_all() {
    std::lock_guard lock(mutex_);
    store(pending_);
    for (auto& batches : pending_) batches.clear();
    bytes_ = 0;
  }

 private:
  using clock = std::chrono::steady_clock;
  static constexpr std::size_t kMaxBytes = std::size_t{512} << 10;
  static constexpr auto kMaxWait = std::chrono::seconds(1);

  void store(const std::vector<std::vector<ResultCache::Encoded>>& batches) {
    for (std::size_t s = 0; s < batches.size(); ++s)
      if (!batches[s].empty()) cache_.store(namespaces_[s], batches[s]);
  }

  ResultCache& cache_;
  const std::vector<std::string>& namespaces_;
  std::mutex mutex_;
  std::vector<std::vector<ResultCache::Encoded>> pending_;  // by symbol
  std::size_t bytes_ = 0;
  clock::time_point last_store_;
};

// Decodes the chunk's combinations, marks the valid ones, takes what the cache holds and
// evaluates the rest, then records it in the cache, or, given `to_store`, encodes it there for
// the caller to store later with other chunks' results.
void evaluate_chunk(const Evaluator& evaluator, const Grid& grid, ChunkResults& r, ResultCache* cache,
                    std::string_view cache_ns, ResultCache::Encoded* to_store = nullptr,
                    std::span<const std::size_t> block_starts = {}) {
  const std::size_t count = r.valid.size();
  const std::size_t stride = grid.base().size();
  r.stride = stride;
  r.params.resize(count * stride);
  r.metrics.resize(count);
  std::vector<double> valid_params;
  valid_params.reserve(count * stride);
  std::vector<std::size_t> slots;
  for (std::size_t i = 0; i < count; ++i) {
    const std::span<double> combo(r.params.data() + i * stride, stride);
    grid.decode(r.index(i), combo);
    r.valid[i] = grid.is_valid(combo);
    if (r.valid[i]) {
      valid_params.insert(valid_params.end(), combo.begin(), combo.end());
      slots.push_back(i);
    }
  }
  std::vector<Metrics> out(slots.size());
  r.from_cache = 0;
  if (!block_starts.empty()) {  // robustness: every combination computed, with its blocks
    const std::size_t per = block_starts.size() - 1;
    std::vector<ReturnSums> blocks(slots.size() * per);
    evaluator.evaluate_with_blocks(valid_params, stride, out, block_starts, blocks);
    r.blocks_per_combination = per;
    r.blocks.assign(count * per, ReturnSums{});
    for (std::size_t j = 0; j < slots.size(); ++j) {
      r.metrics[slots[j]] = out[j];
      for (std::size_t b = 0; b < per; ++b) {
        ReturnSums s = blocks[j * per + b];
        s.count = static_cast<double>(block_starts[b + 1] - block_starts[b]);
        r.blocks[slots[j] * per + b] = s;
      }
    }
    return;
  }
  const bool cached = cache && cache->available();
  std::vector<CacheKey> keys;
  std::vector<std::uint8_t> hit;
  if (cached) {
    keys.resize(slots.size());
    for (std::size_t j = 0; j < slots.size(); ++j) keys[j] = cache_key({valid_params.data() + j * stride, stride});
    hit.resize(slots.size());
    r.from_cache = cache->lookup(cache_ns, keys, out, hit);
  }
  const auto record = [&](std::span<const CacheKey> computed_keys, std::span<const Metrics> computed) {
    if (to_store)
      *to_store = cache->encode(cache_ns, computed_keys, computed);
    else
      cache->store(cache_ns, computed_keys, computed);
  };
  if (r.from_cache == 0) {  // a cold chunk (or no cache): no compaction, no copies
    evaluator.evaluate(valid_params, stride, out);
    if (cached) record(keys, out);
  } else if (r.from_cache < slots.size()) {
    std::vector<double> miss_params;
    std::vector<CacheKey> miss_keys;
    std::vector<std::size_t> misses;
    for (std::size_t j = 0; j < slots.size(); ++j) {
      if (hit[j]) continue;
      miss_params.insert(miss_params.end(), valid_params.begin() + static_cast<std::ptrdiff_t>(j * stride),
                         valid_params.begin() + static_cast<std::ptrdiff_t>((j + 1) * stride));
      miss_keys.push_back(keys[j]);
      misses.push_back(j);
    }
    std::vector<Metrics> computed(misses.size());
    evaluator.evaluate(miss_params, stride, computed);
    record(miss_keys, computed);
    for (std::size_t k = 0; k < misses.size(); ++k) out[misses[k]] = computed[k];
  }
  for (std::size_t j = 0; j < slots.size(); ++j) r.metrics[slots[j]] = out[j];
}

}  // namespace

ChunkResults evaluate_range(const Bars& bars, const Grid& grid, const ExecutionOptions& options, std::uint64_t first,
                            std::uint64_t count) {
  options.validate();
  return evaluate_range(*make_evaluator(bars, grid, options), grid, first, count);
}

ChunkResults evaluate_range(const Evaluator& evaluator, const Grid& grid, std::uint64_t first, std::uint64_t count,
                            ResultCache* cache, std::string_view cache_ns, std::span<const std::size_t> block_starts) {
  if (first > grid.size() || count > grid.size() - first)
    throw ParamError(fmt::format("combinations {}..{} are outside the grid of {}", first, first + count, grid.size()));
  ChunkResults r;
  r.first = first;
  r.valid.resize(count);
  evaluate_chunk(evaluator, grid, r, cache, cache_ns, nullptr, block_starts);
  return r;
}

ChunkResults evaluate_combinations(const Evaluator& evaluator, const Grid& grid, std::span<const std::uint64_t> indices,
                                   ResultCache* cache, std::string_view cache_ns,
                                   std::span<const std::size_t> block_starts) {
  for (std::size_t i = 0; i < indices.size(); ++i)
    if (indices[i] >= grid.size() || (i > 0 && indices[i] <= indices[i - 1]))
      throw ParamError(
          fmt::format("combination {} is outside the grid of {} or out of order", indices[i], grid.size()));
  ChunkResults r;
  r.indices.assign(indices.begin(), indices.end());
  r.first = indices.empty() ? 0 : indices.front();
  r.valid.resize(indices.size());
  evaluate_chunk(evaluator, grid, r, cache, cache_ns, nullptr, block_starts);
  return r;
}

std::unique_ptr<Evaluator> make_reference_evaluator(const Bars& bars, const Grid& grid,
                                                    const ExecutionOptions& options) {
  return std::make_unique<ReferenceEvaluator>(bars, grid, options);
}

std::unique_ptr<Evaluator> make_evaluator(const Bars& bars, const Grid& grid, const ExecutionOptions& options) {
  if (auto fast = make_ma_cross_evaluator(bars, grid, options)) return fast;
  if (auto rules = make_rules_evaluator(bars, grid, options)) return rules;
  return make_reference_evaluator(bars, grid, options);
}

namespace {

std::uint64_t memory_available() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  std::uint64_t kib = 0;
  std::string unit;
  while (meminfo >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib * 1024;
  return 0;  // unknown: nothing is refused for memory
}

std::string bytes_text(double bytes) {
  if (bytes >= 1e9) return fmt::format("{:.1f} GB", bytes / 1e9);
  return fmt::format("{:.0f} MB", bytes / 1e6);
}

}  // namespace

StudyEstimate estimate_study(const std::vector<Bars>& symbols, const Grid& grid, const ExecutionOptions& options,
                             int threads, bool results_file, bool disk_store) {
  StudyEstimate e;
  e.combinations = grid.size() * symbols.size();
  // Indicator tables: a row of every bar for each period-like value (integer axes of more than
  // eight values) and each value of the short integer axes (a type): for a crossover of averages
  // a float a bar and a resume point a word of 64 bars (MaCrossTables), else a double and a float.
  std::vector<double> periods;
  double kinds = 1;
  for (const auto& axis : grid.axes()) {
    if (grid.strategy().params[axis.param].type != ParamType::kInt) continue;
    if (axis.values.size() > 8)
      periods.insert(periods.end(), axis.values.begin(), axis.values.end());
    else
      kinds *= static_cast<double>(axis.values.size());
  }
  std::sort(periods.begin(), periods.end());
  periods.erase(std::unique(periods.begin(), periods.end()), periods.end());
  std::uint64_t bar_combinations = 0;
  const double row_bytes_a_bar =
      grid.strategy().grid_engine == GridEngine::kMaCross
          ? 4.0 + static_cast<double>(sizeof(ind::MaResume)) / static_cast<double>(ind::kResumeStride)
          : 12.0;
  for (const auto& bars : symbols) {
    e.memory_bytes += static_cast<std::uint64_t>(static_cast<double>(bars.size()) * row_bytes_a_bar *
                                                 std::max<double>(1, static_cast<double>(periods.size())) * kinds);
    bar_combinations += bars.size() * grid.size();
  }
  // Typical bar-combinations per second and core: the grid engine's route, or a backtest each.
  const bool grid_engine = ma_cross_engine_supports(grid, options);
  const double rate = (grid_engine ? 1.5e9 : 1.5e8) * (threads > 0 ? threads : tbb::info::default_concurrency());
  e.seconds = static_cast<double>(bar_combinations) / rate;
  if (results_file) e.results_bytes = e.combinations * 160;  // a row of parameters and 12 metrics
  if (disk_store) e.store_bytes = e.combinations * (sizeof(std::uint64_t) + ResultCache::kEntryBytes);
  e.memory_available = memory_available();
  return e;
}

std::string StudyEstimate::describe() const {
  const double minutes = seconds / 60;
  return fmt::format(
      "{} combinations, about {} ({}), {} of indicator tables{}{}", combinations,
      minutes >= 120 ? fmt::format("{:.1f} hours", minutes / 60)
                     : (minutes >= 2 ? fmt::format("{:.0f} minutes", minutes) : fmt::format("{:.0f} s", seconds)),
      "a rough figure", bytes_text(static_cast<double>(memory_bytes)),
      results_bytes ? fmt::format(", a results file of {}", bytes_text(static_cast<double>(results_bytes))) : "",
      store_bytes ? fmt::format(", {} of cache or journal", bytes_text(static_cast<double>(store_bytes))) : "");
}

void require_study_fits(const StudyEstimate& e, const std::filesystem::path& results_path,
                        const std::filesystem::path& store_dir) {
  const auto refuse = [&](const std::string& what) {
    throw ParamError(
        {"force"}, fmt::format("this study does not fit: {} ({}); narrow the grid, or start it anyway with force", what,
                               e.describe()));
  };
  if (e.memory_available && e.memory_bytes > e.memory_available)
    refuse(fmt::format("its indicator tables need {}, and {} of memory is available",
                       bytes_text(static_cast<double>(e.memory_bytes)),
                       bytes_text(static_cast<double>(e.memory_available))));
  const auto free_at = [](const std::filesystem::path& path) -> std::uint64_t {
    std::error_code ec;
    std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
    while (!dir.empty() && !std::filesystem::exists(dir, ec)) dir = dir.parent_path();
    const auto space = std::filesystem::space(dir.empty() ? "." : dir, ec);
    return ec ? UINT64_MAX : space.available;
  };
  if (e.results_bytes && !results_path.empty() && e.results_bytes > free_at(results_path))
    refuse(fmt::format("its results file needs about {}, more than the disk at {} has free",
                       bytes_text(static_cast<double>(e.results_bytes)), results_path.string()));
  if (e.store_bytes && !store_dir.empty() && e.store_bytes > free_at(store_dir / "results.log"))
    refuse(fmt::format("its cache or journal needs about {}, more than the disk at {} has free",
                       bytes_text(static_cast<double>(e.store_bytes)), store_dir.string()));
}

bool ranks_before(const RankedCombination& a, const RankedCombination& b, std::string_view metric) {
  return ranks_before(a, b, metric_index(metric), metric_higher_is_better(metric));
}

bool ranks_before(const RankedCombination& a, const RankedCombination& b, std::size_t metric, bool higher_is_better) {
  return ranking_key(a, metric, higher_is_better) < ranking_key(b, metric, higher_is_better);
}

RankingKey ranking_key(const RankedCombination& c, std::size_t metric, bool higher_is_better) {
  return {metric_rank(metric_value(c.metrics, metric), is_ruined(c.metrics), higher_is_better), c.symbol, c.index};
}

std::vector<std::vector<std::size_t>> robustness_block_starts(const std::vector<Bars>& symbols, const Grid& grid,
                                                              const OptimizeOptions& opt) {
  std::vector<std::vector<std::size_t>> starts;
  if (opt.robustness_blocks == 0) return starts;
  if (grid.size() < 2)
    throw ParamError({"robustness"},
                     "robustness compares the combinations of a grid: this grid has one (the "
                     "deflated Sharpe ratio and the overfitting probability are undefined)");
  const double bytes = static_cast<double>(grid.size()) * static_cast<double>(symbols.size()) *
                       static_cast<double>(opt.robustness_blocks) * sizeof(ReturnSums);
  if (bytes > 4e9)
    throw ParamError({"robustness"}, fmt::format("robustness keeps every combination's returns per block: {:.1f} "
                                                 "GB for this study (the limit is 4 GB); use fewer pbo_blocks, "
                                                 "combinations or symbols",
                                                 bytes / 1e9));
  for (const std::size_t bars : ranked_unit_bars(symbols, opt.portfolio))
    starts.push_back(block_starts(bars, opt.robustness_blocks));
  return starts;
}

OptimizeResult optimize(const std::vector<Bars>& symbols, const Grid& grid, const ExecutionOptions& options,
                        const OptimizeOptions& opt, ResultSink* sink) {
  options.validate();
  metric_index(opt.metric);  // unknown metric: fail before any work
  grid.strategy().require_signals();
  {
    // The grid's shortest warm-up (every axis at its smallest value): a symbol too short even for
    // that could only give zeros.
    ParamValues smallest = grid.base();
    for (const auto& axis : grid.axes())
      smallest[axis.param] = *std::min_element(axis.values.begin(), axis.values.end());
    for (const auto& bars : symbols) grid.strategy().require_enough_bars(bars, smallest);
  }
  // A portfolio is one ranked unit made of every symbol; otherwise each symbol is one.
  const bool portfolio = opt.portfolio.has_value();
  if (portfolio) {
    check_portfolio(symbols, *opt.portfolio);
    if (opt.device == "cuda")
      throw ParamError({"device", "portfolio"}, "a portfolio runs on the CPU engines: use the cpu or auto device");
  }
  const std::size_t units = portfolio ? 1 : symbols.size();
  const std::vector<std::size_t> unit_bars = ranked_unit_bars(symbols, opt.portfolio);
  // Robustness: its blocks per unit, refused before any work when they cannot be made.
  const std::vector<std::vector<std::size_t>> block_bounds = robustness_block_starts(symbols, grid, opt);
  const int threads = opt.threads > 0 ? opt.threads : tbb::info::default_concurrency();
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(threads));

  OptimizeResult result;
  result.combinations = grid.size();
  const auto start = std::chrono::steady_clock::now();
  require_device(opt.device);
  const bool use_cuda =
      !opt.reference && !portfolio &&
      (opt.device == "cuda" || (opt.device == "auto" && ma_cross_engine_supports(grid, options) && !grid.has_exits() &&
                                options.first_bar == 0 && !options.close_at_end && cuda_available()));
  // The GPUs every symbol's evaluator and the chunking below share (none resolved without a GPU:
  // make_cuda_evaluator then says what is missing).
  const std::vector<int> gpus = use_cuda && opt.gpus.empty() && cuda_available() ? parse_gpus("all") : opt.gpus;
  std::vector<std::unique_ptr<Evaluator>> evaluators;
  // The cache's namespaces hash every bar: done beside the evaluators' set-up (still built on this
  // thread), whose parallel loops leave a core idle now and then, rather than before it.
  std::vector<std::string> namespaces;
  tbb::task_group hashing;
  if (opt.cache) hashing.run([&] { namespaces = ranked_namespaces(symbols, grid.strategy(), options, opt.portfolio); });
  try {
    if (portfolio) evaluators.push_back(make_portfolio_evaluator(symbols, grid, options, *opt.portfolio));
    for (const auto& bars : symbols) {
      if (portfolio)
        break;
      else if (use_cuda)
        evaluators.push_back(make_cuda_evaluator(bars, grid, options, gpus));
      else if (opt.reference)
        evaluators.push_back(make_reference_evaluator(bars, grid, options));
      else
        evaluators.push_back(make_evaluator(bars, grid, options));
    }
  } catch (...) {
    hashing.wait();  // it refers to this frame
    throw;
  }
  hashing.wait();
  result.device = use_cuda ? "cuda: " + cuda_devices() : "cpu";
  if (!use_cuda && opt.device == "auto" && cuda_available())  // a GPU is here, but this study is not the CUDA engine's
    result.device =
        "cpu (auto: the CUDA engine runs long-only, whole-equity ma_cross without exits by price and "
        "time; this study runs on the CPU)";
  result.evaluator = evaluators.empty() ? "" : std::string(evaluators.front()->name());

  // Chunks small enough to balance the cores, large enough to amortize the pipeline's overhead.
  std::uint64_t chunk = std::clamp<std::uint64_t>(grid.size() / (static_cast<std::uint64_t>(threads) * 8), 64, 4096);
  if (!evaluators.empty() && evaluators.front()->preferred_chunk() > 0) chunk = evaluators.front()->preferred_chunk();
  if (use_cuda && grid.size() > 0) {
    // As many chunks for every GPU (each at most the preferred size), so that none waits for
    // another's last chunk.
    const std::uint64_t devices = std::max<std::size_t>(1, gpus.size());
    const std::uint64_t rounds = (grid.size() + devices * chunk - 1) / (devices * chunk);
    chunk = (grid.size() + devices * rounds - 1) / (devices * rounds);
  }
  StudyState state(units, opt.top, metric_index(opt.metric), opt.min_trades, opt.robustness_blocks);
  Progress progress(opt.progress, grid.size() * units);
  std::optional<UnstoredResults> unstored;
  if (opt.cache) unstored.emplace(*opt.cache, namespaces);
  std::atomic<bool> all_under_way{false};  // set by the first stage, read by the second

  std::size_t next_symbol = 0;
  std::uint64_t next_first = 0;
  tbb::parallel_pipeline(
      static_cast<std::size_t>(threads) * 4,
      tbb::make_filter<void, Chunk*>(tbb::filter_mode::serial_in_order, [&](tbb::flow_control& fc) -> Chunk* {
        if (next_symbol >= units || grid.size() == 0) {
          fc.stop();
          return nullptr;
        }
        auto* c = new Chunk;
        c->results.symbol = next_symbol;
        c->results.first = next_first;
        const std::uint64_t count = std::min(chunk, grid.size() - next_first);
        c->results.valid.resize(count);
        next_first += count;
        if (next_first == grid.size()) {
          next_first = 0;
          ++next_symbol;
        }
        if (next_symbol == units) all_under_way.store(true, std::memory_order_relaxed);
        return c;
      }) & tbb::make_filter<Chunk*, Chunk*>(tbb::filter_mode::parallel, [&](Chunk* c) {
        ResultCache::Encoded computed;
        const bool robust = !block_bounds.empty();
        evaluate_chunk(
            *evaluators[c->results.symbol], grid, c->results, robust ? nullptr : opt.cache,
            opt.cache ? std::string_view(namespaces[c->results.symbol]) : std::string_view(), &computed,
            robust ? std::span<const std::size_t>(block_bounds[c->results.symbol]) : std::span<const std::size_t>());
        if (unstored)
          unstored->add(c->results.symbol, std::move(computed), all_under_way.load(std::memory_order_relaxed));
        if (sink) c->text = sink->format(c->results);
        return c;
      }) & tbb::make_filter<Chunk*, void>(tbb::filter_mode::serial_in_order, [&](Chunk* c) {
        std::unique_ptr<Chunk> owned(c);
        auto& r = c->results;
        state.add(r, unit_bars[r.symbol]);
        if (sink) sink->consume(r, std::move(c->text));
        progress.advance(r.valid.size());
      }));
  if (unstored) unstored->store_all();
  require_some_valid(grid, state.valid());
  std::move(state).finish(result, symbols, grid, options, opt.portfolio);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

void require_device(std::string_view device) {
  if (device != "cpu" && device != "cuda" && device != "auto")
    throw ParamError({"device"}, fmt::format("device {}: allowed: cpu, cuda, auto", device));
}

void require_some_valid(const Grid& grid, std::uint64_t valid) {
  if (valid > 0 || grid.size() == 0) return;
  ParamValues first(grid.base().size());
  grid.decode(0, first);
  throw ParamError(fmt::format("none of the grid's {} combinations is valid (the first: {}): change the grid",
                               grid.size(),
                               grid.strategy().constraint.explain ? grid.strategy().constraint.explain(first)
                                                                  : grid.strategy().describe(first)));
}

StudyState::StudyState(std::size_t symbols, std::size_t top, std::size_t metric, std::int64_t min_trades,
                       std::size_t blocks)
    : config_{top, metric, metric_table()[metric].higher_is_better, min_trades, blocks},
      heaps_(symbols),
      blocks_(blocks > 0 ? symbols : 0) {}

bool StudyState::before(const RankedCombination& a, const RankedCombination& b) const {
  return ranks_before(a, b, config_.metric, config_.higher_is_better);
}

namespace {
// Room for `more` in a state that keeps every combination, growing geometrically as push_back
// would, but once for a whole chunk or state.
void make_room(std::vector<RankedCombination>& kept, std::size_t more) {
  if (kept.capacity() < kept.size() + more) kept.reserve(std::max(kept.size() + more, 2 * kept.capacity()));
}
}  // namespace

void StudyState::offer(RankedCombination&& c) {
  if (config_.top == 0) return;
  auto& heap = heaps_[c.symbol];
  if (config_.top == SIZE_MAX) {  // every combination kept: nothing to evict, finish() sorts them
    heap.push_back(std::move(c));
    return;
  }
  const auto worse = [this](const RankedCombination& a, const RankedCombination& b) { return before(a, b); };
  if (heap.size() == config_.top) {
    if (!before(c, heap.front())) return;
    std::pop_heap(heap.begin(), heap.end(), worse);
    heap.back() = std::move(c);
  } else {
    heap.push_back(std::move(c));
  }
  std::push_heap(heap.begin(), heap.end(), worse);
}

void StudyState::add(const ChunkResults& r, std::size_t bars) {
  std::uint64_t valid = 0;
  auto& heap = heaps_[r.symbol];
  if (config_.top == SIZE_MAX) make_room(heap, r.valid.size());
  for (std::size_t i = 0; i < r.valid.size(); ++i) {
    if (!r.valid[i]) continue;
    ++valid;
    if (r.metrics[i].trades < config_.min_trades || config_.top == 0) continue;
    RankedCombination c{r.symbol, r.index(i), {}, r.metrics[i]};
    if (heap.size() == config_.top && !before(c, heap.front())) continue;  // the common case: no copy
    const auto params = r.params_of(i);
    c.params.assign(params.begin(), params.end());
    offer(std::move(c));
  }
  if (config_.blocks > 0) {
    if (r.blocks_per_combination != config_.blocks)
      throw Error(fmt::format("StudyState::add: a chunk of {} blocks for a study of {}", r.blocks_per_combination,
                              config_.blocks));
    std::vector<ReturnSums> kept;
    kept.reserve(valid * config_.blocks);
    for (std::size_t i = 0; i < r.valid.size(); ++i)
      if (r.valid[i])
        kept.insert(kept.end(), r.blocks.begin() + static_cast<std::ptrdiff_t>(i * config_.blocks),
                    r.blocks.begin() + static_cast<std::ptrdiff_t>((i + 1) * config_.blocks));
    if (!blocks_[r.symbol].emplace(r.index(0), std::move(kept)).second)
      throw Error(fmt::format("StudyState::add: combinations from {} added twice", r.index(0)));
  }
  valid_ += valid;
  invalid_ += r.valid.size() - valid;
  computed_ += valid - r.from_cache;
  from_cache_ += r.from_cache;
  bar_combinations_ += (valid - r.from_cache) * bars;
}

void StudyState::combine(StudyState&& other) {
  if (other.heaps_.size() != heaps_.size() || other.config_.top != config_.top ||
      other.config_.metric != config_.metric || other.config_.min_trades != config_.min_trades ||
      other.config_.blocks != config_.blocks)
    throw Error("StudyState::combine: the states belong to different studies");
  for (std::size_t s = 0; s < heaps_.size(); ++s) {
    if (config_.top == SIZE_MAX && heaps_[s].empty()) {  // every combination kept, none yet: the other's taken whole
      heaps_[s].swap(other.heaps_[s]);
      continue;
    }
    if (config_.top == SIZE_MAX) make_room(heaps_[s], other.heaps_[s].size());
    for (auto& c : other.heaps_[s]) offer(std::move(c));
  }
  for (std::size_t s = 0; s < blocks_.size(); ++s)
    for (auto& [first, sums] : other.blocks_[s])
      if (!blocks_[s].emplace(first, std::move(sums)).second)
        throw Error(fmt::format("StudyState::combine: combinations from {} added twice", first));
  valid_ += other.valid_;
  invalid_ += other.invalid_;
  computed_ += other.computed_;
  from_cache_ += other.from_cache_;
  bar_combinations_ += other.bar_combinations_;
}

void StudyState::finish(OptimizeResult& result) && {
  result.valid += valid_;
  result.invalid += invalid_;
  result.computed += computed_;
  result.from_cache += from_cache_;
  result.bar_combinations += bar_combinations_;
  result.top.clear();
  for (auto& heap : heaps_) {
    std::sort(heap.begin(), heap.end(), [this](const auto& a, const auto& b) { return before(a, b); });
    result.top.push_back(std::move(heap));
  }
}

StudyState::Evaluated StudyState::take_evaluated(std::size_t symbol) {
  Evaluated out;
  out.combinations = std::move(heaps_.at(symbol));
  heaps_[symbol].clear();
  const auto by_index = [](const RankedCombination& a, const RankedCombination& b) { return a.index < b.index; };
  if (!std::is_sorted(out.combinations.begin(), out.combinations.end(), by_index))  // states combined out of order
    std::sort(out.combinations.begin(), out.combinations.end(), by_index);
  if (config_.blocks > 0) {
    for (auto& [first, sums] : blocks_[symbol]) out.blocks.insert(out.blocks.end(), sums.begin(), sums.end());
    blocks_[symbol].clear();
    if (out.blocks.size() != out.combinations.size() * config_.blocks)
      throw Error("StudyState::take_evaluated: a state that kept every combination was expected");
  }
  return out;
}

void StudyState::finish(OptimizeResult& result, const std::vector<Bars>& symbols, const Grid& grid,
                        const ExecutionOptions& options, const std::optional<PortfolioOptions>& portfolio,
                        std::uint64_t trials) && {
  const std::size_t per = config_.blocks;
  auto blocks = std::move(blocks_);
  std::move(*this).finish(result);
  if (per == 0) return;
  result.robustness.clear();
  const std::vector<std::string> names = ranked_names(symbols, portfolio);
  for (std::size_t s = 0; s < names.size(); ++s) {
    if (s >= result.top.size() || result.top[s].empty())
      throw ParamError({"robustness", "min_trades"},
                       fmt::format("{}: no combination was ranked, so there is no best to deflate (lower "
                                   "min_trades, or top above 0)",
                                   names[s]));
    // Every valid combination in grid order, and each one's per-bar Sharpe from its blocks' totals.
    std::vector<ReturnSums> sums;
    for (auto& [first, range] : blocks[s]) sums.insert(sums.end(), range.begin(), range.end());
    const std::size_t valid = sums.size() / per;
    std::vector<double> sharpes(valid);
    for (std::size_t i = 0; i < valid; ++i) {
      ReturnSums total;
      for (std::size_t b = 0; b < per; ++b) total += sums[i * per + b];
      sharpes[i] = total.sharpe();
    }
    SymbolRobustness r;
    r.symbol = s;
    r.best_index = result.top[s].front().index;
    r.overfitting = probability_of_backtest_overfitting(sums, valid, per);
    r.chronological = chronological_ranks(sums, valid, per);
    const ParamValues& params = result.top[s].front().params;
    const std::vector<double> equity = portfolio
                                           ? run_portfolio(symbols, grid.strategy(), params, options, *portfolio).equity
                                           : run_strategy(symbols[s], grid.strategy(), params, options).equity;
    r.deflated = deflated_sharpe(curve_returns(equity, options.cash), sharpes, trials);
    result.robustness.push_back(std::move(r));
  }
}

namespace {

constexpr std::uint64_t kStateMagic = 0x3274617453746724;  // "$gtState2"

class StateWriter {
 public:
  void u64(std::uint64_t v) { raw(&v, sizeof v); }
  void f64(double v) { raw(&v, sizeof v); }
  std::string bytes;

 private:
  void raw(const void* p, std::size_t n) { bytes.append(static_cast<const char*>(p), n); }
};

class StateReader {
 public:
  explicit StateReader(std::string_view bytes) : bytes_(bytes) {}
  std::uint64_t u64() { return take<std::uint64_t>(); }
  double f64() { return take<double>(); }
  bool done() const { return at_ == bytes_.size(); }
  std::size_t remaining() const { return bytes_.size() - at_; }

 private:
  template <class T>
  T take() {
    if (bytes_.size() - at_ < sizeof(T)) throw Error("StudyState::deserialize: the bytes end early");
    T v;
    std::memcpy(&v, bytes_.data() + at_, sizeof v);
    at_ += sizeof v;
    return v;
  }
  std::string_view bytes_;
  std::size_t at_ = 0;
};

}  // namespace

std::string StudyState::serialize() const {
  StateWriter w;
  w.u64(kStateMagic);
  w.u64(heaps_.size());
  w.u64(config_.top);
  w.u64(config_.metric);
  w.u64(static_cast<std::uint64_t>(config_.min_trades));
  w.u64(config_.blocks);
  for (const auto v : {valid_, invalid_, computed_, from_cache_, bar_combinations_}) w.u64(v);
  for (const auto& heap : heaps_) {
    w.u64(heap.size());
    for (const auto& c : heap) {
      w.u64(c.symbol);
      w.u64(c.index);
      w.u64(c.params.size());
      for (const double p : c.params) w.f64(p);
      for (std::size_t m = 0; m < kMetricCount; ++m) w.f64(metric_value(c.metrics, m));
    }
  }
  for (const auto& ranges : blocks_) {
    w.u64(ranges.size());
    for (const auto& [first, sums] : ranges) {
      w.u64(first);
      w.u64(sums.size());
      for (const ReturnSums& x : sums)
        for (const double v : {x.count, x.sum, x.sum2}) w.f64(v);
    }
  }
  return std::move(w.bytes);
}

StudyState StudyState::deserialize(std::string_view bytes) {
  StateReader r(bytes);
  if (r.u64() != kStateMagic) throw Error("StudyState::deserialize: not a study state");
  const std::size_t symbols = r.u64(), top = r.u64(), metric = r.u64();
  if (metric >= kMetricCount) throw Error("StudyState::deserialize: no such metric");
  const auto min_trades = static_cast<std::int64_t>(r.u64());
  const std::size_t blocks = r.u64();
  StudyState state(symbols, top, metric, min_trades, blocks);
  for (auto* v : {&state.valid_, &state.invalid_, &state.computed_, &state.from_cache_, &state.bar_combinations_})
    *v = r.u64();
  for (auto& heap : state.heaps_) {
    const std::uint64_t n = r.u64();
    for (std::uint64_t k = 0; k < n; ++k) {
      RankedCombination c;
      c.symbol = r.u64();
      c.index = r.u64();
      c.params.resize(r.u64());
      for (double& p : c.params) p = r.f64();
      for (std::size_t m = 0; m < kMetricCount; ++m) set_metric_value(c.metrics, m, r.f64());
      if (c.symbol >= symbols) throw Error("StudyState::deserialize: a symbol out of range");
      heap.push_back(std::move(c));
    }
  }
  for (auto& ranges : state.blocks_) {
    const std::uint64_t n = r.u64();
    for (std::uint64_t k = 0; k < n; ++k) {
      const std::uint64_t first = r.u64(), count = r.u64();
      if (count > r.remaining() / (3 * sizeof(double))) throw Error("StudyState::deserialize: the bytes end early");
      std::vector<ReturnSums> sums(count);
      for (ReturnSums& x : sums) {
        x.count = r.f64();
        x.sum = r.f64();
        x.sum2 = r.f64();
      }
      if (blocks == 0 || sums.size() % blocks != 0) throw Error("StudyState::deserialize: block sums out of shape");
      ranges.emplace(first, std::move(sums));
    }
  }
  if (!r.done()) throw Error("StudyState::deserialize: bytes left over");
  return state;
}

CsvResultSink::CsvResultSink(const Grid& grid, std::vector<std::string> symbols,
                             std::function<void(std::string_view)> write)
    : grid_(grid), symbols_(std::move(symbols)), write_(std::move(write)) {}

std::vector<std::string> ranked_names(const std::vector<Bars>& symbols,
                                      const std::optional<PortfolioOptions>& portfolio) {
  if (portfolio) return {"portfolio"};
  return symbol_names(symbols);
}

std::vector<std::size_t> ranked_unit_bars(const std::vector<Bars>& symbols,
                                          const std::optional<PortfolioOptions>& portfolio) {
  if (portfolio) return {portfolio_timeline(symbols).size()};  // one equity over the union of the timestamps
  std::vector<std::size_t> bars;
  for (const auto& b : symbols) bars.push_back(b.size());
  return bars;
}

std::vector<std::string> ranked_namespaces(const std::vector<Bars>& symbols, const Strategy& strategy,
                                           const ExecutionOptions& options,
                                           const std::optional<PortfolioOptions>& portfolio) {
  std::vector<std::string> namespaces;
  for (const auto& bars : symbols) namespaces.push_back(cache_namespace(bars, strategy, options));
  if (!portfolio) return namespaces;
  // The allocation is part of what a portfolio's results depend on.
  return {combined_namespace(namespaces, fmt::format("portfolio weights={} rebalance={}",
                                                     fmt::join(portfolio->weights, ","), portfolio->rebalance))};
}

std::vector<std::string> symbol_names(const std::vector<Bars>& bars) {
  std::vector<std::string> names;
  for (const auto& b : bars) names.push_back(b.symbol);
  return names;
}

std::string CsvResultSink::header() const {
  std::string out = symbols_.size() > 1 ? "symbol," : "";
  for (const auto& p : grid_.strategy().params) out += p.name + ",";
  const auto& names = metric_names();
  for (std::size_t i = 0; i < names.size(); ++i) out += names[i] + (i + 1 < names.size() ? "," : "\n");
  return out;
}

std::string CsvResultSink::format(const ChunkResults& chunk) const {
  std::string out;
  out.reserve(chunk.valid.size() * 200);
  const auto& params = grid_.strategy().params;
  const auto& names = metric_names();
  for (std::size_t i = 0; i < chunk.valid.size(); ++i) {
    if (!chunk.valid[i]) continue;
    if (symbols_.size() > 1) out += csv_field(symbols_[chunk.symbol]) + ",";
    for (std::size_t p = 0; p < params.size(); ++p) {
      out += format_param_value(params[p], chunk.params_of(i)[p]);
      out += ',';
    }
    for (std::size_t m = 0; m < names.size(); ++m) {
      fmt::format_to(std::back_inserter(out), "{}", metric_value(chunk.metrics[i], m));
      out += m + 1 < names.size() ? ',' : '\n';
    }
  }
  return out;
}

void CsvResultSink::consume(const ChunkResults&, std::string&& text) {
  write_(text);
}

}  // namespace gt
