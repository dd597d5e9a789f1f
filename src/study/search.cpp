// Searches beyond grids (src/study/search.hpp, docs/SEMANTICS.md "Search").
#include "search.hpp"

#include <fmt/format.h>
#include <tbb/blocked_range.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <numbers>
#include <optional>
#include <queue>
#include <unordered_set>

#include "gt/error.hpp"
#include "gt/portfolio.hpp"
#include "search_model.hpp"

namespace gt {
namespace {

using search_model::Parzen;
using search_model::Random;
using search_model::RoundedGaussian;
using search_model::Space;

// Combinations (grid indices) already chosen: one bit each where the space is small enough (the
// membership test is most of a proposal's work), a hash set beyond.
class Taken {
 public:
  explicit Taken(std::uint64_t space_size) { clear(space_size); }
  // Empty again, for a space of `space_size` (the storage is kept).
  void clear(std::uint64_t space_size) {
    if (space_size <= kMostBits) bits_.assign((space_size + 63) / 64, 0);
    set_.clear();
    size_ = 0;
  }
  bool count(std::uint64_t i) const {
    return bits_.empty() ? set_.count(i) != 0 : ((bits_[i / 64] >> (i % 64)) & 1) != 0;
  }
  // Whether `i` was not there before.
  bool insert(std::uint64_t i) {
    if (bits_.empty()) {
      if (!set_.insert(i).second) return false;
    } else {
      std::uint64_t& word = bits_[i / 64];
      if ((word >> (i % 64)) & 1) return false;
      word |= std::uint64_t{1} << (i % 64);
    }
    ++size_;
    return true;
  }
  std::uint64_t size() const { return size_; }

 private:
  static constexpr std::uint64_t kMostBits = std::uint64_t{1} << 26;  // 8 MB of bits
  std::vector<std::uint64_t> bits_;
  std::unordered_set<std::uint64_t> set_;
  std::uint64_t size_ = 0;
};

// `count` distinct valid combinations none of which is in `taken` (added to it), uniformly.
std::vector<std::uint64_t> draw_uniform(Space& space, std::uint64_t count, Random& random, Taken& taken) {
  const std::uint64_t size = space.grid().size();
  std::vector<std::uint64_t> out;
  if (count * 2 > size - std::min<std::uint64_t>(size, taken.size())) {
    // Most of what is left: every valid combination not taken, then a partial shuffle.
    std::vector<std::uint64_t> left;
    for (std::uint64_t i = 0; i < size; ++i)
      if (!taken.count(i) && space.valid(i)) left.push_back(i);
    count = std::min<std::uint64_t>(count, left.size());
    for (std::uint64_t i = 0; i < count; ++i) std::swap(left[i], left[i + random.below(left.size() - i)]);
    out.assign(left.begin(), left.begin() + static_cast<std::ptrdiff_t>(count));
    for (const std::uint64_t i : out) taken.insert(i);
  } else {
    const std::uint64_t attempts = 64 * count + 1000;
    for (std::uint64_t a = 0; a < attempts && out.size() < count; ++a) {
      const std::uint64_t i = random.below(size);
      if (!taken.count(i) && space.valid(i)) {
        taken.insert(i);
        out.push_back(i);
      }
    }
    if (out.size() < count)
      throw ParamError({"budget"}, fmt::format("only {} valid combinations turned up in {} draws for a budget of {}: "
                                               "most of this space is invalid; lower the budget or search the grid",
                                               out.size(), attempts, count));
  }
  std::sort(out.begin(), out.end());
  return out;
}

// This machine's cores as an executor: each task on a worker built once per request and unit.
class LocalExecutor final : public RangeExecutor {
 public:
  explicit LocalExecutor(int threads) : threads_(threads > 0 ? threads : tbb::info::default_concurrency()) {}
  std::string name() const override { return "local"; }
  // A round's scattered combinations in as few tasks as keep every thread busy: within a task the
  // evaluator visits them by moving-average row, sharing each row it loads.
  std::uint64_t task_size(std::uint64_t size) override {
    return std::clamp<std::uint64_t>(size / static_cast<std::uint64_t>(threads_), 64, 4096);
  }
  void run(const nlohmann::ordered_json& request, const std::vector<RankedUnit>& units,
           std::span<const RangeTask> tasks, bool rows,
           const std::function<void(std::size_t, RangeOutcome&&)>& done) override {
    std::vector<std::string> names;
    for (const auto& u : units) names.push_back(u.name);
    const std::string key = request.dump();
    std::vector<const RangeWorker*> workers(units.size(), nullptr);
    for (const auto& t : tasks) {
      auto& worker = workers_[{key, t.unit}];
      if (!worker) worker = std::make_unique<RangeWorker>(request, units[t.unit].symbols, t.unit, names);
      workers[t.unit] = worker.get();
    }
    std::vector<std::optional<RangeOutcome>> outcomes(tasks.size());
    tbb::parallel_for(std::size_t{0}, tasks.size(),
                      [&](std::size_t i) { outcomes[i] = workers[tasks[i].unit]->evaluate(tasks[i].indices, rows); });
    for (std::size_t i = 0; i < tasks.size(); ++i) done(i, std::move(*outcomes[i]));
  }
  std::string evaluator() const { return workers_.empty() ? "" : std::string(workers_.begin()->second->evaluator()); }

