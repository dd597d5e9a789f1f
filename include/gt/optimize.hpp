// Grid optimization: every combination of a grid on every symbol, ranked by a metric (docs/SEMANTICS.md "Ranking").
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gt/backtest.hpp"
#include "gt/cache.hpp"
#include "gt/data.hpp"
#include "gt/grid.hpp"
#include "gt/portfolio.hpp"
#include "gt/robustness.hpp"

namespace gt {

// Evaluates valid combinations of one grid on one symbol. Thread-safe: the optimizer calls it
// from every worker at once.
class Evaluator {
 public:
  virtual ~Evaluator() = default;
  // `params` holds out.size() combinations, `stride` values each (schema order).
  virtual void evaluate(std::span<const double> params, std::size_t stride, std::span<Metrics> out) const = 0;
  // The same, also adding each combination's per-bar returns to its blocks (a study's robustness):
  // combination i's block b at blocks[i * (starts.size() - 1) + b], `starts` as block_starts makes
  // them. Throws ParamError where the engine keeps no per-bar returns.
  virtual void evaluate_with_blocks(std::span<const double> params, std::size_t stride, std::span<Metrics> out,
                                    std::span<const std::size_t> starts, std::span<ReturnSums> blocks) const;
  virtual std::string_view name() const = 0;
  // Combinations per evaluate() call that keep this evaluator busy (0: the optimizer chooses).
  virtual std::size_t preferred_chunk() const { return 0; }
};

// The fastest evaluator that reproduces the reference engine for this strategy and these options.
std::unique_ptr<Evaluator> make_evaluator(const Bars& bars, const Grid& grid, const ExecutionOptions& options);
// The reference path: the strategy's signals and the backtest engine, per combination.
std::unique_ptr<Evaluator> make_reference_evaluator(const Bars& bars, const Grid& grid,
                                                    const ExecutionOptions& options);

// How a study chooses the combinations it evaluates (docs/SEMANTICS.md "Search"): every one of
// the grid, or `budget` of them chosen by `method` from the grid's space, reproducibly by `seed`.
struct SearchOptions {
  std::string method = "grid";  // grid, random, halving, bayes
  std::uint64_t budget = 0;     // distinct combinations to evaluate (the non-grid methods)
  std::uint64_t seed = 0;
  bool grid() const { return method == "grid"; }
};
inline constexpr std::array<std::string_view, 4> kSearchMethods = {"grid", "random", "halving", "bayes"};

struct OptimizeOptions {
  std::string metric = "sharpe";
  std::size_t top = 10;
  std::int64_t min_trades = 0;  // combinations with fewer closed trades are not ranked
  int threads = 0;              // 0: every core
  bool progress = false;        // a progress bar on stderr
  bool reference = false;       // force the reference evaluator (tests, debugging)
  // Looked up before and fed after evaluation, chunk by chunk, so an interrupted run loses at
  // most the chunks in flight. Not owned; nullptr: every combination is computed.
  ResultCache* cache = nullptr;
  // cpu, cuda (the CUDA engine, or an error saying why not) or auto (CUDA when a GPU is present
  // and the study is one the CUDA engine runs, else the CPU).
  std::string device = "cpu";
  std::vector<int> gpus;  // with cuda: the GPUs to shard over (empty: all)
  // Above 0: each symbol's deflated Sharpe ratio and probability of backtest overfitting over this
  // many blocks (docs/SEMANTICS.md "Out-of-sample evidence"). Every combination is then computed
  // (the cache holds metrics, not the per-block returns these need).
  std::size_t robustness_blocks = 0;
  // All symbols in one cash account, each combination ranked once for the whole portfolio (docs/
  // SEMANTICS.md "Portfolios"); none: each symbol on its own.
  std::optional<PortfolioOptions> portfolio;
  SearchOptions search;  // applied by the study runner (run_study); optimize() runs the grid
};

// What a study ranks, in order: each symbol, or one portfolio of them all ("portfolio").
std::vector<std::string> ranked_names(const std::vector<Bars>& symbols,
                                      const std::optional<PortfolioOptions>& portfolio);

// Each ranked unit's bars (a portfolio's: the union of its symbols' timestamps) and its namespace
// in the result cache (a portfolio's: every symbol's and the allocation).
std::vector<std::size_t> ranked_unit_bars(const std::vector<Bars>& symbols,
                                          const std::optional<PortfolioOptions>& portfolio);
std::vector<std::string> ranked_namespaces(const std::vector<Bars>& symbols, const Strategy& strategy,
                                           const ExecutionOptions& options,
                                           const std::optional<PortfolioOptions>& portfolio);

// Evaluates a portfolio of every symbol per combination (the reference engines' accounts, one cash).
std::unique_ptr<Evaluator> make_portfolio_evaluator(const std::vector<Bars>& symbols, const Grid& grid,
                                                    const ExecutionOptions& options, const PortfolioOptions& portfolio);

struct RankedCombination {
  std::size_t symbol = 0;
  std::uint64_t index = 0;  // position in the grid
  ParamValues params;
  Metrics metrics;
};

// One evaluated chunk, in grid order, handed to the sink in order whatever the thread count.
struct ChunkResults {
  std::size_t symbol = 0;
  std::uint64_t first = 0;             // grid index of the first combination
  std::vector<std::uint64_t> indices;  // a search's combinations, ascending (empty: first, first + 1, ...)
  std::uint64_t index(std::size_t i) const { return indices.empty() ? first + i : indices[i]; }
  std::vector<std::uint8_t> valid;  // per combination of the chunk
  std::size_t stride = 0;           // values per combination
  std::vector<double> params;       // per combination, `stride` values each
  std::span<const double> params_of(std::size_t i) const { return {params.data() + i * stride, stride}; }
  std::vector<Metrics> metrics;  // per combination (unset where invalid)
  std::size_t from_cache = 0;    // valid combinations whose metrics came from the cache
  // With robustness: per combination, its return sums per block (unset where invalid).
  std::size_t blocks_per_combination = 0;
  std::vector<ReturnSums> blocks;
};

// Receives every chunk: format() runs on worker threads, consume() in grid order on one thread.
class ResultSink {
 public:
  virtual ~ResultSink() = default;
  virtual std::string format(const ChunkResults& chunk) const = 0;
  virtual void consume(const ChunkResults& chunk, std::string&& text) = 0;
};

struct OptimizeResult {
  std::uint64_t combinations = 0;                                      // per symbol: the grid's size
  std::uint64_t valid = 0, invalid = 0, computed = 0, from_cache = 0;  // over all symbols
  double seconds = 0;
  std::uint64_t bar_combinations = 0;               // sum over symbols of bars x computed combinations
  std::vector<std::vector<RankedCombination>> top;  // per symbol, best first
  std::string evaluator;
  std::string device = "cpu";                // where it ran: cpu, or cuda with the GPUs
  std::vector<SymbolRobustness> robustness;  // per symbol, when asked for
};

// What a study has accumulated from the chunks it has seen: counts and each symbol's best, kept
// as an aggregate state (State, Operation = add, Combine = combine, Finalize = finish), so that
// pipeline chunks, GPU segments and distributed tasks all merge through the one operation.
class StudyState {
 public:
  // `top` per symbol by `metric` (an index in metric_table()); combinations with fewer than
  // `min_trades` closed trades are counted but not ranked.
  // `blocks` per combination above 0: the state also keeps every valid combination's block sums
  // (a study's robustness), which chunks then carry.
  StudyState(std::size_t symbols, std::size_t top, std::size_t metric, std::int64_t min_trades, std::size_t blocks = 0);
  void add(const ChunkResults& chunk, std::size_t bars);
  void combine(StudyState&& other);
  // Counts and rankings into `result` (best first per symbol); with blocks, each symbol's
  // robustness (docs/SEMANTICS.md "Out-of-sample evidence") from them, the best of the ranking
  // deflated by its returns on `symbols` (the study's bars, grid and options).
  void finish(OptimizeResult& result) &&;
  // `trials` above the ranked combinations: the deflated Sharpe ratio's trials (a search's).
  void finish(OptimizeResult& result, const std::vector<Bars>& symbols, const Grid& grid,
              const ExecutionOptions& options, const std::optional<PortfolioOptions>& portfolio = std::nullopt,
              std::uint64_t trials = 0) &&;
  std::uint64_t valid() const { return valid_; }
  std::uint64_t computed() const { return computed_; }
  std::uint64_t from_cache() const { return from_cache_; }
  // A state that keeps every combination (top = all, min_trades at its lowest) hands them over,
  // one symbol's in grid order, with their block sums in the same order when the chunks it saw
  // were ascending slices of one list (a search's round).
  struct Evaluated {
    std::vector<RankedCombination> combinations;
    std::vector<ReturnSums> blocks;  // blocks() per combination
  };
  Evaluated take_evaluated(std::size_t symbol);
  // Bytes that deserialize() turns back into the same state: what a remote task sends home.
  std::string serialize() const;
  static StudyState deserialize(std::string_view bytes);

