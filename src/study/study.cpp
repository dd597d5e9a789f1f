// The study runner and its JSON and text forms (include/gt/study.hpp says what each is for).
#include "gt/study.hpp"

#include <fmt/format.h>
#include <tbb/global_control.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <optional>

#include "gt/atomic_file.hpp"
#include "gt/cache.hpp"
#include "gt/error.hpp"
#include "gt/gpu.hpp"
#include "gt/portfolio.hpp"
#include "gt/report.hpp"
#include "gt/rules.hpp"
#include "search.hpp"

namespace gt {
namespace {

using json = nlohmann::ordered_json;

// A JSON value as a user would have typed it (true, 12, 0.5, "close"): what the library's one
// parser of typed text values reads.
std::string value_text(const json& v, std::string_view key) {
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_integer()) return std::to_string(v.get<long long>());
  if (v.is_number_unsigned()) return std::to_string(v.get<unsigned long long>());
  if (v.is_number_float()) return fmt::format("{}", v.get<double>());
  if (v.is_string()) return v.get<std::string>();
  throw ParamError({std::string(key)}, fmt::format("{} = {}: expected a number, a bool or text", key, v.dump()));
}

template <class T>
T field(const json& j, const char* key, const char* expected) {
  try {
    return j.at(key).get<T>();
  } catch (const json::exception&) {
    throw ParamError({key}, fmt::format("{} = {}: expected {}", key, j.at(key).dump(), expected));
  }
}

// A whole number >= 0, refused (not truncated) when given as 1.5, -1 or "7".
std::uint64_t whole_number(const json& j, const char* key, const char* expected) {
  const json& v = j.at(key);
  if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<std::int64_t>() >= 0))
    throw ParamError({key}, fmt::format("{} = {}: expected {}", key, v.dump(), expected));
  return v.get<std::uint64_t>();
}

bool is_redis(std::string_view location) {
  return location.rfind("redis://", 0) == 0 || location.rfind("rediss://", 0) == 0;
}

std::string gpus_text(const std::vector<int>& gpus) {
  return gpus.empty() ? "all" : fmt::format("{}", fmt::join(gpus, ","));
}

}  // namespace

ExecutionOptions execution_options(const json& options, bool with_exits) {
  if (!options.is_object()) throw ParamError("execution options are a JSON object of option values");
  ExecutionOptions o;
  for (const auto& [name, value] : options.items()) {
    if (value.is_null()) continue;
    if (!is_exit_param(name)) {
      set_execution_option(o, name, value_text(value, name));
      continue;
    }
    if (!with_exits)
      throw ParamError(
          fmt::format("{} is a parameter of the strategy, not an execution option: give it with the "
                      "parameters (fixed, or an axis of the grid)",
                      name));
    const std::string text = value_text(value, name);
    const ExitParamInfo& info = *std::find_if(exit_param_table().begin(), exit_param_table().end(),
                                              [&](const ExitParamInfo& p) { return p.name == name; });
    o.exits.*info.field =
        parse_param_value({name, info.integer ? ParamType::kInt : ParamType::kFloat, 0, info.max, 0, ""}, text);
  }
  o.validate();
  return o;
}

std::vector<std::pair<std::string, std::string>> assignments(const json& values) {
  if (!values.is_object()) throw ParamError("parameter values are a JSON object such as {\"fast\": 10}");
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, value] : values.items()) out.emplace_back(name, value_text(value, name));
  return out;
}