 private:
  int threads_;
  std::map<std::pair<std::string, std::size_t>, std::unique_ptr<RangeWorker>> workers_;
};

// What the rounds cost, over every unit.
struct Tally {
  std::uint64_t evaluations = 0, computed = 0, from_cache = 0, bar_combinations = 0;
};

// A search's view of ranking: ranked combinations (enough trades) first, then the study's order.
struct SearchOrder {
  std::size_t metric;
  bool higher_is_better;
  std::int64_t min_trades;
  // The order as a plain tuple (a search sorts its whole history with it every round): the
  // ranking's key with the unranked last of all.
  using Key = RankingKey;
  Key key(const RankedCombination& c) const {
    Key k = ranking_key(c, metric, higher_is_better);
    if (c.metrics.trades < min_trades) k.rank.last |= 4;
    return k;
  }
  bool operator()(const RankedCombination& a, const RankedCombination& b) const { return key(a) < key(b); }
};

class Search {
 public:
  Search(const StudyRequest& r, RangeExecutor& executor)
      : r_(r),
        executor_(executor),
        units_(ranked_units(r)),
        unit_bars_(ranked_unit_bars(r.symbols, r.ranking.portfolio)),
        order_{metric_index(r.ranking.metric), metric_table()[metric_index(r.ranking.metric)].higher_is_better,
               r.ranking.min_trades} {}

  // One round: `indices` (ascending) of `unit`, trading from `first_bar`, with block sums or not.
  // Each task's combinations (in grid order), in task order: none is moved again.
  std::vector<StudyState::Evaluated> round(std::size_t unit, const std::vector<std::uint64_t>& indices,
                                           std::size_t first_bar, bool blocks) {
    const nlohmann::ordered_json& request = round_request(first_bar, blocks);
    const std::uint64_t size = std::max<std::uint64_t>(1, executor_.task_size(indices.size()));
    std::vector<RangeTask> tasks;
    for (std::size_t at = 0; at < indices.size(); at += size) {
      const std::size_t n = std::min<std::size_t>(size, indices.size() - at);
      RangeTask t{unit, indices[at], n, {}};
      t.indices.assign(indices.begin() + static_cast<std::ptrdiff_t>(at),
                       indices.begin() + static_cast<std::ptrdiff_t>(at + n));
      tasks.push_back(std::move(t));
    }
    std::vector<StudyState::Evaluated> parts(tasks.size());
    run_tasks(executor_, request, units_, tasks, false, [&](std::size_t i, RangeOutcome&& outcome) {
      // Combined into a state of the round's study, which checks that the task's is one too.
      StudyState state(units_.size(), SIZE_MAX, order_.metric, std::numeric_limits<std::int64_t>::min(),
                       blocks ? r_.ranking.robustness_blocks : 0);
      state.combine(std::move(outcome.state));
      tally_.computed += state.computed();
      tally_.from_cache += state.from_cache();
      tally_.bar_combinations += state.computed() * (unit_bars_[unit] - first_bar);
      parts[i] = state.take_evaluated(unit);
    });
    tally_.evaluations += indices.size();
    return parts;
  }

  // How many combinations `parts` (StudyState::Evaluated each) hold.
  template <class Parts>
  static std::size_t size(const Parts& parts) {
    std::size_t count = 0;
    for (const auto& part : parts) count += part.combinations.size();
    return count;
  }