 private:
  struct Config {
    std::size_t top, metric;
    bool higher_is_better;
    std::int64_t min_trades;
    std::size_t blocks;
  };
  void offer(RankedCombination&& c);
  bool before(const RankedCombination& a, const RankedCombination& b) const;

  Config config_;
  std::vector<std::vector<RankedCombination>> heaps_;  // per symbol: a max-heap on "ranks before"
  std::uint64_t valid_ = 0, invalid_ = 0, computed_ = 0, from_cache_ = 0, bar_combinations_ = 0;
  // With blocks, per symbol: the valid combinations' block sums ([combination][block]) of each
  // range seen, by the range's first grid index, so that ranges merge in grid order.
  std::vector<std::map<std::uint64_t, std::vector<ReturnSums>>> blocks_;
};

// The first bar of each block of every symbol for a study's robustness (block_starts), none when
// it is not asked for. Throws ParamError before any work when robustness cannot be computed: a
// grid of one combination, or block sums that would not fit in memory.
std::vector<std::vector<std::size_t>> robustness_block_starts(const std::vector<Bars>& symbols, const Grid& grid,
                                                              const OptimizeOptions& opt);

// Throws ParamError naming `device` unless it is cpu, cuda or auto.
void require_device(std::string_view device);

// Throws ParamError when a study found no valid combination at all, saying why the first is not.
void require_some_valid(const Grid& grid, std::uint64_t valid);

// The symbol names of `bars`, in order (for CsvResultSink).
std::vector<std::string> symbol_names(const std::vector<Bars>& bars);

// Decodes combinations [first, first + count) of `grid`, marks the valid ones and evaluates them
// on `bars` with make_evaluator: the unit of work of distributed runs.
ChunkResults evaluate_range(const Bars& bars, const Grid& grid, const ExecutionOptions& options, std::uint64_t first,
                            std::uint64_t count);
// The same with an evaluator built once for many ranges (a distributed worker keeps one), and
// optionally a cache with the namespace of the evaluator's symbol (cache_namespace).
// With `block_starts` (robustness_block_starts), also every combination's block sums, the cache
// left aside (it holds metrics, not those).
ChunkResults evaluate_range(const Evaluator& evaluator, const Grid& grid, std::uint64_t first, std::uint64_t count,
                            ResultCache* cache = nullptr, std::string_view cache_ns = {},
                            std::span<const std::size_t> block_starts = {});
// The same for the combinations `indices` (ascending), which a search chose.
ChunkResults evaluate_combinations(const Evaluator& evaluator, const Grid& grid, std::span<const std::uint64_t> indices,
                                   ResultCache* cache = nullptr, std::string_view cache_ns = {},
                                   std::span<const std::size_t> block_starts = {});

// What a study will take, estimated before it starts, so that one that cannot fit is refused
// instead of filling the memory or the disk. Rough by design (see docs/SEMANTICS.md "Estimates").
struct StudyEstimate {
  std::uint64_t combinations = 0;                    // over all symbols, valid or not
  double seconds = 0;                                // at the engines' typical rates on this machine's cores
  std::uint64_t memory_bytes = 0;                    // indicator tables held while it runs
  std::uint64_t results_bytes = 0, store_bytes = 0;  // the results file; the cache or journal
  std::uint64_t memory_available = 0;                // MemAvailable now
  std::string describe() const;                      // one line for the user
};
StudyEstimate estimate_study(const std::vector<Bars>& symbols, const Grid& grid, const ExecutionOptions& options,
                             int threads, bool results_file, bool disk_store);
// Throws ParamError saying what does not fit (memory; disk space at `results_path` or `store_dir`
// when given) and how to go ahead anyway.
void require_study_fits(const StudyEstimate& e, const std::filesystem::path& results_path,
                        const std::filesystem::path& store_dir);

// Throws ParamError for an unknown metric, before any work.
OptimizeResult optimize(const std::vector<Bars>& symbols, const Grid& grid, const ExecutionOptions& options,
                        const OptimizeOptions& opt, ResultSink* sink = nullptr);

// The ranking's order (docs/SEMANTICS.md "Ranking"): the better metric first (higher, or lower for
// max_drawdown; NaN and ruined ones last), ties by symbol then grid index, so it is deterministic.
bool ranks_before(const RankedCombination& a, const RankedCombination& b, std::string_view metric);
// The same with the metric resolved once (metric_index) for comparisons in a loop.
bool ranks_before(const RankedCombination& a, const RankedCombination& b, std::size_t metric, bool higher_is_better);
// That order as a plain tuple, for sorts that compare each combination many times: a before b
// exactly when ranking_key(a) < ranking_key(b).
struct RankingKey {
  MetricRank rank;  // metric_rank of the combination's metric
  std::size_t symbol;
  std::uint64_t index;
  bool operator<(const RankingKey& o) const {
    if (rank < o.rank) return true;
    if (o.rank < rank) return false;
    return symbol != o.symbol ? symbol < o.symbol : index < o.index;
  }
};
RankingKey ranking_key(const RankedCombination& c, std::size_t metric, bool higher_is_better);

// CSV of every valid combination: [symbol,] parameters in schema order, then metric_names().
class CsvResultSink : public ResultSink {
 public:
  // `symbols` names the symbols in order; a symbol column is written when there are several.
  CsvResultSink(const Grid& grid, std::vector<std::string> symbols, std::function<void(std::string_view)> write);
  std::string header() const;
  std::string format(const ChunkResults& chunk) const override;
  void consume(const ChunkResults& chunk, std::string&& text) override;

 private:
  const Grid& grid_;
  std::vector<std::string> symbols_;
  std::function<void(std::string_view)> write_;
};

}  // namespace gt