StudyRequest study_request(const json& j, std::vector<Bars> symbols) {
  static const std::vector<std::string> kKeys = {
      "strategy",   "grid",    "grid_file",  "fixed",     "axes",   "base",   "execution",
      "metric",     "top",     "min_trades", "threads",   "device", "gpus",   "reference",
      "cache",      "journal", "resume",     "force",     "out",    "rules",  "robustness",
      "pbo_blocks", "report",  "window",     "portfolio", "search", "budget", "seed"};
  if (!j.is_object()) throw ParamError("a study request is a JSON object");
  for (const auto& [key, value] : j.items())
    if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end())
      throw ParamError(fmt::format("unknown study option '{}' (allowed: {})", key, fmt::join(kKeys, ", ")));
  if (!j.contains("strategy") && !j.contains("rules")) throw ParamError({"strategy"}, "a study needs a strategy");
  StudyRequest r;
  r.symbols = std::move(symbols);
  if (j.contains("rules") && !j.at("rules").is_null()) {
    r.rules = j.at("rules");
    r.rule_strategy = rules::compile(rules::rules_from_json(r.rules));
  }
  const Strategy& strategy =
      r.rule_strategy ? *r.rule_strategy : find_strategy(field<std::string>(j, "strategy", "a strategy name"));
  if (j.contains("axes")) {
    std::vector<Grid::Axis> axes;
    for (const auto& axis : j.at("axes"))
      axes.push_back({strategy.index_of(axis.at("name").get<std::string>()),
                      axis.at("values").get<std::vector<double>>(), axis.value("range", false)});
    r.grid.emplace(strategy, std::move(axes), field<ParamValues>(j, "base", "the base values"));
  } else {
    std::vector<std::string> specs;
    if (j.contains("grid")) specs = field<std::vector<std::string>>(j, "grid", "a list of NAME=SPEC items");
    std::optional<std::filesystem::path> file;
    if (j.contains("grid_file") && !j.at("grid_file").is_null())
      file = field<std::string>(j, "grid_file", "a file name");
    const auto fixed =
        j.contains("fixed") ? assignments(j.at("fixed")) : std::vector<std::pair<std::string, std::string>>();
    r.grid.emplace(parse_grid(strategy, specs, file, fixed));
  }
  if (j.contains("execution")) r.execution = execution_options(j.at("execution"));
  if (j.contains("window") && !j.at("window").is_null()) {  // a walk-forward's window (docs/SEMANTICS.md)
    const json& w = j.at("window");
    r.execution.first_bar = field<std::size_t>(w, "first_bar", "a bar index");
    r.execution.close_at_end = field<bool>(w, "close_at_end", "true or false");
  }
  auto& o = r.ranking;
  if (j.contains("metric")) o.metric = field<std::string>(j, "metric", "a metric name");
  metric_index(o.metric);
  if (j.contains("top") && !j.at("top").is_null()) o.top = field<std::size_t>(j, "top", "a whole number >= 0");
  if (j.contains("top") && j.at("top").is_null()) o.top = SIZE_MAX;  // every valid combination
  if (j.contains("min_trades")) o.min_trades = field<std::int64_t>(j, "min_trades", "a whole number");
  if (j.contains("threads")) o.threads = field<int>(j, "threads", "a whole number >= 0");
  if (o.threads < 0)
    throw ParamError({"threads"}, fmt::format("threads = {}: expected 0 (every core) or more", o.threads));
  if (j.contains("device")) o.device = field<std::string>(j, "device", "cpu, cuda or auto");
  require_device(o.device);
  if (j.contains("reference")) o.reference = field<bool>(j, "reference", "true or false");
  o.robustness_blocks =
      robustness_blocks(j.contains("robustness") && field<bool>(j, "robustness", "true or false"),
                        j.contains("pbo_blocks") && !j.at("pbo_blocks").is_null()
                            ? std::optional(field<std::size_t>(j, "pbo_blocks", "an even whole number from 4"))
                            : std::nullopt);
  if (j.contains("portfolio") && !j.at("portfolio").is_null() && j.at("portfolio") != false) {
    const json& p = j.at("portfolio");  // true, or {"weights": [...], "rebalance": N}
    PortfolioOptions portfolio;
    if (p.is_object()) {
      if (p.contains("weights") && !p.at("weights").is_null())
        portfolio.weights = field<std::vector<double>>(p, "weights", "a list of numbers, one per symbol");
      if (p.contains("rebalance")) portfolio.rebalance = field<std::size_t>(p, "rebalance", "a whole number >= 0");
    } else if (p != true) {
      throw ParamError({"portfolio"}, fmt::format("portfolio = {}: expected true or {{\"weights\": [...], "
                                                  "\"rebalance\": N}}",
                                                  p.dump()));
    }
    o.portfolio = portfolio;
  }
  if (j.contains("search") && !j.at("search").is_null())
    o.search.method = field<std::string>(j, "search", "grid, random, halving or bayes");
  if (j.contains("budget") && !j.at("budget").is_null())
    o.search.budget = whole_number(j, "budget", "a whole number of combinations above 0");
  if (j.contains("seed") && !j.at("seed").is_null()) o.search.seed = whole_number(j, "seed", "a whole number >= 0");
  const std::string gpus = j.contains("gpus") ? field<std::string>(j, "gpus", "all or GPU ordinals") : "all";
  o.gpus = gpus_for(o.device, gpus);
  if (j.contains("cache") && !j.at("cache").is_null())
    r.store.cache = field<std::string>(j, "cache", "a folder or redis://...");
  if (j.contains("journal") && !j.at("journal").is_null())
    r.store.journal = field<std::string>(j, "journal", "a folder");
  if (j.contains("resume")) r.store.resume = field<bool>(j, "resume", "true or false");
  if (j.contains("force")) r.force = field<bool>(j, "force", "true or false");
  if (j.contains("out") && !j.at("out").is_null()) {
    r.out = field<std::string>(j, "out", "a file name");
    check_output_path(r.out);
  }
  if (j.contains("report") && !j.at("report").is_null()) {
    r.report = field<std::string>(j, "report", "a file name");
    check_output_path(r.report);
  }
  return r;
}