  // What a round's tasks are asked, the same for every round from `first_bar` with blocks or not.
  const nlohmann::ordered_json& round_request(std::size_t first_bar, bool blocks) {
    auto [at, added] = round_requests_.try_emplace({first_bar, blocks});
    if (added) {
      nlohmann::ordered_json& request = at->second;
      request = study_request_json(r_);
      for (const char* key : {"out", "report", "search", "budget", "seed"}) request.erase(key);
      request["top"] = nullptr;  // every combination comes back
      request["min_trades"] = std::numeric_limits<std::int64_t>::min();
      request["robustness"] = blocks;
      if (!blocks) request.erase("pbo_blocks");
      if (first_bar > 0) request["window"] = {{"first_bar", first_bar}, {"close_at_end", false}};
    }
    return at->second;
  }

  // Where every method's evaluated combinations of `unit` (on all its bars) go, and how many it
  // tried. A results file and the robustness take the combinations in grid order, so the parts
  // are kept to the end (`keep`); the ranking alone takes each round's as it comes, and they are
  // dropped.
  struct UnitResult {
    bool keep = false;
    std::function<void(const StudyState::Evaluated&)> rank;  // a part, when the parts are not kept
    // The kept rounds' results where they were evaluated (each in grid order; none shares a
    // combination with another), a deque so that adding a part moves none.
    std::deque<StudyState::Evaluated> parts;
    std::uint64_t trials = 0;
    nlohmann::ordered_json rounds = nlohmann::ordered_json::array();

    // A round's parts that are results (every round of random and bayes, halving's last rung).
    void add(std::vector<StudyState::Evaluated>&& round) {
      for (auto& part : round)
        if (keep)
          parts.push_back(std::move(part));
        else
          rank(part);
    }
    struct Entry {
      const RankedCombination* combination;
      const ReturnSums* blocks;  // `per` of them
    };
    static Entry entry(const StudyState::Evaluated& part, std::size_t i, std::size_t per) {
      return {&part.combinations[i], part.blocks.data() + i * per};
    }
    // The kept combinations with their block sums (`per` each), in grid order: the parts merged.
    std::vector<Entry> entries(std::size_t per) const {
      std::vector<Entry> out;
      out.reserve(size(parts));
      using Head = std::pair<std::uint64_t, std::size_t>;  // a part's next grid index, and the part
      std::priority_queue<Head, std::vector<Head>, std::greater<>> heads;
      std::vector<std::size_t> next(parts.size(), 0);
      for (std::size_t p = 0; p < parts.size(); ++p)
        if (!parts[p].combinations.empty()) heads.push({parts[p].combinations.front().index, p});
      while (!heads.empty()) {
        const std::size_t p = heads.top().second, i = next[p]++;
        heads.pop();
        out.push_back(entry(parts[p], i, per));
        if (next[p] < parts[p].combinations.size()) heads.push({parts[p].combinations[next[p]].index, p});
      }
      return out;
    }
  };
  // `keep` and `rank`: UnitResult's.
  UnitResult run(std::size_t unit, bool keep, std::function<void(const StudyState::Evaluated&)> rank) {
    const SearchOptions& s = r_.ranking.search;
    Random random(s.seed * 0x100000001B3ULL + unit);  // each unit its own stream
    Space space(*r_.grid);
    Taken taken(space.grid().size());
    const bool blocks = r_.ranking.robustness_blocks > 0;
    UnitResult out;
    out.keep = keep;
    out.rank = std::move(rank);
    if (s.method == "random") {
      std::vector<StudyState::Evaluated> parts = round(unit, draw_uniform(space, s.budget, random, taken), 0, blocks);
      out.rounds.push_back({{"evaluated", size(parts)}});
      out.add(std::move(parts));
    } else if (s.method == "halving") {
      halving(unit, space, random, taken, out);
    } else {
      bayes(unit, space, random, taken, out);
    }
    out.trials = taken.size();
    return out;
  }

  const std::vector<RankedUnit>& units() const { return units_; }
  std::size_t unit_bars(std::size_t unit) const { return unit_bars_[unit]; }
  const Tally& tally() const { return tally_; }
  const SearchOrder& order() const { return order_; }

