// Walk-forward analysis (include/gt/walk_forward.hpp): every window a study of its own on the bars up
// to its end, the window's bars alone traded and measured (ExecutionOptions::first_bar).
#include "gt/walk_forward.hpp"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "gt/atomic_file.hpp"
#include "gt/error.hpp"
#include "gt/report.hpp"
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

namespace {

WalkForwardResult walk_forward_on(const StudyRequest& study, const Bars& bars, const WalkForwardOptions& wf,
                                  RangeExecutor* executor) {
  const ExecutionOptions& options = study.execution;
  WalkForwardResult out;
  out.windows = walk_forward_windows(bars.size(), wf);
  const Strategy& strategy = study.grid->strategy();
  // Each window a study of the bars up to its end, its own window traded and measured.
  StudyRequest window;
  window.rule_strategy = study.rule_strategy;
  window.rules = study.rules;
  window.grid = study.grid;
  window.ranking = study.ranking;
  window.ranking.top = 1;
  window.ranking.progress = false;
  window.ranking.robustness_blocks = 0;
  window.store = study.store;
  window.force = study.force;

  CurveAccumulator stitched(options.cash);
  double scale = 1.0;  // the stitched equity over the starting cash, at the current window's start
  double in_sample_sharpe = 0, out_of_sample_sharpe = 0;
  for (std::size_t k = 0; k < out.windows.size(); ++k) {
    WalkForwardWindow& w = out.windows[k];
    window.execution = options;
    window.execution.close_at_end = true;
    window.execution.first_bar = w.train_start;
    window.symbols = {first_bars(bars, w.train_end + 1)};
    const OptimizeResult best = run_study(window, executor).result;
    out.computed += best.computed;
    out.from_cache += best.from_cache;
    if (best.top.empty() || best.top[0].empty())
      throw ParamError({"min_trades"}, fmt::format("window {} (training bars {} to {}): no combination was ranked "
                                                   "(lower min_trades)",
                                                   k + 1, w.train_start + 1, w.train_end + 1));
    w.parameters = best.top[0][0].params;
    w.in_sample = best.top[0][0].metrics;
    window.execution.first_bar = w.test_start;
    const BacktestResult run = run_strategy(first_bars(bars, w.test_end + 1), strategy, w.parameters, window.execution);
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

}  // namespace

std::vector<WalkForwardResult> walk_forward(const StudyRequest& study, const WalkForwardOptions& wf,
                                            RangeExecutor* executor) {
  if (!study.grid) throw ParamError("a walk-forward needs a strategy and a grid");
  study.execution.validate();
  metric_index(study.ranking.metric);
  require_device(study.ranking.device);
  if (study.ranking.device == "cuda")
    throw ParamError({"device"}, "a walk-forward's windows run on the CPU engines: use the cpu or auto device");
  if (study.ranking.robustness_blocks > 0)
    throw ParamError({"robustness"}, "robustness is a study's, not a walk-forward's: its windows are the evidence");
  for (const auto& bars : study.symbols) walk_forward_windows(bars.size(), wf);  // every symbol's windows first
  std::vector<WalkForwardResult> results;
  for (const auto& bars : study.symbols) results.push_back(walk_forward_on(study, bars, wf, executor));
  return results;
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
  return {
      {"symbol", bars.symbol},
      {"windows", windows},
      {"out_of_sample", metrics_json(r.out_of_sample)},
      {"efficiency", std::isnan(r.efficiency) ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(r.efficiency)},
      {"computed", r.computed},
      {"from_cache", r.from_cache}};
}

nlohmann::ordered_json walk_forward_json(const StudyRequest& study, const std::vector<WalkForwardResult>& results) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (std::size_t s = 0; s < results.size(); ++s)
    out.push_back(walk_forward_json(study.symbols[s], study.grid->strategy(), results[s]));
  return results.size() == 1 ? out[0] : out;
}

std::string walk_forward_text(const StudyRequest& study, const WalkForwardOptions& wf,
                              const std::vector<WalkForwardResult>& results) {
  const Strategy& strategy = study.grid->strategy();
  const std::string& metric = study.ranking.metric;
  std::string out;
  for (std::size_t s = 0; s < results.size(); ++s) {
    const Bars& bars = study.symbols[s];
    const WalkForwardResult& r = results[s];
    const auto time = [&](std::size_t t) { return format_time(bars.time[t], bars.intraday); };
    out +=
        fmt::format("{} | walk-forward of {} by {}: {} windows of {} training and {} test bars ({})\n", bars.symbol,
                    strategy.name, metric, r.windows.size(), wf.train, wf.test, wf.anchored ? "anchored" : "rolling");
    for (const auto& w : r.windows)
      out += fmt::format("  test {} to {}: {}  in-sample {} {:.4f}, out-of-sample {:.4f}\n", time(w.test_start),
                         time(w.test_end), strategy.describe(w.parameters), metric, metric_value(w.in_sample, metric),
                         metric_value(w.out_of_sample, metric));
    const auto& m = r.out_of_sample;
    out += fmt::format(
        "  out of sample, stitched: total return {:.2f} %, sharpe {:.3f}, max drawdown {:.2f} %, {} trades; "
        "walk-forward efficiency {}\n",
        100 * m.total_return, m.sharpe, 100 * m.max_drawdown, m.trades,
        std::isnan(r.efficiency) ? std::string("undefined (in-sample sharpe 0)") : fmt::format("{:.3f}", r.efficiency));
  }
  return out;
}

namespace {

std::string windows_csv(const StudyRequest& study, const std::vector<WalkForwardResult>& results) {
  const Strategy& strategy = study.grid->strategy();
  const std::string& metric = study.ranking.metric;
  const bool many = results.size() > 1;
  std::string out = many ? "symbol," : "";
  out += "train_start,train_end,test_start,test_end";
  for (const auto& p : strategy.params) out += fmt::format(",{}", csv_field(p.name));
  out += fmt::format(",in_sample_{0},out_of_sample_{0},in_sample_sharpe,out_of_sample_sharpe\n", metric);
  for (std::size_t s = 0; s < results.size(); ++s) {
    const Bars& bars = study.symbols[s];
    for (const auto& w : results[s].windows) {
      if (many) out += fmt::format("{},", csv_field(bars.symbol));
      const auto time = [&](std::size_t t) { return format_time(bars.time[t], bars.intraday); };
      out += fmt::format("{},{},{},{}", time(w.train_start), time(w.train_end), time(w.test_start), time(w.test_end));
      for (std::size_t p = 0; p < strategy.params.size(); ++p)
        out += fmt::format(",{}", format_param_value(strategy.params[p], w.parameters[p]));
      out += fmt::format(",{},{},{},{}\n", csv_number(metric_value(w.in_sample, metric)),
                         csv_number(metric_value(w.out_of_sample, metric)), csv_number(w.in_sample.sharpe),
                         csv_number(w.out_of_sample.sharpe));
    }
  }
  return out;
}

std::string equity_csv(const StudyRequest& study, const std::vector<WalkForwardResult>& results) {
  const bool many = results.size() > 1;
  std::string out = many ? "symbol,time,equity,position\n" : "time,equity,position\n";
  for (std::size_t s = 0; s < results.size(); ++s) {
    const Bars& bars = study.symbols[s];
    const WalkForwardResult& r = results[s];
    for (std::size_t i = 0; i < r.equity.size(); ++i) {
      if (many) out += fmt::format("{},", csv_field(bars.symbol));
      out += fmt::format("{},{},{}\n", format_time(bars.time[r.equity_bars[i]], bars.intraday), csv_number(r.equity[i]),
                         csv_number(r.position[i]));
    }
  }
  return out;
}

}  // namespace

void check_walk_forward_files(const WalkForwardFiles& files) {
  for (const auto* path : {&files.windows, &files.equity, &files.report})
    if (!path->empty()) check_output_path(*path);
  if (!files.report.empty()) report::chart_library();
}

void write_walk_forward_files(const StudyRequest& study, const std::vector<WalkForwardResult>& results,
                              const WalkForwardFiles& files) {
  if (!files.windows.empty()) write_file_atomically(files.windows, windows_csv(study, results));
  if (!files.equity.empty()) write_file_atomically(files.equity, equity_csv(study, results));
  if (!files.report.empty()) {
    std::vector<report::WalkForwardReportInput> inputs;
    for (std::size_t s = 0; s < results.size(); ++s)
      inputs.push_back(
          {&study.symbols[s], &results[s], &study.grid->strategy(), study.ranking.metric, study.execution.cash});
    write_file_atomically(files.report, report::walk_forward_report_html(inputs, report::chart_library()));
  }
}

}  // namespace gt