json study_request_json(const StudyRequest& r) {
  json j;
  const Grid& grid = *r.grid;
  j["strategy"] = grid.strategy().name;
  if (!r.rules.is_null()) j["rules"] = r.rules;
  json axes = json::array();
  for (const auto& axis : grid.axes())
    axes.push_back({{"name", grid.strategy().params[axis.param].name}, {"values", axis.values}, {"range", axis.range}});
  j["axes"] = axes;
  j["base"] = grid.base();
  json execution = json::object();
  for (const auto& spec : execution_option_specs()) {
    const std::string text = execution_option_text(r.execution, spec.name);
    if (!text.empty()) execution[std::string(spec.name)] = text;
  }
  j["execution"] = execution;
  if (r.execution.first_bar > 0 || r.execution.close_at_end)
    j["window"] = {{"first_bar", r.execution.first_bar}, {"close_at_end", r.execution.close_at_end}};
  const auto& o = r.ranking;
  j["metric"] = o.metric;
  j["top"] = o.top == SIZE_MAX ? json(nullptr) : json(o.top);
  j["min_trades"] = o.min_trades;
  j["threads"] = o.threads;
  j["device"] = o.device;
  j["gpus"] = gpus_text(o.gpus);
  j["reference"] = o.reference;
  j["robustness"] = o.robustness_blocks > 0;
  if (o.robustness_blocks > 0) j["pbo_blocks"] = o.robustness_blocks;
  if (o.portfolio) j["portfolio"] = {{"weights", o.portfolio->weights}, {"rebalance", o.portfolio->rebalance}};
  if (!o.search.grid()) {
    j["search"] = o.search.method;
    j["budget"] = o.search.budget;
    j["seed"] = o.search.seed;
  }
  j["cache"] = r.store.cache;
  j["journal"] = r.store.journal.string();
  j["resume"] = r.store.resume;
  j["force"] = r.force;
  if (!r.out.empty()) j["out"] = r.out.string();
  if (!r.report.empty()) j["report"] = r.report.string();
  return j;
}

struct RangeWorker::Impl {
  StudyRequest request;
  std::size_t unit;
  std::vector<std::string> names;
  std::unique_ptr<Evaluator> evaluator;
  std::unique_ptr<ResultCache> cache;
  std::string cache_ns;
  std::size_t bars = 0;                   // the unit's returns
  std::vector<std::size_t> block_starts;  // with robustness
};