 private:
  // Successive halving over bars (docs/SEMANTICS.md "Search"): many combinations on the most
  // recent bars, the best third of them on three times as many, and so on to every bar. The budget
  // is counted in combinations run on every bar: each rung costs the same bars, so the first
  // rung holds budget x 3^halvings / (halvings + 1) combinations.
  void halving(std::size_t unit, Space& space, Random& random, Taken& taken, UnitResult& out) {
    constexpr std::uint64_t kEta = 3;
    constexpr std::size_t kShortestSpan = 126, kMostHalvings = 4;
    const std::size_t bars = unit_bars_[unit];  // one symbol's: halving refuses portfolios
    const std::uint64_t budget = r_.ranking.search.budget;
    std::size_t halvings = 0;
    std::uint64_t shrink = 1;
    while (halvings < kMostHalvings && bars / (shrink * kEta) >= kShortestSpan && budget / (halvings + 2) >= 1) {
      ++halvings;
      shrink *= kEta;
    }
    const std::uint64_t first_rung = std::min(budget * shrink / (halvings + 1), space.grid().size());
    std::vector<std::uint64_t> indices = draw_uniform(space, first_rung, random, taken);
    for (std::size_t rung = 0;; ++rung) {
      const std::size_t span = bars / shrink;
      const bool last = rung == halvings;
      std::vector<StudyState::Evaluated> parts =
          round(unit, indices, bars - span, last && r_.ranking.robustness_blocks > 0);
      out.rounds.push_back({{"evaluated", size(parts)}, {"bars", span}});
      if (last) {
        out.add(std::move(parts));
        return;
      }
      std::vector<RankedCombination> c;
      c.reserve(size(parts));
      for (auto& part : parts) std::move(part.combinations.begin(), part.combinations.end(), std::back_inserter(c));
      const std::size_t keep = std::max<std::size_t>(1, (c.size() + kEta - 1) / kEta);
      std::partial_sort(c.begin(), c.begin() + static_cast<std::ptrdiff_t>(std::min(keep, c.size())), c.end(), order_);
      indices.clear();
      for (std::size_t i = 0; i < keep && i < c.size(); ++i) indices.push_back(c[i].index);
      std::sort(indices.begin(), indices.end());
      shrink /= kEta;
    }
  }

  // Multivariate TPE in batches (docs/SEMANTICS.md "Search").
  void bayes(std::size_t unit, Space& space, Random& random, Taken& taken, UnitResult& out) {
    const std::uint64_t budget = r_.ranking.search.budget;
    // Two thirds of the budget in eight rounds from the model, the last third in ten climbing
    // rounds (a climb goes one step a round).
    constexpr std::uint64_t kModelRounds = 8, kClimbRounds = 10;
    const std::uint64_t climb = budget / 3, modelled = budget - climb;
    const std::uint64_t batch = std::max<std::uint64_t>(16, (modelled + kModelRounds - 1) / kModelRounds);
    const std::uint64_t climb_batch = std::max<std::uint64_t>(16, (climb + kClimbRounds - 1) / kClimbRounds);
    const bool blocks = r_.ranking.robustness_blocks > 0;
    // Every combination evaluated so far (its grid index), in the order evaluated.
    std::vector<std::uint64_t> history;
    // The history's best positions in the search's order, best first: as many as a proposal
    // (kMostGood at most) or a climbing round (one point for each combination wanted) reads. Only
    // their keys are kept, and a round's own while it is ranked.
    const std::size_t leaders = std::max<std::size_t>(kMostGood, climb_batch);
    struct Keyed {
      SearchOrder::Key key;
      std::size_t position;
      bool operator<(const Keyed& o) const { return key < o.key; }
    };
    std::vector<Keyed> best, arrived, merged;
    std::vector<std::size_t> ranked;  // best's positions
    std::vector<bool> spent;          // the climb's (neighbours)
    history.reserve(budget);
    const auto absorb = [&](std::vector<StudyState::Evaluated>&& parts) {
      out.rounds.push_back({{"evaluated", size(parts)}});
      arrived.clear();
      for (const auto& part : parts)
        for (const RankedCombination& c : part.combinations) {
          arrived.push_back({order_.key(c), history.size()});
          history.push_back(c.index);
        }
      out.add(std::move(parts));
      if (arrived.size() > leaders) {
        std::nth_element(arrived.begin(), arrived.begin() + static_cast<std::ptrdiff_t>(leaders), arrived.end());
        arrived.resize(leaders);
      }
      std::sort(arrived.begin(), arrived.end());
      merged.clear();
      std::merge(best.begin(), best.end(), arrived.begin(), arrived.end(), std::back_inserter(merged));
      merged.resize(std::min(merged.size(), leaders));
      best.swap(merged);
      ranked.clear();
      for (const Keyed& k : best) ranked.push_back(k.position);
    };
    absorb(round(unit, draw_uniform(space, std::min(batch, budget), random, taken), 0, blocks));
    while (taken.size() < budget) {
      const bool climbing = taken.size() >= modelled;
      const std::uint64_t want = std::min<std::uint64_t>(
          climbing ? climb_batch : std::min(batch, modelled - taken.size()), budget - taken.size());
      // The last rounds climb: the unevaluated neighbours of the best so far.
      std::vector<std::uint64_t> next = climbing ? neighbours(space, history, ranked, want, taken, spent)
                                                 : propose(space, history, ranked, want, random, taken);
      if (next.size() < want) {  // the model's neighbourhoods are spent: the rest uniformly
        const auto more = draw_uniform(space, want - next.size(), random, taken);
        next.insert(next.end(), more.begin(), more.end());
        std::sort(next.begin(), next.end());
      }
      if (next.empty()) break;
      absorb(round(unit, next, 0, blocks));
    }
  }

