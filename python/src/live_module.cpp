// Live signals: the live engine (a run stoppable from another thread) and replay.
#include <nanobind/stl/string.h>

#include <atomic>

#include "bindings.hpp"
#include "gt/live.hpp"
#include "gt/study.hpp"

namespace gt_python {
using namespace nb::literals;

namespace {

struct LiveRun {
  gt::LiveOptions options;
  gt::Strategy strategy;
  gt::ParamValues values;
  std::atomic<bool> stop{false};
};

}  // namespace

void bind_live(nb::module_& m) {
  nb::class_<LiveRun>(m, "LiveRun", "gtrader live: one strategy on a bars stream, its signals on another")
      .def(
          "__init__",
          [](LiveRun* self, const std::string& redis, const std::string& bars_stream, const std::string& signals_stream,
             const std::string& group, double idle_exit, const std::string& strategy, const std::string& params,
             const std::string& options, const std::string& rules) {
            auto given = gt::assignments(from_text(params));
            gt::Strategy s = strategy_from(strategy, given, rules);
            gt::ParamValues values = gt::parse_params(s, given);
            auto* run = new (self) LiveRun{};
            run->options = {redis,    bars_stream,    signals_stream,
                            group,    "gtrader-live", gt::execution_options(from_text(options)),
                            idle_exit};
            run->strategy = std::move(s);
            run->values = std::move(values);
          },
          "redis"_a, "bars_stream"_a, "signals_stream"_a, "group"_a, "idle_exit"_a, "strategy"_a, "params"_a,
          "options"_a, "rules"_a = "")
      .def(
          "run",
          [](LiveRun& run) {
            gt::LiveReport r;
            {
              nb::gil_scoped_release release;
              r = gt::run_live(run.options, run.strategy, run.values, &run.stop);
            }
            nb::dict out;
            out["bars"] = r.bars;
            out["decisions"] = r.decisions;
            out["dead_letters"] = r.dead_letters;
            out["warm_up"] = r.warm_up;
            out["reconnects"] = r.reconnects;
            return out;
          },
          "Runs until stop(), or idle for idle_exit seconds; returns the counts.")
      .def(
          "stop", [](LiveRun& run) { run.stop = true; }, "Ends run() between bars (from another thread).");
  m.def(
      "replay",
      [](const gt::Bars& bars, const std::string& redis, const std::string& stream, double speed) {
        nb::gil_scoped_release release;
        return gt::replay_bars(bars, redis, stream, speed);
      },
      "bars"_a, "redis"_a, "stream"_a, "speed"_a = 0.0, "Appends the bars to the stream, one message per bar.");
}

}  // namespace gt_python