RangeWorker::RangeWorker(const json& request, std::vector<Bars> symbols, std::size_t unit,
                         std::vector<std::string> names)
    : impl_(new Impl{study_request(request, std::move(symbols)), unit, std::move(names), nullptr, nullptr, {}, 0, {}}) {
  auto& w = *impl_;
  const StudyRequest& r = w.request;
  if (unit >= w.names.size()) throw ParamError(fmt::format("unit {} of {}", unit, w.names.size()));
  if (!r.ranking.portfolio && r.symbols.size() != 1)
    throw ParamError(
        fmt::format("a range worker evaluates one symbol, or a portfolio's symbols together: given {} "
                    "symbols and no portfolio",
                    r.symbols.size()));
  w.bars = ranked_unit_bars(r.symbols, r.ranking.portfolio).front();
  if (const auto starts = robustness_block_starts(r.symbols, *r.grid, r.ranking); !starts.empty())
    w.block_starts = starts.front();
  if (!r.store.cache.empty()) {
    w.cache = open_result_cache(r.store.cache);
    w.cache_ns = ranked_namespaces(r.symbols, r.grid->strategy(), r.execution, r.ranking.portfolio).front();
  }
  std::optional<tbb::global_control> limit;
  if (r.ranking.threads > 0)
    limit.emplace(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(r.ranking.threads));
  const Bars& b = r.symbols.front();
  w.evaluator = r.ranking.portfolio   ? make_portfolio_evaluator(r.symbols, *r.grid, r.execution, *r.ranking.portfolio)
                : r.ranking.reference ? make_reference_evaluator(b, *r.grid, r.execution)
                                      : make_evaluator(b, *r.grid, r.execution);
}

RangeWorker::~RangeWorker() = default;

std::string_view RangeWorker::evaluator() const {
  return impl_->evaluator->name();
}

RangeOutcome RangeWorker::evaluate(std::uint64_t first, std::uint64_t count, bool rows) const {
  const auto& w = *impl_;
  std::optional<tbb::global_control> limit;
  if (w.request.ranking.threads > 0)
    limit.emplace(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(w.request.ranking.threads));
  return outcome(evaluate_range(*w.evaluator, *w.request.grid, first, count, w.cache.get(), w.cache_ns, w.block_starts),
                 rows);
}

RangeOutcome RangeWorker::evaluate(std::span<const std::uint64_t> indices, bool rows) const {
  const auto& w = *impl_;
  std::optional<tbb::global_control> limit;
  if (w.request.ranking.threads > 0)
    limit.emplace(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(w.request.ranking.threads));
  return outcome(
      evaluate_combinations(*w.evaluator, *w.request.grid, indices, w.cache.get(), w.cache_ns, w.block_starts), rows);
}

RangeOutcome RangeWorker::outcome(ChunkResults&& chunk, bool rows) const {
  const auto& w = *impl_;
  const auto& o = w.request.ranking;
  chunk.symbol = w.unit;
  RangeOutcome out{StudyState(w.names.size(), o.top, metric_index(o.metric), o.min_trades, o.robustness_blocks), {}};
  out.state.add(chunk, w.bars);
  if (rows) out.rows = CsvResultSink(*w.request.grid, w.names, [](std::string_view) {}).format(chunk);
  return out;
}

std::vector<RankedUnit> ranked_units(const StudyRequest& r) {
  if (r.ranking.portfolio) return {{ranked_names(r.symbols, r.ranking.portfolio).front(), r.symbols}};
  std::vector<RankedUnit> units;
  for (const Bars& bars : r.symbols) units.push_back({bars.symbol, {bars}});
  return units;
}

void run_tasks(RangeExecutor& executor, const json& request, const std::vector<RankedUnit>& units,
               std::span<const RangeTask> tasks, bool rows,
               const std::function<void(std::size_t, RangeOutcome&&)>& done) {
  std::vector<std::uint8_t> seen(tasks.size());
  executor.run(request, units, tasks, rows, [&](std::size_t i, RangeOutcome&& outcome) {
    if (i >= tasks.size() || seen[i])
      throw Error(fmt::format("{}: task {} reported twice or unknown", executor.name(), i));
    seen[i] = 1;
    done(i, std::move(outcome));
  });
  if (std::find(seen.begin(), seen.end(), 0) != seen.end())
    throw Error(fmt::format("{}: some tasks never reported", executor.name()));
}