  // Up to `want` unevaluated valid neighbours of the history's best, best first: one step either
  // way along any of the ordered axes (the categories kept), or another value of one category.
  // `all_ranked`: the history's best positions in the search's order (at least `want` of them, or
  // the whole history). `spent`: per history position, whether every neighbour is evaluated or
  // invalid (taken only grows, so a spent point stays spent and is not looked at again).
  std::vector<std::uint64_t> neighbours(Space& space, const std::vector<std::uint64_t>& history,
                                        std::span<const std::size_t> all_ranked, std::uint64_t want, Taken& taken,
                                        std::vector<bool>& spent) {
    const std::size_t d = space.dims();
    // Each point gives at least one neighbour or is spent: the best `want` are enough to look at.
    const std::span<const std::size_t> ranked = all_ranked.first(std::min<std::size_t>(all_ranked.size(), want));
    std::vector<std::uint64_t> next;
    std::vector<std::int64_t> p(d), x(d);
    const auto consider = [&] {
      const std::uint64_t index = space.index(x);
      if (next.size() < want && !taken.count(index) && space.valid_at(x)) {
        taken.insert(index);
        next.push_back(index);
      }
    };
    std::uint64_t box = 1;
    for (std::size_t k = 0; k < d; ++k) box *= space.ordered(k) ? 3 : 1;
    spent.resize(history.size(), false);
    for (std::size_t i = 0; i < ranked.size() && next.size() < want; ++i) {
      if (spent[ranked[i]]) continue;
      space.positions(history[ranked[i]], p);
      for (std::uint64_t c = 0; c < box; ++c) {  // the box of +-1 steps on the ordered axes
        std::uint64_t rest = c;
        bool inside = true;
        for (std::size_t k = 0; k < d; ++k) {
          x[k] = p[k];
          if (!space.ordered(k)) continue;
          x[k] += static_cast<std::int64_t>(rest % 3) - 1;
          rest /= 3;
          inside = inside && x[k] >= 0 && x[k] < static_cast<std::int64_t>(space.size(k));
        }
        if (inside) consider();
      }
      for (std::size_t k = 0; k < d; ++k) {  // another value of one category
        if (space.ordered(k)) continue;
        x = p;
        for (std::int64_t v = 0; v < static_cast<std::int64_t>(space.size(k)); ++v) {
          x[k] = v;
          consider();
        }
      }
      spent[ranked[i]] = next.size() < want;  // every neighbour was considered with room to take it
    }
    std::sort(next.begin(), next.end());
    return next;
  }

  // The most good points of a proposal: Optuna's TPE default (its gamma caps the good side at 25),
  // which found a narrow peak more often than 48 did (docs/PERFORMANCE.md "Search").
  static constexpr std::size_t kMostGood = 25;

