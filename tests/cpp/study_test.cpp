// Studies (docs/SEMANTICS.md "Studies"): one request, one runner. Ranges evaluated apart and merged
// through StudyState's combine step rank exactly as one local run; a state survives its bytes; a
// request survives its JSON form; executors write the same results file as the local engine; and
// errors name the library's parameters, which front ends phrase as their own.
#include "gt/study.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "gt/error.hpp"

namespace {

const gt::Bars& orcl() {
  static const gt::Bars bars = gt::load_csv(GT_DATA_DIR "/orcl-1995-2014.csv");
  return bars;
}
const gt::Bars& yhoo() {
  static const gt::Bars bars = gt::load_csv(GT_DATA_DIR "/yhoo-1996-2014.csv");
  return bars;
}

gt::StudyRequest seed_request(std::size_t top) {
  nlohmann::ordered_json j = {{"strategy", "ma_cross"},
                              {"grid", {"fast=5:19", "slow=20:49", "ma_type=0:2", "volume_filter=false,true"}},
                              {"top", top}};
  return gt::study_request(j, {orcl(), yhoo()});
}

std::filesystem::path temp_path(const std::string& name) {
  return std::filesystem::temp_directory_path() / ("gt-study-test-" + std::to_string(::getpid()) + "-" + name);
}

std::string read(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void expect_same_ranking(const gt::OptimizeResult& a, const gt::OptimizeResult& b) {
  ASSERT_EQ(a.top.size(), b.top.size());
  for (std::size_t s = 0; s < a.top.size(); ++s) {
    ASSERT_EQ(a.top[s].size(), b.top[s].size()) << "symbol " << s;
    for (std::size_t i = 0; i < a.top[s].size(); ++i) {
      EXPECT_EQ(a.top[s][i].index, b.top[s][i].index) << "symbol " << s << " rank " << i;
      EXPECT_EQ(a.top[s][i].params, b.top[s][i].params);
      EXPECT_EQ(a.top[s][i].metrics.sharpe, b.top[s][i].metrics.sharpe);
    }
  }
  EXPECT_EQ(a.valid, b.valid);
  EXPECT_EQ(a.invalid, b.invalid);
  EXPECT_EQ(a.computed, b.computed);
}

// Ranges run by RangeWorkers in a shuffled order, their states sent home as bytes.
class ShuffledExecutor final : public gt::RangeExecutor {
 public:
  std::string name() const override { return "shuffled"; }
  std::uint64_t task_size(std::uint64_t) override { return 333; }
  void run(const nlohmann::ordered_json& request, const std::vector<gt::RankedUnit>& units,
           std::span<const gt::RangeTask> tasks, bool rows,
           const std::function<void(std::size_t, gt::RangeOutcome&&)>& done) override {
    std::vector<std::size_t> order(tasks.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), std::mt19937(7));
    std::vector<std::string> names;
    for (const auto& u : units) names.push_back(u.name);
    for (const std::size_t i : order) {
      const gt::RangeWorker worker(request, units[tasks[i].unit].symbols, tasks[i].unit, names);
      gt::RangeOutcome outcome = tasks[i].indices.empty() ? worker.evaluate(tasks[i].first, tasks[i].count, rows)
                                                          : worker.evaluate(tasks[i].indices, rows);
      done(i, {gt::StudyState::deserialize(outcome.state.serialize()), std::move(outcome.rows)});
    }
    ++runs;
  }
  nlohmann::ordered_json report() const override { return {{"tasks_run_by", "shuffled"}}; }
  int runs = 0;
};

TEST(Study, RangesRunApartAndCombinedRankAndWriteExactlyAsOneLocalRun) {
  gt::StudyRequest request = seed_request(25);
  request.out = temp_path("local.csv");
  const gt::StudyOutcome local = gt::run_study(request);
  ShuffledExecutor executor;
  gt::StudyRequest remote = request;
  remote.out = temp_path("remote.csv");
  const gt::StudyOutcome distributed = gt::run_study(remote, &executor);
  EXPECT_EQ(executor.runs, 1);
  EXPECT_EQ(distributed.result.evaluator, "shuffled");
  EXPECT_EQ(gt::study_summary_json(remote, distributed)["tasks_run_by"], "shuffled");
  expect_same_ranking(local.result, distributed.result);
  EXPECT_EQ(read(request.out), read(remote.out));
  EXPECT_GT(read(request.out).size(), 100000u);
  std::filesystem::remove(request.out);
  std::filesystem::remove(remote.out);
}

TEST(Study, RobustnessFromRangesRunApartEqualsOneLocalRun) {
  // The block sums travel in the states' bytes and merge in grid order, whatever order the ranges
  // finish in: every figure is the local run's, bit for bit.
  gt::StudyRequest request = seed_request(3);
  request.ranking.robustness_blocks = 8;
  const gt::StudyOutcome local = gt::run_study(request);
  ShuffledExecutor executor;
  const gt::StudyOutcome distributed = gt::run_study(request, &executor);
  expect_same_ranking(local.result, distributed.result);
  ASSERT_EQ(local.result.robustness.size(), 2u);
  ASSERT_EQ(distributed.result.robustness.size(), 2u);
  for (std::size_t s = 0; s < 2; ++s) {
    const auto &a = local.result.robustness[s], &b = distributed.result.robustness[s];
    EXPECT_EQ(a.best_index, b.best_index);
    EXPECT_EQ(a.overfitting.pbo, b.overfitting.pbo);
    EXPECT_EQ(a.overfitting.splits, 70u);
    EXPECT_EQ(a.overfitting.logits, b.overfitting.logits);
    EXPECT_EQ(a.deflated.dsr, b.deflated.dsr);
    EXPECT_EQ(a.deflated.variance, b.deflated.variance);
  }
  EXPECT_NE(local.result.robustness[0].overfitting.logits, local.result.robustness[1].overfitting.logits);
}

TEST(Study, APortfolioRunAsRangesEqualsOneLocalRunItsFileAndItsRobustness) {
  // A portfolio is one ranked unit: every task carries all of its symbols, and the merged ranking,
  // results file and robustness are the local run's.
  nlohmann::ordered_json j = {{"strategy", "ma_cross"},
                              {"grid", {"fast=5:19:2", "slow=20:50:6"}},
                              {"top", 4},
                              {"robustness", true},
                              {"pbo_blocks", 6},
                              {"portfolio", {{"weights", {0.6, 0.3}}, {"rebalance", 60}}}};
  gt::StudyRequest request = gt::study_request(j, {orcl(), yhoo()});
  request.out = temp_path("portfolio-local.csv");
  const gt::StudyOutcome local = gt::run_study(request);
  const std::vector<gt::RankedUnit> units = gt::ranked_units(request);
  ASSERT_EQ(units.size(), 1u);
  EXPECT_EQ(units[0].name, "portfolio");
  EXPECT_EQ(units[0].symbols.size(), 2u);
  ShuffledExecutor executor;
  gt::StudyRequest remote = request;
  remote.out = temp_path("portfolio-remote.csv");
  const gt::StudyOutcome distributed = gt::run_study(remote, &executor);
  expect_same_ranking(local.result, distributed.result);
  ASSERT_EQ(distributed.result.robustness.size(), 1u);
  EXPECT_EQ(local.result.robustness[0].overfitting.logits, distributed.result.robustness[0].overfitting.logits);
  EXPECT_EQ(local.result.robustness[0].deflated.dsr, distributed.result.robustness[0].deflated.dsr);
  EXPECT_EQ(read(request.out), read(remote.out));
  EXPECT_EQ(read(request.out).rfind("fast,slow,", 0), 0u);  // one unit: no symbol column
  std::filesystem::remove(request.out);
  std::filesystem::remove(remote.out);
}

TEST(Study, ASearchRunOnAnExecutorWritesTheLocalSearchsFile) {
  // A search's rounds are tasks of chosen combinations: run apart in any order, the same choices,
  // ranking, file and robustness as on this machine's cores.
  for (const char* method : {"random", "halving", "bayes"}) {
    nlohmann::ordered_json j = {{"strategy", "ma_cross"},
                                {"grid", {"fast=2:41", "slow=20:119", "ma_type=0:2"}},
                                {"top", 3},
                                {"search", method},
                                {"budget", 400},
                                {"seed", 11},
                                {"robustness", true},
                                {"pbo_blocks", 8}};
    gt::StudyRequest request = gt::study_request(j, {orcl(), yhoo()});
    request.out = temp_path(std::string("search-local-") + method + ".csv");
    const gt::StudyOutcome local = gt::run_study(request);
    ShuffledExecutor executor;
    gt::StudyRequest remote = request;
    remote.out = temp_path(std::string("search-remote-") + method + ".csv");
    const gt::StudyOutcome distributed = gt::run_study(remote, &executor);
    EXPECT_GE(executor.runs, 1) << method;
    expect_same_ranking(local.result, distributed.result);
    EXPECT_EQ(local.search, distributed.search) << method;
    ASSERT_EQ(distributed.result.robustness.size(), 2u);
    EXPECT_EQ(local.result.robustness[1].deflated.dsr, distributed.result.robustness[1].deflated.dsr) << method;
    EXPECT_EQ(read(request.out), read(remote.out)) << method;
    std::filesystem::remove(request.out);
    std::filesystem::remove(remote.out);
  }
}

TEST(Study, CombiningStatesInAnyOrderGivesTheSameRanking) {
  gt::StudyRequest request = seed_request(7);
  const auto evaluator = gt::make_evaluator(orcl(), *request.grid, request.execution);
  const std::size_t metric = gt::metric_index("sharpe");
  std::vector<gt::StudyState> parts;
  for (std::uint64_t first = 0; first < request.grid->size(); first += 500) {
    gt::StudyState part(2, 7, metric, 0);
    part.add(gt::evaluate_range(*evaluator, *request.grid, first,
                                std::min<std::uint64_t>(500, request.grid->size() - first)),
             orcl().size());
    parts.push_back(std::move(part));
  }
  gt::StudyState forward(2, 7, metric, 0), backward(2, 7, metric, 0);
  for (const auto& p : parts) forward.combine(gt::StudyState::deserialize(p.serialize()));
  for (auto it = parts.rbegin(); it != parts.rend(); ++it)
    backward.combine(gt::StudyState::deserialize(it->serialize()));
  gt::OptimizeResult a, b;
  std::move(forward).finish(a);
  std::move(backward).finish(b);
  expect_same_ranking(a, b);
  ASSERT_EQ(a.top[0].size(), 7u);
  EXPECT_TRUE(a.top[1].empty());
  EXPECT_EQ(a.valid, request.grid->size());
}

TEST(Study, StatesOfDifferentStudiesDoNotCombine) {
  gt::StudyState a(1, 5, 0, 0), b(1, 6, 0, 0);
  EXPECT_THROW(a.combine(std::move(b)), gt::Error);
  EXPECT_THROW(gt::StudyState::deserialize("not a state"), gt::Error);
}

TEST(Study, ARequestReadsBackFromItsJsonWithTheSameGridAndOptions) {
  nlohmann::ordered_json j = {{"strategy", "ma_cross"},
                              {"grid", {"fast=5:19:2", "slow=20,30,45.0"}},
                              {"fixed", {{"ma_type", 2}, {"volume_filter", true}}},
                              {"execution", {{"fill", "close"}, {"commission", 0.001}, {"allow_short", true}}},
                              {"metric", "calmar"},
                              {"top", 3},
                              {"min_trades", 4}};
  const gt::StudyRequest a = gt::study_request(j, {});
  const gt::StudyRequest b = gt::study_request(gt::study_request_json(a), {});
  EXPECT_EQ(gt::study_request_json(a).dump(), gt::study_request_json(b).dump());
  EXPECT_EQ(b.grid->size(), 8u * 3u);
  EXPECT_EQ(b.grid->base()[2], 2.0);
  EXPECT_EQ(b.execution.fill, gt::Fill::kClose);
  EXPECT_EQ(b.execution.commission, 0.001);
  EXPECT_TRUE(b.execution.allow_short);
  EXPECT_EQ(b.ranking.metric, "calmar");
  EXPECT_EQ(b.ranking.min_trades, 4);
  EXPECT_EQ(b.execution.first_bar, 0u);
  // A walk-forward window (what a Ray worker must evaluate) and the report travel too.
  gt::StudyRequest window = a;
  window.execution.first_bar = 1200;
  window.execution.close_at_end = true;
  window.report = "r.html";
  const gt::StudyRequest c = gt::study_request(gt::study_request_json(window), {});
  EXPECT_EQ(c.execution.first_bar, 1200u);
  EXPECT_TRUE(c.execution.close_at_end);
  EXPECT_EQ(c.report, "r.html");
}

TEST(Study, RequestErrorsNameTheKey) {
  const auto message = [](nlohmann::ordered_json j) {
    try {
      gt::study_request(j, {});
    } catch (const gt::ParamError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({{"strategy", "ma_cross"}, {"topp", 3}}).find("unknown study option 'topp'"), std::string::npos);
  EXPECT_NE(message({{"strategy", "ma_cross"}, {"top", "ten"}}).find("top = \"ten\""), std::string::npos);
  EXPECT_NE(message({{"strategy", "ma_cross"}, {"metric", "alpha"}}).find("unknown metric 'alpha'"), std::string::npos);
  EXPECT_NE(message({{"strategy", "ma_cross"}, {"execution", {{"fill", "open"}}}})
                .find("fill = 'open' (allowed: next_open, close)"),
            std::string::npos);
  EXPECT_NE(message({{"strategy", "ma_cross"}, {"device", "tpu"}}).find("device tpu: allowed: cpu, cuda, auto"),
            std::string::npos);
}

TEST(Study, FrontEndsPhraseTheParametersAnErrorNames) {
  const gt::ParamError e({"skip_bad_rows", "x"}, "a.csv:2: bad (use skip_bad_rows to drop such rows; x and max_x)");
  const auto cli = gt::phrase_error(e, [](const std::string& name) {
    std::string flag = "--" + name;
    std::replace(flag.begin(), flag.end(), '_', '-');
    return flag;
  });
  EXPECT_EQ(cli, "a.csv:2: bad (use --skip-bad-rows to drop such rows; --x and max_x)");
  EXPECT_EQ(gt::phrase_error(gt::ParamError("plain"), [](const std::string&) { return "?"; }), "plain");
}

TEST(Study, ExecutionOptionsAreDeclaredOnceAndReadByOneParser) {
  gt::ExecutionOptions o;
  for (const auto& spec : gt::execution_option_specs()) {
    if (!spec.default_text.empty()) gt::set_execution_option(o, spec.name, spec.default_text);
    EXPECT_FALSE(spec.help.empty()) << spec.name;
  }
  const gt::ExecutionOptions defaults;
  for (const auto& spec : gt::execution_option_specs())
    EXPECT_EQ(gt::execution_option_text(o, spec.name), gt::execution_option_text(defaults, spec.name)) << spec.name;
  gt::set_execution_option(o, "allow_short", "YES");
  EXPECT_TRUE(o.allow_short);
  try {
    gt::set_execution_option(o, "commission", "1o");
    FAIL() << "no error";
  } catch (const gt::ParamError& e) {
    EXPECT_EQ(e.parameters(), std::vector<std::string>{"commission"});
  }
  EXPECT_THROW(gt::set_execution_option(o, "leverage", "2"), gt::ParamError);
}

TEST(Study, TheMetricTableIsTheOneListOfMetrics) {
  const auto& names = gt::metric_names();
  ASSERT_EQ(names.size(), gt::metric_table().size());
  for (std::size_t i = 0; i < names.size(); ++i) {
    const auto& info = gt::metric_table()[i];
    EXPECT_EQ(names[i], info.name);
    EXPECT_NE(info.real == nullptr, info.integer == nullptr) << info.name;
    EXPECT_EQ(gt::metric_higher_is_better(names[i]), names[i] != "max_drawdown");
  }
  gt::Metrics m;
  m.trades = 3;
  m.profit_factor = INFINITY;
  const auto j = gt::metrics_json(m);
  EXPECT_TRUE(j["trades"].is_number_integer());
  EXPECT_NE(gt::json_text(j).find("\"profit_factor\": \"inf\""), std::string::npos);
}

}  // namespace