namespace {

// The store a local run records into as it goes. With a cache, the shared cache itself, so that
// every run resumes by running it again; with a journal, one private to this run (deleted when it
// completes) that only `resume` reads.
struct RunStore {
  std::unique_ptr<ResultCache> cache;
  std::filesystem::path journal;
  std::string shown = "off";
};

RunStore open_store(const StudyRequest& r) {
  RunStore store;
  if (!r.store.cache.empty()) {
    store.cache = open_result_cache(r.store.cache);
    store.shown = store.cache->describe();
  } else if (!r.store.journal.empty()) {
    store.journal =
        r.store.journal /
        run_journal_name(ranked_namespaces(r.symbols, r.grid->strategy(), r.execution, r.ranking.portfolio), *r.grid);
    std::error_code ec;
    if (!r.store.resume) std::filesystem::remove_all(store.journal, ec);  // a fresh run starts from nothing
    store.cache = std::make_unique<ResultCache>(make_disk_backend(store.journal));
    store.shown = "off (run journal " + store.journal.string() + ")";
  }
  return store;
}

void run_on(RangeExecutor& executor, const StudyRequest& r, AtomicFile* file, OptimizeResult& result) {
  const Grid& grid = *r.grid;
  // What cannot be computed is refused before any task.
  robustness_block_starts(r.symbols, grid, r.ranking);
  if (r.ranking.portfolio) check_portfolio(r.symbols, *r.ranking.portfolio);
  const std::vector<RankedUnit> units = ranked_units(r);
  const std::uint64_t size = std::max<std::uint64_t>(1, executor.task_size(grid.size()));
  std::vector<RangeTask> tasks;
  for (std::size_t u = 0; u < units.size(); ++u)
    for (std::uint64_t first = 0; first < grid.size(); first += size)
      tasks.push_back({u, first, std::min(size, grid.size() - first), {}});
  StudyState total(units.size(), r.ranking.top, metric_index(r.ranking.metric), r.ranking.min_trades,
                   r.ranking.robustness_blocks);
  // Rows reach the file in grid order, whatever order the tasks finish in.
  std::map<std::size_t, std::string> waiting;
  std::size_t next = 0;
  run_tasks(executor, study_request_json(r), units, tasks, file != nullptr, [&](std::size_t i, RangeOutcome&& outcome) {
    total.combine(std::move(outcome.state));
    if (!file) return;
    waiting.emplace(i, std::move(outcome.rows));
    for (auto it = waiting.find(next); it != waiting.end(); it = waiting.find(++next)) {
      file->write(it->second);
      waiting.erase(it);
    }
  });
  require_some_valid(grid, total.valid());
  std::move(total).finish(result, r.symbols, grid, r.execution, r.ranking.portfolio);
  result.combinations = grid.size();
  result.evaluator = executor.name();
}

// The report's heatmap needs two parameters that vary: refused before any work otherwise.
void require_reportable(const Grid& grid) {
  std::size_t varying = 0;
  for (const auto& axis : grid.axes()) varying += axis.values.size() > 1;
  if (varying < 2)
    throw ParamError({"report"}, fmt::format("the report draws a heatmap over two parameters, and this grid varies "
                                             "{}: vary two, or leave the report out",
                                             varying));
}

// The study's report from its results file: each symbol's heatmap, distributions and best
// combinations, and its robustness panel when the study computed robustness.
void write_report(const StudyRequest& r, const OptimizeResult& result, const std::filesystem::path& results,
                  std::string_view chart_js) {
  report::OptimizationReportOptions options;
  options.metric = r.ranking.metric;
  options.title = "Optimization report: " + r.grid->strategy().name;
  std::vector<report::RobustnessPanel> panels;
  const std::vector<std::string> names = ranked_names(r.symbols, r.ranking.portfolio);
  for (const SymbolRobustness& x : result.robustness)
    panels.push_back({names.size() > 1 ? names[x.symbol] : "", x, r.ranking.robustness_blocks});
  write_file_atomically(r.report,
                        report::optimization_report_html(report::read_results(results), options, chart_js, panels));
}

}  // namespace