  // The next batch: candidates drawn around the best tenth of the history (at most kMostGood points),
  // ranked by how much likelier they are under the good points' Parzen density than under the
  // others'; a tenth of the batch drawn uniformly, so that no region is given up for good.
  // `ranked`: the history's best positions in the search's order (at least kMostGood, or all).
  std::vector<std::uint64_t> propose(Space& space, const std::vector<std::uint64_t>& history,
                                     std::span<const std::size_t> ranked, std::uint64_t want, Random& random,
                                     Taken& taken) {
    const std::size_t d = space.dims();
    // The best tenth, at most kMostGood, in order; the others, an even sample of about 96 (every
    // (m / 96)-th of m, 96 to 191 of them) in history order: the density only needs their shape.
    const std::size_t good = std::min(history.size(), std::clamp<std::size_t>((history.size() + 9) / 10, 2, kMostGood));
    std::vector<bool> is_good(history.size(), false);
    for (std::size_t i = 0; i < good; ++i) is_good[ranked[i]] = true;
    const std::size_t step = std::max<std::size_t>(1, (history.size() - good) / 96);
    std::vector<std::size_t> bad;  // the others' every step-th
    for (std::size_t i = 0, others = 0; i < history.size(); ++i)
      if (!is_good[i] && others++ % step == 0) bad.push_back(i);
    const auto points = [&](std::span<const std::size_t> which) {
      std::vector<std::int64_t> p(which.size() * d);
      for (std::size_t j = 0; j < which.size(); ++j) space.positions(history[which[j]], {p.data() + j * d, d});
      return p;
    };
    const std::vector<std::int64_t> good_points = points(ranked.first(good));
    const std::vector<std::int64_t> bad_points = points(bad);
    // Bandwidths: Scott's rule on each side's spread along each ordered axis, at least one step.
    const auto bandwidths = [&](const std::vector<std::int64_t>& p) {
      const std::size_t n = p.size() / d;
      std::vector<double> h(d, 1.0);
      for (std::size_t k = 0; k < d; ++k) {
        double mean = 0, var = 0;
        for (std::size_t j = 0; j < n; ++j) mean += static_cast<double>(p[j * d + k]);
        mean /= static_cast<double>(n);
        for (std::size_t j = 0; j < n; ++j) var += std::pow(static_cast<double>(p[j * d + k]) - mean, 2);
        const double spread = std::sqrt(var / std::max<double>(1, static_cast<double>(n) - 1));
        h[k] = std::max(1.0, spread * std::pow(static_cast<double>(n), -1.0 / (static_cast<double>(d) + 4)));
      }
      return h;
    };
    const std::vector<double> good_h = bandwidths(good_points), bad_h = bandwidths(bad_points);
    steps_.resize(d);
    for (std::size_t k = 0; k < d; ++k)
      if (space.ordered(k)) steps_[k].fit(good_h[k], static_cast<std::int64_t>(space.size(k)));

    // Two candidates per combination wanted, from at most 8 attempts each. Each attempt draws
    // around a good point from its own stream, so that attempts run in parallel; they are then
    // taken in order, skipping repeats, the evaluated and the invalid.
    const std::uint64_t explore = want / 10, exploit = want - explore;
    auto& [candidates, at, attempts, attempted, drawn] = proposal_;
    candidates.clear();
    at.clear();
    drawn.clear(space.grid().size());
    const std::size_t n_good = good_points.size() / d;
    const std::uint64_t most = 8 * exploit + 64, stream = random.next();
    for (std::uint64_t from = 0; from < most && candidates.size() < 2 * exploit;) {
      const std::uint64_t count = std::min(most - from, (2 * exploit - candidates.size()) * 5 / 4 + 64);
      attempts.resize(count);
      attempted.resize(count * d);
      tbb::parallel_for(tbb::blocked_range<std::uint64_t>(0, count, 256), [&](const auto& range) {
        std::vector<double> scratch(space.parameters());
        for (std::uint64_t a = range.begin(); a < range.end(); ++a) {
          const std::span<std::int64_t> x(attempted.data() + a * d, d);
          Random r = Random::draw(stream, from + a);
          const std::int64_t* around = good_points.data() + r.below(n_good) * d;
          for (std::size_t k = 0; k < d; ++k) {
            const auto m = static_cast<std::int64_t>(space.size(k));
            if (space.ordered(k))
              x[k] = std::clamp<std::int64_t>(around[k] + steps_[k].draw(r), 0, m - 1);
            else
              x[k] = r.uniform() < Parzen::kKeepCategory
                         ? around[k]
                         : static_cast<std::int64_t>(r.below(static_cast<std::uint64_t>(m)));
          }
          attempts[a] = {space.index(x), space.valid_at(x, scratch)};
        }
      });
      for (std::uint64_t a = 0; a < count && candidates.size() < 2 * exploit; ++a)
        if (!taken.count(attempts[a].index) && drawn.insert(attempts[a].index) && attempts[a].valid) {
          candidates.push_back({attempts[a].index, 0});
          at.insert(at.end(), attempted.begin() + static_cast<std::ptrdiff_t>(a * d),
                    attempted.begin() + static_cast<std::ptrdiff_t>((a + 1) * d));
        }
      from += count;
    }
    // The densities are fitted where the candidates lie only.
    good_density_.fit(space, good_points, good_h, at);
    bad_density_.fit(space, bad_points, bad_h, at);
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, candidates.size(), 64), [&](const auto& range) {
      std::vector<const double*> axis(d);
      for (std::size_t c = range.begin(); c < range.end(); ++c) {
        const std::int64_t* x = at.data() + c * d;
        candidates[c].score = good_density_.log_density(x, axis) - bad_density_.log_density(x, axis);
      }
    });
    const auto by_score = [](const Candidate& a, const Candidate& b) {
      return a.score != b.score ? a.score > b.score : a.index < b.index;
    };
    const auto chosen = static_cast<std::ptrdiff_t>(std::min<std::uint64_t>(exploit, candidates.size()));
    std::nth_element(candidates.begin(), candidates.begin() + chosen, candidates.end(), by_score);
    std::vector<std::uint64_t> next;
    for (auto c = candidates.begin(); c != candidates.begin() + chosen; ++c) {
      next.push_back(c->index);
      taken.insert(c->index);
    }
    const auto uniform = draw_uniform(space, std::min<std::uint64_t>(explore, want - next.size()), random, taken);
    next.insert(next.end(), uniform.begin(), uniform.end());
    std::sort(next.begin(), next.end());
    return next;
  }

