// Walk-forward analysis (include/gt/walk_forward.hpp): every window a study of its own on the bars up
// to its end, the window's bars alone traded and measured (ExecutionOptions::first_bar).
#include "gt/walk_forward.hpp"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "gt/error.hpp"
#include "gt/strategy.hpp"
#include "gt/study.hpp"

namespace gt {

std::vector<WalkForwardWindow> walk_forward_windows(std::size_t bars, const WalkForwardOptions& wf) {
  if (wf.train == 0 || wf.train >= bars)
    throw ParamError({"train"}, fmt::format("train = {} bars (allowed: 1 to {}, fewer than the {} bars)", wf.train,
                                            bars > 1 ? bars - 1 : 0, bars));
  if (wf.test == 0 || wf.train + wf.test > bars)
    throw ParamError({"test"}, fmt::format("test = {} bars (allowed: 1 to {}: the {} bars less train = {})", wf.test,
                                           bars - wf.train, bars, wf.train));
  std::vector<WalkForwardWindow> windows;
  for (std::size_t start = wf.train; start + wf.test <= bars; start += wf.test) {
    WalkForwardWindow w;
    w.train_start = wf.anchored ? 0 : start - wf.train;
    w.train_end = start - 1;
    w.test_start = start;
    w.test_end = start + wf.test - 1;
    windows.push_back(w);
  }
  if (windows.size() < 2)
    throw ParamError({"train", "test"},
                     fmt::format("train = {} and test = {} leave {} whole window(s) in {} bars: a walk-forward needs "
                                 "at least two (shorten train or test)",
                                 wf.train, wf.test, windows.size(), bars));
  return windows;
}

WalkForwardResult walk_forward(const Bars& bars, const Grid& grid, const ExecutionOptions& options,
                               const OptimizeOptions& opt, const WalkForwardOptions& wf) {
  options.validate();
  WalkForwardResult out;
  out.windows = walk_forward_windows(bars.size(), wf);
  const Strategy& strategy = grid.strategy();
  OptimizeOptions ranking = opt;
  ranking.top = 1;
  ranking.progress = false;
  ranking.cache = nullptr;  // each window's results are its own (its bars, its window)
  if (ranking.device == "cuda")
    throw ParamError({"device"}, "a walk-forward's windows run on the CPU engines: use the cpu or auto device");
  ranking.device = "cpu";
  ranking.robustness_blocks = 0;

  CurveAccumulator stitched(options.cash);
  double scale = 1.0;  // the stitched equity over the starting cash, at the current window's start
  double in_sample_sharpe = 0, out_of_sample_sharpe = 0;
  for (std::size_t k = 0; k < out.windows.size(); ++k) {
    WalkForwardWindow& w = out.windows[k];
    ExecutionOptions window = options;
    window.close_at_end = true;
    window.first_bar = w.train_start;
    const OptimizeResult best = optimize({first_bars(bars, w.train_end + 1)}, grid, window, ranking);
    if (best.top.empty() || best.top[0].empty())
      throw ParamError({"min_trades"}, fmt::format("window {} (training bars {} to {}): no combination was ranked "
                                                   "(lower min_trades)",
                                                   k + 1, w.train_start + 1, w.train_end + 1));
    w.parameters = best.top[0][0].params;
    w.in_sample = best.top[0][0].metrics;
    window.first_bar = w.test_start;
    const BacktestResult run = run_strategy(first_bars(bars, w.test_end + 1), strategy, w.parameters, window);
    w.out_of_sample = run.metrics;
    in_sample_sharpe += w.in_sample.sharpe;
    out_of_sample_sharpe += w.out_of_sample.sharpe;
    // The window's returns chained onto the stitched equity; its trades' profits in that scale.
    for (std::size_t t = w.test_start; t <= w.test_end; ++t) {
      const double equity = scale * run.equity[t];
      stitched.add(equity, run.position[t] != 0);
      out.equity_bars.push_back(t);
      out.equity.push_back(equity);
      out.position.push_back(run.position[t]);
    }
    for (const Trade& t : run.trades)
      if (!t.open) stitched.sums().add_trade(t.pnl * scale, t.ret);
    scale = out.equity.back() / options.cash;
  }
  out.out_of_sample = finalize_metrics(stitched.sums(), resolve_periods_per_year(bars, options));
  out.efficiency = in_sample_sharpe != 0 ? out_of_sample_sharpe / in_sample_sharpe  // the window counts cancel
                                         : std::numeric_limits<double>::quiet_NaN();
  return out;
}

nlohmann::ordered_json walk_forward_json(const Bars& bars, const Strategy& strategy, const WalkForwardResult& r) {
  nlohmann::ordered_json windows = nlohmann::ordered_json::array();
  const auto time = [&](std::size_t t) { return format_time(bars.time[t], bars.intraday); };
  for (const auto& w : r.windows)
    windows.push_back({{"train_start", time(w.train_start)},
                       {"train_end", time(w.train_end)},
                       {"test_start", time(w.test_start)},
                       {"test_end", time(w.test_end)},
                       {"bars", {{"train", w.train_end - w.train_start + 1}, {"test", w.test_end - w.test_start + 1}}},
                       {"parameters", params_json(strategy, w.parameters)},
                       {"in_sample", metrics_json(w.in_sample)},
                       {"out_of_sample", metrics_json(w.out_of_sample)}});
  return {{"symbol", bars.symbol},
          {"windows", windows},
          {"out_of_sample", metrics_json(r.out_of_sample)},
          {"efficiency",
           std::isnan(r.efficiency) ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(r.efficiency)}};
}

}  // namespace gt