StudyOutcome run_study(const StudyRequest& r, RangeExecutor* executor) {
  if (!r.grid) throw ParamError("a study needs a strategy and a grid");
  r.execution.validate();
  metric_index(r.ranking.metric);
  const SearchOptions& search = r.ranking.search;
  check_search(search, *r.grid, r.ranking.portfolio.has_value());
  if (!search.grid() && search.budget >= r.grid->size()) {  // the whole space is asked for: the grid does it
    if (r.notice)
      r.notice(
          fmt::format("a budget of {} covers the whole space of {} combinations: the grid is run instead of the "
                      "{} search",
                      search.budget, r.grid->size(), search.method));
    StudyRequest whole = r;
    whole.ranking.search = {};
    StudyOutcome outcome = run_study(whole, executor);
    outcome.search = {{"method", "grid"},
                      {"asked", search.method},
                      {"budget", search.budget},
                      {"evaluated", r.grid->size()},
                      {"note", "the budget covers the whole space"}};
    return outcome;
  }
  std::string chart_js;
  std::filesystem::path results = r.out;  // with a report and no results file: a temporary one
  if (!r.report.empty()) {
    require_reportable(*r.grid);
    chart_js = report::chart_library();  // says how to get it before any work
    if (results.empty())
      results = std::filesystem::temp_directory_path() /
                fmt::format("gt-report-results-{}-{}.csv", ::getpid(),
                            std::chrono::steady_clock::now().time_since_epoch().count());
  }
  StudyOutcome outcome;
  if (search.grid()) {
    // Before anything is allocated or written: what the study will take, refused when it cannot fit
    // (a search holds its budget's results, not the grid's).
    const bool disk_store = r.store.cache.empty() ? !r.store.journal.empty() && !executor : !is_redis(r.store.cache);
    const std::filesystem::path store_dir =
        !disk_store ? std::filesystem::path()
                    : (r.store.cache.empty() ? r.store.journal : std::filesystem::path(r.store.cache));
    const auto estimate =
        estimate_study(r.symbols, *r.grid, r.execution, r.ranking.threads, !results.empty(), disk_store);
    if (!r.force) require_study_fits(estimate, results, store_dir);
    if (r.notice && (estimate.seconds > 60 || estimate.combinations > 100'000'000))
      r.notice("estimate: " + estimate.describe());
  }
  std::unique_ptr<AtomicFile> file;
  std::optional<CsvResultSink> sink;
  if (!results.empty()) {
    file = std::make_unique<AtomicFile>(results);
    sink.emplace(*r.grid, ranked_names(r.symbols, r.ranking.portfolio),
                 [&](std::string_view text) { file->write(text); });
    file->write(sink->header());
  }
  if (!search.grid()) {
    outcome = run_search(r, executor, sink ? &*sink : nullptr);
    outcome.store = r.store.cache.empty() ? "off" : redact_url(r.store.cache);
  } else if (executor) {
    // Workers anywhere reach only a cache every node reaches; a journal lives on this machine.
    const auto start = std::chrono::steady_clock::now();
    run_on(*executor, r, file.get(), outcome.result);
    outcome.result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    outcome.store = r.store.cache.empty() ? "off" : redact_url(r.store.cache);
    outcome.executor = executor->report();
  } else {
    RunStore store = open_store(r);
    OptimizeOptions options = r.ranking;
    options.cache = store.cache.get();
    outcome.result = optimize(r.symbols, *r.grid, r.execution, options, sink ? &*sink : nullptr);
    outcome.store = store.shown;
    if (store.cache) outcome.store_rejected = store.cache->rejected() + store.cache->unreadable();
    if (!store.journal.empty()) {
      store.cache.reset();
      std::error_code ec;
      std::filesystem::remove_all(store.journal, ec);  // the run is complete: nothing left to resume
    }
  }
  if (file) file->commit();
  if (!r.report.empty()) {
    const auto remove_temporary = [&] {
      std::error_code ec;
      if (r.out.empty()) std::filesystem::remove(results, ec);
    };
    try {
      write_report(r, outcome.result, results, chart_js);
    } catch (...) {
      remove_temporary();
      throw;
    }
    remove_temporary();
  }
  return outcome;
}

json metrics_json(const Metrics& m) {
  json j = json::object();
  const auto& table = metric_table();
  for (std::size_t i = 0; i < table.size(); ++i) {
    if (table[i].integer)
      j[std::string(table[i].name)] = m.*table[i].integer;
    else
      j[std::string(table[i].name)] = m.*table[i].real;
  }
  return j;
}

