// Studies: the library's one runner, with Python executors (Ray) for distributed runs, and the
// worker that evaluates a range of one symbol's grid inside a task.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <optional>

#include "bindings.hpp"
#include "gt/gpu.hpp"
#include "gt/study.hpp"
#include "gt/walk_forward.hpp"
#include "owned_array.hpp"

namespace gt_python {
using namespace nb::literals;

namespace {

// A Python object with name(), task_size(n), run(request_json, units, tasks, rows) yielding
// (task, state_bytes, rows_text), and report() -> dict, as the library's RangeExecutor. Units are
// (name, [Bars]) pairs, tasks (unit, first, count, indices): a range of the unit's grid, or with
// indices (not None) the combinations a search chose.
class PythonExecutor final : public gt::RangeExecutor {
 public:
  explicit PythonExecutor(nb::object executor) : executor_(std::move(executor)) {}
  std::string name() const override {
    nb::gil_scoped_acquire gil;
    return nb::cast<std::string>(executor_.attr("name")());
  }
  std::uint64_t task_size(std::uint64_t grid_size) override {
    nb::gil_scoped_acquire gil;
    return nb::cast<std::uint64_t>(executor_.attr("task_size")(grid_size));
  }
  void run(const nlohmann::ordered_json& request, const std::vector<gt::RankedUnit>& units,
           std::span<const gt::RangeTask> tasks, bool rows,
           const std::function<void(std::size_t, gt::RangeOutcome&&)>& done) override {
    nb::gil_scoped_acquire gil;
    nb::list unit_list, list;
    for (const auto& u : units) unit_list.append(nb::make_tuple(u.name, nb::cast(u.symbols)));
    for (const auto& t : tasks)
      list.append(nb::make_tuple(t.unit, t.first, t.count, t.indices.empty() ? nb::none() : nb::cast(t.indices)));
    for (nb::handle item : executor_.attr("run")(request.dump(), unit_list, list, rows)) {
      const auto [task, state, text] = nb::cast<std::tuple<std::size_t, nb::bytes, std::string>>(item);
      done(task, {gt::StudyState::deserialize(std::string_view(state.c_str(), state.size())), text});
    }
  }
  nlohmann::ordered_json report() const override {
    nb::gil_scoped_acquire gil;
    return from_text(nb::cast<std::string>(nb::module_::import_("json").attr("dumps")(executor_.attr("report")())));
  }

 private:
  nb::object executor_;
};

}  // namespace

void bind_optimize(nb::module_& m) {
  m.def(
      "cuda_available", [] { return gt::cuda_available(); },
      "True when this build has the CUDA engine and a GPU is visible.");
  m.def("cuda_devices", &gt::cuda_devices, "The visible GPUs, or why there are none.");
  m.def(
      "walk_forward",
      [](std::vector<gt::Bars> symbols, const std::string& request, const std::string& walk_forward,
         nb::object executor) {
        const gt::StudyRequest r = gt::study_request(from_text(request), std::move(symbols));
        const nlohmann::ordered_json wf = from_text(walk_forward);
        const gt::WalkForwardOptions options{wf.at("train").get<std::size_t>(), wf.at("test").get<std::size_t>(),
                                             wf.value("anchored", false)};
        const gt::WalkForwardFiles files{wf.value("windows", ""), wf.value("equity", ""), wf.value("report", "")};
        gt::check_walk_forward_files(files);
        std::optional<PythonExecutor> remote;
        if (!executor.is_none()) remote.emplace(executor);
        std::vector<gt::WalkForwardResult> results;
        {
          nb::gil_scoped_release release;
          results = gt::walk_forward(r, options, remote ? &*remote : nullptr);
          gt::write_walk_forward_files(r, results, files);
        }
        nb::list per_symbol;
        for (std::size_t s = 0; s < results.size(); ++s) {
          const gt::Bars& bars = r.symbols[s];
          nb::dict out = nb::cast<nb::dict>(to_python(gt::walk_forward_json(bars, r.grid->strategy(), results[s])));
          std::vector<double> times;
          for (const std::size_t t : results[s].equity_bars) times.push_back(static_cast<double>(bars.time[t]));
          out["equity_time"] = owned_array(std::move(times));
          out["equity"] = owned_array(std::move(results[s].equity));
          per_symbol.append(out);
        }
        nb::dict out;
        out["results"] = per_symbol;
        out["text"] = gt::walk_forward_text(r, options, results);
        out["json_text"] = gt::json_text(gt::walk_forward_json(r, results));
        return out;
      },
      "symbols"_a, "request"_a, "walk_forward"_a, "executor"_a = nb::none(),
      "A walk-forward of a study (docs/SEMANTICS.md \"Walk-forward\") on each of its symbols, here or on "
      "`executor`; writes the files `walk_forward` names (windows, equity, report).");
  m.def(
      "run_study",
      [](std::vector<gt::Bars> symbols, const std::string& request, nb::object executor) {
        const gt::StudyRequest r = gt::study_request(from_text(request), std::move(symbols));
        std::optional<PythonExecutor> remote;
        if (!executor.is_none()) remote.emplace(executor);
        gt::StudyOutcome outcome;
        {
          nb::gil_scoped_release release;
          outcome = gt::run_study(r, remote ? &*remote : nullptr);
        }
        const nlohmann::ordered_json summary = gt::study_summary_json(r, outcome);
        nb::dict out = nb::cast<nb::dict>(to_python(summary));
        out["top"] = to_python(gt::ranked_json(r, outcome));
        out["text"] = gt::study_summary_text(r, outcome);
        out["json_text"] = gt::json_text(summary);
        return out;
      },
      "symbols"_a, "request"_a, "executor"_a = nb::none(),
      "Runs a study (a JSON request: docs/SEMANTICS.md \"Studies\") here, or on `executor`.");
  nb::class_<gt::RangeWorker>(m, "RangeWorker",
                              "One ranked unit's evaluator of a study (a symbol's, or a portfolio's), built once for "
                              "many ranges")
      .def(
          "__init__",
          [](gt::RangeWorker* self, const std::string& request, std::vector<gt::Bars> symbols, std::size_t unit,
             const std::vector<std::string>& names) {
            const nlohmann::ordered_json parsed = from_text(request);
            nb::gil_scoped_release release;
            new (self) gt::RangeWorker(parsed, std::move(symbols), unit, names);
          },
          "request"_a, "symbols"_a, "unit"_a, "names"_a)
      .def(
          "evaluate",
          [](const gt::RangeWorker& worker, std::uint64_t first, std::uint64_t count, bool rows,
             std::optional<std::vector<std::uint64_t>> indices) {
            std::string state, text;
            {
              nb::gil_scoped_release release;
              gt::RangeOutcome outcome =
                  indices ? worker.evaluate(*indices, rows) : worker.evaluate(first, count, rows);
              state = outcome.state.serialize();
              text = std::move(outcome.rows);
            }
            return nb::make_tuple(nb::bytes(state.data(), state.size()), text);
          },
          "first"_a, "count"_a, "rows"_a, "indices"_a = nb::none());
}

}  // namespace gt_python