  const StudyRequest& r_;
  RangeExecutor& executor_;
  std::vector<RankedUnit> units_;
  std::vector<std::size_t> unit_bars_;  // each unit's returns (a portfolio's: its timeline's)
  SearchOrder order_;
  Tally tally_;
  std::map<std::pair<std::size_t, bool>, nlohmann::ordered_json> round_requests_;
  // The model's storage, kept from one proposal to the next.
  Parzen good_density_, bad_density_;
  struct Candidate {
    std::uint64_t index;
    double score;
  };
  struct Attempt {
    std::uint64_t index;
    bool valid;
  };
  struct Proposal {
    std::vector<Candidate> candidates;
    std::vector<std::int64_t> at;  // the candidates' positions, d each
    std::vector<Attempt> attempts;
    std::vector<std::int64_t> attempted;  // the attempts' positions, d each
    Taken drawn{0};                       // the attempts taken as candidates
  } proposal_;
  std::vector<RoundedGaussian> steps_;  // per ordered axis, around the good points
};

}  // namespace

void check_search(const SearchOptions& search, const Grid& grid, bool portfolio) {
  if (std::find(kSearchMethods.begin(), kSearchMethods.end(), search.method) == kSearchMethods.end())
    throw ParamError({"search"}, fmt::format("search {}: allowed: grid, random, halving, bayes", search.method));
  if (search.grid()) {
    if (search.budget > 0)
      throw ParamError({"budget", "search"},
                       "a budget is for the random, halving and bayes searches: the grid "
                       "evaluates every combination (leave the budget out, or choose a search)");
    return;
  }
  if (search.budget == 0)
    throw ParamError({"budget"}, fmt::format("the {} search needs a budget above 0: how many combinations to evaluate",
                                             search.method));
  if (std::none_of(grid.axes().begin(), grid.axes().end(),
                   [](const Grid::Axis& a) { return a.range && a.values.size() > 1; }))
    throw ParamError({"search", "grid"},
                     fmt::format("the {} search draws from ranges (a:b or a:b:step), and this grid has none: give a "
                                 "parameter a range, or search the grid",
                                 search.method));
  if (portfolio && search.method == "halving")
    throw ParamError({"search", "portfolio"},
                     "halving shortens one symbol's bars, and a portfolio's timeline is its symbols' union: search a "
                     "portfolio with random or bayes");
}