json params_json(const Strategy& strategy, std::span<const double> values) {
  json p = json::object();
  for (std::size_t i = 0; i < strategy.params.size(); ++i) {
    const auto& spec = strategy.params[i];
    if (spec.type == ParamType::kBool)
      p[spec.name] = values[i] != 0;
    else if (spec.type == ParamType::kInt)
      p[spec.name] = static_cast<long long>(values[i]);
    else
      p[spec.name] = values[i];
  }
  return p;
}

json ranked_json(const StudyRequest& r, const StudyOutcome& outcome) {
  json out = json::array();
  const std::vector<std::string> names = ranked_names(r.symbols, r.ranking.portfolio);
  for (const auto& per_symbol : outcome.result.top)
    for (const auto& c : per_symbol)
      out.push_back({{"symbol", names[c.symbol]},
                     {"index", c.index},
                     {"parameters", params_json(r.grid->strategy(), c.params)},
                     {"metrics", metrics_json(c.metrics)}});
  return out;
}

json study_summary_json(const StudyRequest& r, const StudyOutcome& outcome) {
  const OptimizeResult& result = outcome.result;
  json j;
  j["combinations"] = result.combinations;
  j["symbols"] = r.symbols.size();
  j["valid"] = result.valid;
  j["invalid"] = result.invalid;
  j["computed"] = result.computed;
  j["from_cache"] = result.from_cache;
  j["seconds"] = result.seconds;
  j["bar_combinations"] = result.bar_combinations;
  j["combos_per_sec"] = result.seconds > 0 ? static_cast<double>(result.computed) / result.seconds : 0.0;
  j["bar_combos_per_sec"] = result.seconds > 0 ? static_cast<double>(result.bar_combinations) / result.seconds : 0.0;
  j["engine"] = result.evaluator;
  j["device"] = result.device;
  j["cache"] = outcome.store;
  j["cache_rejected"] = outcome.store_rejected;
  if (!r.report.empty()) j["report"] = r.report.string();
  if (!outcome.search.is_null()) j["search"] = outcome.search;
  const std::vector<std::string> names = ranked_names(r.symbols, r.ranking.portfolio);
  if (r.ranking.portfolio) j["portfolio"] = symbol_names(r.symbols);
  json best = json::array();
  for (std::size_t s = 0; s < names.size(); ++s) {
    if (s >= result.top.size() || result.top[s].empty()) {
      best.push_back(nullptr);
      continue;
    }
    const auto& top = result.top[s].front();
    json b = metrics_json(top.metrics);
    b["symbol"] = names[s];
    b["parameters"] = params_json(r.grid->strategy(), top.params);
    best.push_back(b);
  }
  j["best"] = names.size() == 1 ? best[0] : best;
  if (!result.robustness.empty()) {
    json robust = json::array();
    for (const SymbolRobustness& x : result.robustness) {
      const auto& d = x.deflated;
      const auto& o = x.overfitting;
      ParamValues params(r.grid->base().size());
      r.grid->decode(x.best_index, params);
      robust.push_back({{"symbol", names[x.symbol]},
                        {"parameters", params_json(r.grid->strategy(), params)},
                        {"deflated_sharpe", d.dsr},
                        {"sharpe_per_bar", d.sharpe},
                        {"expected_max_sharpe", d.expected_max},
                        {"skewness", d.skewness},
                        {"kurtosis", d.kurtosis},
                        {"trials", d.trials},
                        {"trials_sharpe_variance", d.variance},
                        {"returns", d.returns},
                        {"pbo", o.pbo},
                        {"splits", o.splits},
                        {"blocks", r.ranking.robustness_blocks},
                        {"logit_q1", o.logit_q1},
                        {"logit_median", o.logit_median},
                        {"logit_q3", o.logit_q3}});
    }
    j["robustness"] = robust;
  }
  for (const auto& [key, value] : outcome.executor.items()) j[key] = value;
  return j;
}

