// Searches beyond grids (docs/SEMANTICS.md "Search"): `budget` combinations of a grid's space
// chosen by random, halving or bayes; reproducible by seed whatever the thread count; never a
// combination twice; the budget kept; cached and judged as a grid's results; and on a smooth
// objective whose optimum is known, halving and bayes find it far more often than random.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <numbers>
#include <set>
#include <sstream>

#include "../../src/study/search_model.hpp"
#include "gt/error.hpp"
#include "gt/study.hpp"

namespace {

const gt::Bars& orcl() {
  static const gt::Bars bars = gt::load_csv(GT_DATA_DIR "/orcl-1995-2014.csv");
  return bars;
}

std::filesystem::path temp_path(const std::string& name) {
  return std::filesystem::temp_directory_path() / ("gt-search-test-" + std::to_string(::getpid()) + "-" + name);
}

std::string read(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The crossover over a space of 2,400 x 3 combinations (fast < slow holds for most).
nlohmann::ordered_json search_json(const std::string& method, std::uint64_t budget, std::uint64_t seed) {
  return {{"strategy", "ma_cross"},
          {"grid", {"fast=2:41", "slow=20:79", "ma_type=0:2", "volume_filter=false,true"}},
          {"top", 5},
          {"search", method},
          {"budget", budget},
          {"seed", seed}};
}

gt::StudyOutcome run(nlohmann::ordered_json j, const std::filesystem::path& out = {}) {
  gt::StudyRequest request = gt::study_request(j, {orcl()});
  request.out = out;
  return gt::run_study(request);
}

std::vector<std::string> rows(const std::filesystem::path& file) {
  std::vector<std::string> lines;
  std::istringstream in(read(file));
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(Search, TheSameSeedGivesTheSameResultsFileWhateverTheThreadCount) {
  for (const char* method : {"random", "halving", "bayes"}) {
    auto j = search_json(method, 500, 3);
    j["threads"] = 1;
    run(j, temp_path("one.csv"));
    j["threads"] = 2;
    run(j, temp_path("two.csv"));
    EXPECT_EQ(read(temp_path("one.csv")), read(temp_path("two.csv"))) << method;
    j["seed"] = 4;
    run(j, temp_path("other.csv"));
    EXPECT_NE(read(temp_path("one.csv")), read(temp_path("other.csv"))) << method << ": another seed, other choices";
  }
  for (const char* name : {"one.csv", "two.csv", "other.csv"}) std::filesystem::remove(temp_path(name));
}

TEST(Search, RandomAndBayesEvaluateTheBudgetEachCombinationOnce) {
  for (const char* method : {"random", "bayes"}) {
    const gt::StudyOutcome o = run(search_json(method, 700, 1), temp_path("budget.csv"));
    const auto lines = rows(temp_path("budget.csv"));
    ASSERT_EQ(lines.size(), 1u + 700) << method;
    EXPECT_EQ(std::set<std::string>(lines.begin() + 1, lines.end()).size(), 700u) << method << ": no row twice";
    EXPECT_EQ(o.result.valid, 700u);
    EXPECT_EQ(o.result.computed, 700u) << method << ": nothing computed twice";
    EXPECT_EQ(o.search["evaluated"], 700);
    EXPECT_EQ(o.search["evaluations"], 700);
    EXPECT_EQ(o.search["method"], method);
  }
  std::filesystem::remove(temp_path("budget.csv"));
}

// Without a results file the ranking takes the rounds' combinations as they come, not in grid
// order: the same best, in the same order, and the same counts.
TEST(Search, TheRankingIsTheSameWithOrWithoutAResultsFile) {
  for (const char* method : {"random", "halving", "bayes"}) {
    auto j = search_json(method, 600, 5);
    j["top"] = 40;
    const gt::StudyOutcome with_file = run(j, temp_path("ranked.csv"));
    const gt::StudyOutcome without = run(j);
    ASSERT_EQ(with_file.result.top.size(), 1u);
    ASSERT_EQ(without.result.top.size(), 1u);
    const auto& a = with_file.result.top[0];
    const auto& b = without.result.top[0];
    ASSERT_EQ(a.size(), 40u) << method;
    ASSERT_EQ(b.size(), a.size()) << method;
    for (std::size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].index, b[i].index) << method << " rank " << i;
      EXPECT_EQ(a[i].params, b[i].params) << method << " rank " << i;
      EXPECT_EQ(a[i].metrics.sharpe, b[i].metrics.sharpe) << method << " rank " << i;
    }
    EXPECT_EQ(with_file.result.valid, without.result.valid) << method;
    EXPECT_EQ(with_file.result.computed, without.result.computed) << method;
    EXPECT_EQ(with_file.search, without.search) << method;
  }
  std::filesystem::remove(temp_path("ranked.csv"));
}

TEST(Search, HalvingSpendsTheBudgetsBarsOverRungsOfRecentBars) {
  // 5,036 bars: three halvings (186, 559, 1,678 and 5,036 bars); a budget of 400 combinations on
  // every bar buys 400 x 27 / 4 = 2,700 on the shortest span, each rung a third of the one before.
  const gt::StudyOutcome o = run(search_json("halving", 400, 1), temp_path("halving.csv"));
  const auto& rounds = o.search["rounds"];
  ASSERT_EQ(rounds.size(), 4u);
  std::uint64_t bar_evaluations = 0;
  std::uint64_t expected = 2700;
  for (const auto& rung : rounds) {
    EXPECT_EQ(rung["evaluated"], expected);
    bar_evaluations += rung["evaluated"].get<std::uint64_t>() * rung["bars"].get<std::uint64_t>();
    expected = (expected + 2) / 3;
  }
  EXPECT_EQ(rounds[0]["bars"], 5036 / 27);
  EXPECT_EQ(rounds[3]["bars"], 5036);
  EXPECT_LE(bar_evaluations, 400u * 5036u) << "the budget, in combinations run on every bar";
  EXPECT_EQ(o.search["evaluated"], 2700);
  EXPECT_EQ(rows(temp_path("halving.csv")).size(), 1u + 100) << "the results: the last rung, on every bar";
  std::filesystem::remove(temp_path("halving.csv"));
}

TEST(Search, ACacheServesASecondRunEverythingAndAnotherSearchWhatItShares) {
  const auto cache = temp_path("cache");
  for (const char* method : {"random", "halving", "bayes"}) {
    auto j = search_json(method, 300, 2);
    j["cache"] = cache.string();
    const gt::StudyOutcome first = run(j), second = run(j);
    EXPECT_GT(first.result.computed, 0u) << method;
    EXPECT_EQ(second.result.computed, 0u) << method;
    EXPECT_EQ(second.result.from_cache, second.search["evaluations"].get<std::uint64_t>()) << method;
    // The cache is the study's, not the method's: what an earlier search computed is not computed again.
    EXPECT_EQ(first.result.computed + first.result.from_cache, second.result.from_cache) << method;
    EXPECT_EQ(second.result.top[0][0].index, first.result.top[0][0].index) << method;
  }
  std::filesystem::remove_all(cache);
}

TEST(Search, RobustnessCountsEveryEvaluatedCombinationAsATrial) {
  for (const char* method : {"random", "halving", "bayes"}) {
    auto j = search_json(method, 300, 5);
    j["robustness"] = true;
    j["pbo_blocks"] = 8;
    const gt::StudyOutcome o = run(j);
    ASSERT_EQ(o.result.robustness.size(), 1u);
    EXPECT_EQ(o.result.robustness[0].deflated.trials, o.search["evaluated"].get<std::uint64_t>()) << method;
  }
}

TEST(Search, BadSearchesAreRefusedBeforeAnyWork) {
  const auto refused = [](nlohmann::ordered_json j, const std::string& words) {
    try {
      run(j);
      ADD_FAILURE() << "accepted: " << j.dump();
    } catch (const gt::ParamError& e) {
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  };
  refused(search_json("random", 0, 1), "needs a budget above 0");
  refused(search_json("annealing", 10, 1), "allowed: grid, random, halving, bayes");
  auto lists = search_json("bayes", 10, 1);
  lists["grid"] = {"fast=5,10,15", "slow=20,30"};
  refused(lists, "draws from ranges");
  auto seed = search_json("random", 10, 1);
  seed["seed"] = 1.5;
  refused(seed, "seed = 1.5: expected a whole number");
  auto budget_with_grid = search_json("grid", 10, 1);
  refused(budget_with_grid, "a budget is for the random, halving and bayes searches");
}

TEST(Search, ABudgetCoveringTheSpaceRunsTheGridAndSaysSo) {
  gt::StudyRequest request = gt::study_request(search_json("bayes", 1'000'000, 1), {orcl()});
  std::string told;
  request.notice = [&](const std::string& text) { told = text; };
  const gt::StudyOutcome o = gt::run_study(request);
  EXPECT_NE(told.find("covers the whole space of 14400 combinations"), std::string::npos) << told;
  EXPECT_EQ(o.search["method"], "grid");
  EXPECT_EQ(o.result.valid + o.result.invalid, 14400u);
}

// A smooth objective with a known optimum, as an executor: every combination's "sharpe" is a
// bump around fast 31, slow 211 with ma_type 1, and on fewer bars (a halving rung) the same plus
// a deterministic disturbance that grows as the span shrinks.
class SmoothObjective final : public gt::RangeExecutor {
 public:
  static double value(const gt::ParamValues& p) {
    const double fast = p[0], slow = p[1];
    return std::exp(-std::pow((fast - 31) / 12, 2) - std::pow((slow - 211) / 30, 2)) - 0.2 * (p[2] != 1);
  }
  std::string name() const override { return "smooth objective"; }
  std::uint64_t task_size(std::uint64_t) override { return 500; }
  void run(const nlohmann::ordered_json& request, const std::vector<gt::RankedUnit>& units,
           std::span<const gt::RangeTask> tasks, bool,
           const std::function<void(std::size_t, gt::RangeOutcome&&)>& done) override {
    for (std::size_t i = 0; i < tasks.size(); ++i) {
      const gt::StudyRequest r = gt::study_request(request, units[tasks[i].unit].symbols);
      const std::size_t bars = units[tasks[i].unit].symbols.front().size() - r.execution.first_bar;
      gt::ChunkResults chunk;
      chunk.symbol = tasks[i].unit;
      chunk.indices = tasks[i].indices;
      chunk.first = chunk.indices.front();
      chunk.stride = r.grid->base().size();
      for (const std::uint64_t index : chunk.indices) {
        gt::ParamValues p(chunk.stride);
        r.grid->decode(index, p);
        gt::Metrics m;
        m.trades = 10;
        const double noise = static_cast<double>((index * 0x9E3779B97F4A7C15ULL) >> 40) / double(1 << 24) - 0.5;
        m.sharpe = value(p) + 0.1 * noise * std::sqrt(186.0 / static_cast<double>(bars)) * (bars < 5036);
        chunk.valid.push_back(r.grid->is_valid(p));
        chunk.params.insert(chunk.params.end(), p.begin(), p.end());
        chunk.metrics.push_back(m);
      }
      const auto& o = r.ranking;
      gt::RangeOutcome outcome{gt::StudyState(units.size(), o.top, gt::metric_index(o.metric), o.min_trades), {}};
      outcome.state.add(chunk, bars);
      done(i, std::move(outcome));
    }
  }
};

TEST(Search, OnASmoothObjectiveHalvingAndBayesFindTheOptimumFarMoreOftenThanRandom) {
  // 119 x 281 x 3 combinations, a budget of 300 (0.3%); the optimum's region (within 5% of it)
  // holds about 60 of them.
  std::map<std::string, int> found;
  for (std::uint64_t seed = 1; seed <= 20; ++seed)
    for (const char* method : {"random", "halving", "bayes"}) {
      nlohmann::ordered_json j = {{"strategy", "ma_cross"},
                                  {"grid", {"fast=2:120", "slow=20:300", "ma_type=0:2"}},
                                  {"top", 1},
                                  {"search", method},
                                  {"budget", 300},
                                  {"seed", seed}};
      SmoothObjective objective;
      const gt::StudyOutcome o = gt::run_study(gt::study_request(j, {orcl()}), &objective);
      found[method] += SmoothObjective::value(o.result.top[0][0].params) >= 0.95;
    }
  EXPECT_LE(found["random"], 8) << "random finds it by luck only";
  EXPECT_GE(found["bayes"], 19);
  EXPECT_GE(found["halving"], 2 * found["random"]);
  EXPECT_GE(found["halving"], 10);
  RecordProperty("found", ::testing::PrintToString(found));
  std::cout << "optimum found in 20 seeds: random " << found["random"] << ", halving " << found["halving"] << ", bayes "
            << found["bayes"] << "\n";
}

// The model's pieces (src/study/search_model.hpp).

TEST(SearchModel, EachDrawHasItsOwnStreamTheSameEveryTime) {
  // The first three values of 10,000 draws' streams: all different (no stream is another's,
  // shifted), and the same again.
  std::set<std::uint64_t> seen;
  for (std::uint64_t n = 0; n < 10000; ++n) {
    gt::search_model::Random a = gt::search_model::Random::draw(42, n), b = gt::search_model::Random::draw(42, n);
    for (int i = 0; i < 3; ++i) {
      const std::uint64_t x = a.next();
      EXPECT_EQ(x, b.next());
      seen.insert(x);
    }
  }
  EXPECT_EQ(seen.size(), 30000u);
  EXPECT_NE(gt::search_model::Random::draw(42, 0).next(), gt::search_model::Random::draw(43, 0).next());
}

// P(round(h Z) <= o) for a standard normal Z, rounding to the nearest step.
double rounded_gaussian_at_most(double h, double o) {
  return 0.5 * std::erfc(-(o + 0.5) / (h * std::numbers::sqrt2));
}

TEST(SearchModel, GaussianStepsFollowTheirExactProbabilitiesAndTheAxisEndsHoldTheTails) {
  // case: bandwidth, axis values; each offset's share of 400,000 draws within 5 standard errors of
  // its probability (the ends, where the axis is shorter than the Gaussian's reach, with the tails).
  const std::vector<std::pair<double, std::int64_t>> cases = {{2.5, 500}, {1.0, 100}, {4.0, 3}};
  constexpr std::size_t kDraws = 400000;
  for (const auto& [h, m] : cases) {
    gt::search_model::RoundedGaussian steps;
    steps.fit(h, m);
    std::map<std::int64_t, std::size_t> seen;
    for (std::size_t n = 0; n < kDraws; ++n) {
      gt::search_model::Random r = gt::search_model::Random::draw(7, n);
      ++seen[steps.draw(r)];
    }
    EXPECT_GE(seen.begin()->first, -(m - 1)) << "h " << h;
    EXPECT_LE(seen.rbegin()->first, m - 1) << "h " << h;
    const std::int64_t reach = std::min<std::int64_t>(m - 1, 12);
    for (std::int64_t o = -reach; o <= reach; ++o) {
      const double below = o == -(m - 1) ? 0.0 : rounded_gaussian_at_most(h, static_cast<double>(o) - 1);
      const double upto = o == m - 1 ? 1.0 : rounded_gaussian_at_most(h, static_cast<double>(o));
      const double p = upto - below;
      const double share = static_cast<double>(seen[o]) / kDraws;
      EXPECT_NEAR(share, p, 5 * std::sqrt(p * (1 - p) / kDraws) + 1e-9) << "h " << h << ", m " << m << ", offset " << o;
    }
  }
}

TEST(SearchModel, ParzenDensityIsTheMixtureOfProductKernelsAndTheUniformPrior) {
  // A space of fast 2..41 (ordered) x slow 20..79 (ordered) x volume_filter (a category): the
  // density at every 7th position against the formula of docs/SEMANTICS.md "Search" summed
  // directly, for 1, 13 and 40 points (lanes part filled and whole).
  const gt::Grid grid = gt::parse_grid(gt::find_strategy("ma_cross"),
                                       {"fast=2:41", "slow=20:79", "volume_filter=false,true"}, std::nullopt, {});
  const gt::search_model::Space space(grid);
  ASSERT_EQ(space.dims(), 3u);
  const std::vector<double> h = {2.5, 7.0, 1.0};
  for (const std::size_t count : {1u, 13u, 40u}) {
    std::vector<std::int64_t> points;
    for (std::size_t j = 0; j < count; ++j)
      points.insert(points.end(), {static_cast<std::int64_t>(j * 7 % 40), static_cast<std::int64_t>(j * 11 % 60),
                                   static_cast<std::int64_t>(j % 2)});
    gt::search_model::Parzen density;
    density.fit(space, points, h);
    std::vector<const double*> axis(3);
    for (std::uint64_t index = 0; index < grid.size(); index += 7) {
      std::vector<std::int64_t> x(3);
      space.positions(index, x);
      double mixture = 1.0 / (40.0 * 60.0 * 2.0);
      for (std::size_t j = 0; j < count; ++j) {
        double kernel = 1;
        for (std::size_t k = 0; k < 2; ++k) {
          const double z = static_cast<double>(x[k] - points[j * 3 + k]) / h[k];
          kernel *= std::exp(-0.5 * z * z) / (h[k] * std::sqrt(2 * std::numbers::pi));
        }
        kernel *= x[2] == points[j * 3 + 2] ? 0.8 : 0.2;
        mixture += kernel;
      }
      EXPECT_NEAR(density.log_density(x.data(), axis), std::log(mixture / static_cast<double>(count + 1)), 1e-12)
          << count << " points, position " << index;
    }
    // Fitted for a few positions only (the model's candidates), the same densities there, bit for bit.
    std::vector<std::int64_t> asked;
    for (std::uint64_t index = 5; index < grid.size(); index += 97) {
      std::vector<std::int64_t> x(3);
      space.positions(index, x);
      asked.insert(asked.end(), x.begin(), x.end());
    }
    gt::search_model::Parzen where_asked;
    where_asked.fit(space, points, h, asked);
    for (std::size_t a = 0; a < asked.size(); a += 3)
      EXPECT_EQ(where_asked.log_density(asked.data() + a, axis), density.log_density(asked.data() + a, axis))
          << count << " points, asked position " << a / 3;
  }
}

}  // namespace