StudyOutcome run_search(const StudyRequest& r, RangeExecutor* executor, ResultSink* sink) {
  if (r.ranking.portfolio) check_portfolio(r.symbols, *r.ranking.portfolio);
  robustness_block_starts(r.symbols, *r.grid, r.ranking);  // what cannot be computed is refused before any work
  const int threads = r.ranking.threads > 0 ? r.ranking.threads : tbb::info::default_concurrency();
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(threads));
  const auto start = std::chrono::steady_clock::now();
  LocalExecutor local(threads);
  Search search(r, executor ? *executor : local);
  const auto& units = search.units();
  StudyState total(units.size(), r.ranking.top, search.order().metric, r.ranking.min_trades,
                   r.ranking.robustness_blocks);
  std::uint64_t trials = 0;
  nlohmann::ordered_json rounds = nlohmann::ordered_json::array();
  const std::size_t per = r.ranking.robustness_blocks, stride = r.grid->base().size();
  // The evaluated combinations reach the ranking as a grid's chunks do: in grid order for a sink
  // (the results file) and for the robustness (its trials' block sums by grid position), each
  // round's as they come for the ranking alone.
  const bool grid_order = sink != nullptr || per > 0;
  // Chunks small enough for one storage to serve them all from cache; each in grid order, as every
  // run of entries handed to `feed` is (one part, or the parts merged).
  constexpr std::size_t kChunk = 512;
  ChunkResults chunk;
  chunk.stride = stride;
  chunk.blocks_per_combination = per;
  const auto feed = [&](std::size_t unit, std::span<const Search::UnitResult::Entry> entries) {
    chunk.symbol = unit;
    for (std::size_t at = 0, end = 0; at < entries.size(); at = end) {
      chunk.indices.clear();
      chunk.params.clear();
      chunk.metrics.clear();
      chunk.blocks.clear();
      for (end = at; end < entries.size() && end - at < kChunk; ++end) {
        const Search::UnitResult::Entry& e = entries[end];
        const RankedCombination& c = *e.combination;
        chunk.indices.push_back(c.index);
        chunk.params.insert(chunk.params.end(), c.params.begin(), c.params.end());
        chunk.metrics.push_back(c.metrics);
        chunk.blocks.insert(chunk.blocks.end(), e.blocks, e.blocks + per);
      }
      chunk.valid.assign(chunk.indices.size(), 1);
      chunk.first = chunk.indices.front();
      total.add(chunk, search.unit_bars(unit));
      if (sink) sink->consume(chunk, sink->format(chunk));
    }
  };
  std::vector<Search::UnitResult::Entry> part_entries;
  for (std::size_t u = 0; u < units.size(); ++u) {
    Search::UnitResult found = search.run(u, grid_order, [&](const StudyState::Evaluated& part) {
      part_entries.clear();
      for (std::size_t i = 0; i < part.combinations.size(); ++i)
        part_entries.push_back(Search::UnitResult::entry(part, i, per));
      feed(u, part_entries);
    });
    trials = std::max(trials, found.trials);
    rounds.push_back(found.rounds);
    if (grid_order) feed(u, found.entries(per));
  }
  require_some_valid(*r.grid, total.valid());
  StudyOutcome outcome;
  OptimizeResult& result = outcome.result;
  std::move(total).finish(result, r.symbols, *r.grid, r.execution, r.ranking.portfolio, trials);
  result.combinations = r.grid->size();
  result.computed = search.tally().computed;
  result.from_cache = search.tally().from_cache;
  result.bar_combinations = search.tally().bar_combinations;
  result.evaluator = executor ? executor->name() : local.evaluator();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const SearchOptions& s = r.ranking.search;
  outcome.search = {{"method", s.method},
                    {"budget", s.budget},
                    {"seed", s.seed},
                    {"evaluated", trials},
                    {"evaluations", search.tally().evaluations},
                    {"rounds", units.size() == 1 ? rounds[0] : rounds}};
  if (executor) outcome.executor = executor->report();
  return outcome;
}

}  // namespace gt