std::string study_summary_text(const StudyRequest& r, const StudyOutcome& outcome) {
  const OptimizeResult& result = outcome.result;
  const Strategy& strategy = r.grid->strategy();
  std::string out;
  const std::vector<std::string> names = ranked_names(r.symbols, r.ranking.portfolio);
  for (std::size_t s = 0; s < names.size() && s < result.top.size(); ++s) {
    const auto& top = result.top[s];
    out += fmt::format("{}: top {} by {}\n", names[s], top.size(), r.ranking.metric);
    out += fmt::format("{:>4}  ", "rank");
    for (const auto& p : strategy.params) out += fmt::format("{:>13} ", p.name);
    out += fmt::format("{:>9} {:>11} {:>9} {:>7} {:>9}\n", "sharpe", "total_ret%", "max_dd%", "trades", "win%");
    for (std::size_t i = 0; i < top.size(); ++i) {
      const auto& c = top[i];
      out += fmt::format("{:>4}  ", i + 1);
      for (std::size_t p = 0; p < strategy.params.size(); ++p)
        out += fmt::format("{:>13} ", format_param_value(strategy.params[p], c.params[p]));
      out += fmt::format("{:>9.4f} {:>11.2f} {:>9.2f} {:>7} {:>9.2f}\n", c.metrics.sharpe, 100 * c.metrics.total_return,
                         100 * c.metrics.max_drawdown, c.metrics.trades, 100 * c.metrics.win_rate);
    }
  }
  out += fmt::format(
      "{} combinations x {} symbols: {} valid, {} invalid (skipped), {} in {:.3f} s "
      "({:.3g} combos/s, {:.3g} bar-combos/s; {} engine)\n",
      result.combinations, r.symbols.size(), result.valid, result.invalid,
      result.from_cache ? fmt::format("{} computed, {} from the cache,", result.computed, result.from_cache)
                        : fmt::format("{} computed", result.computed),
      result.seconds, result.seconds > 0 ? static_cast<double>(result.computed) / result.seconds : 0.0,
      result.seconds > 0 ? static_cast<double>(result.bar_combinations) / result.seconds : 0.0, result.evaluator);
  if (const json& s = outcome.search; !s.is_null() && s.at("method") != "grid")
    out += fmt::format(
        "search: {} evaluated {} of the {} combinations per {} (budget {}, seed {}; {} evaluations in "
        "all)\n",
        s.at("method").get<std::string>(), s.at("evaluated").get<std::uint64_t>(), result.combinations,
        r.ranking.portfolio ? "portfolio" : "symbol", s.at("budget").get<std::uint64_t>(),
        s.at("seed").get<std::uint64_t>(), s.at("evaluations").get<std::uint64_t>());
  else if (!s.is_null())
    out += fmt::format("search: the grid, every combination (a budget of {} covers the whole space)\n",
                       s.at("budget").get<std::uint64_t>());
  if (!r.report.empty()) out += fmt::format("report written to {}\n", r.report.string());
  for (const SymbolRobustness& x : result.robustness)
    out += fmt::format(
        "{}: deflated sharpe {:.3f} (the best's per-bar sharpe {:.4f} against {:.4f} expected of the best of {} "
        "trials); probability of backtest overfitting {:.3f} over {} splits of {} blocks (logits: median {:.2f})\n",
        names[x.symbol], x.deflated.dsr, x.deflated.sharpe, x.deflated.expected_max, x.deflated.trials,
        x.overfitting.pbo, x.overfitting.splits, r.ranking.robustness_blocks, x.overfitting.logit_median);
  if (!r.out.empty()) out += fmt::format("results: {}\n", r.out.string());
  return out;
}

std::string json_text(const json& value) {
  const std::function<json(const json&)> finite = [&](const json& v) -> json {
    if (v.is_number_float() && std::isinf(v.get<double>())) return v.get<double>() > 0 ? "inf" : "-inf";
    if (v.is_object()) {
      json out = json::object();
      for (const auto& [k, item] : v.items()) out[k] = finite(item);
      return out;
    }
    if (v.is_array()) {
      json out = json::array();
      for (const auto& item : v) out.push_back(finite(item));
      return out;
    }
    return v;
  };
  return finite(value).dump(2);
}

}  // namespace gt
