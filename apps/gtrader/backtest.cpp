#include <fmt/format.h>

#include <cmath>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "execution_options.hpp"
#include "gt/atomic_file.hpp"
#include "gt/error.hpp"
#include "gt/ml.hpp"
#include "gt/portfolio.hpp"
#include "gt/report.hpp"
#include "gt/rules.hpp"
#include "gt/signal_arrays.hpp"
#include "gt/strategy.hpp"
#include "gt/study.hpp"

namespace gtrader {
namespace {

struct BacktestCommand {
  DataOptions data;
  ExecutionFlags exec;
  StrategyChoice strategy;
  std::vector<std::string> params;
  std::string trades_path, equity_path, report_path, report_png;
  bool json = false;
  PortfolioFlags portfolio;
};

// Each symbol's trades; a symbol column when there are several.
std::string trades_csv(const std::vector<std::pair<const gt::Bars*, const std::vector<gt::Trade>*>>& runs) {
  const bool many = runs.size() > 1;
  std::string out = many ? "symbol," : "";
  out += "entry_time,exit_time,side,entry_price,exit_price,units,pnl,return,bars_held,exit_reason\n";
  for (const auto& [bars, trades] : runs) {
    const gt::TradeColumns t = gt::trade_columns(*trades);
    const auto time_at = [&](double bar) {
      return std::isnan(bar) ? std::string()
                             : gt::format_time(bars->time[static_cast<std::size_t>(bar)], bars->intraday);
    };
    for (std::size_t i = 0; i < t.size(); ++i) {
      if (many) out += gt::csv_field(bars->symbol) + ",";
      out += fmt::format("{},{},{},{},{},{},{},{},{},{}\n", time_at(t.entry_bar[i]), time_at(t.exit_bar[i]),
                         t.side[i] > 0 ? "long" : "short", gt::csv_number(t.entry_price[i]),
                         gt::csv_number(t.exit_price[i]), gt::csv_number(t.units[i]), gt::csv_number(t.pnl[i]),
                         gt::csv_number(t.ret[i]), static_cast<std::size_t>(t.bars_held[i]), t.exit_reason[i]);
    }
  }
  return out;
}

std::string equity_csv(const std::vector<std::pair<const gt::Bars*, gt::BacktestResult>>& runs, double cash) {
  const bool many = runs.size() > 1;
  std::string out = many ? "symbol,time,equity,position,drawdown\n" : "time,equity,position,drawdown\n";
  for (const auto& [bars, r] : runs) {
    double peak = cash;  // the starting equity is the first peak (docs/SEMANTICS.md "Metrics")
    for (std::size_t t = 0; t < r.equity.size(); ++t) {
      peak = std::max(peak, r.equity[t]);
      if (many) out += gt::csv_field(bars->symbol) + ",";
      out += fmt::format("{},{},{},{}\n", gt::format_time(bars->time[t], bars->intraday), gt::csv_number(r.equity[t]),
                         gt::csv_number(r.position[t]), gt::csv_number(1.0 - r.equity[t] / peak));
    }
  }
  return out;
}

// A file of signals as a strategy without parameters, so that every output works as for rules.
gt::Strategy signals_strategy(const std::string& path) {
  gt::Strategy s{};
  s.name = "signals";
  s.description = "signals from " + path;
  s.code_version = 1;
  gt::add_exit_params(s.name, s.params);  // exits by price and time apply to any signals
  s.signals = [path](const gt::Bars& bars, const gt::ParamValues&, std::span<std::uint8_t> out, gt::SeriesCache&) {
    const std::vector<std::uint8_t> events = gt::read_signals_csv(path, bars);
    std::copy(events.begin(), events.end(), out.begin());
  };
  return s;
}

// The summary's table of metrics.
void print_metrics(const gt::Metrics& m) {
  fmt::print("  total return {:>10.2f} %     CAGR          {:>8.2f} %\n", 100 * m.total_return, 100 * m.cagr);
  fmt::print("  sharpe       {:>10.3f}       sortino       {:>8.3f}\n", m.sharpe, m.sortino);
  fmt::print("  max drawdown {:>10.2f} %     calmar        {:>8.3f}\n", 100 * m.max_drawdown, m.calmar);
  fmt::print("  trades       {:>10}       win rate      {:>8.2f} %\n", m.trades, 100 * m.win_rate);
  fmt::print("  profit factor{:>10.3f}       exposure      {:>8.2f} %\n", m.profit_factor, 100 * m.exposure);
  fmt::print("  avg trade    {:>10.3f} %     final equity  {:>12.2f}\n", 100 * m.avg_trade_return, m.final_equity);
}

// --portfolio: one account over every symbol (docs/SEMANTICS.md "Portfolios").
void run_portfolio(const BacktestCommand& c, const gt::PortfolioOptions& allocation, const std::vector<gt::Bars>& all,
                   const gt::Strategy& strategy, const gt::ParamValues& params, const gt::ExecutionOptions& options,
                   const std::string& chart_js) {
  gt::check_portfolio(all, allocation);
  for (const auto& bars : all) strategy.require_enough_bars(bars, params);
  const gt::PortfolioResult r = gt::run_portfolio(all, strategy, params, options, allocation);
  const auto time = [&](std::size_t u) { return gt::format_time(r.time[u], all.front().intraday); };
  if (!c.trades_path.empty()) {
    std::vector<std::pair<const gt::Bars*, const std::vector<gt::Trade>*>> trades;
    for (std::size_t s = 0; s < all.size(); ++s) trades.emplace_back(&all[s], &r.trades[s]);
    gt::write_file_atomically(c.trades_path, trades_csv(trades));
  }
  if (!c.equity_path.empty()) {
    std::string out = "time,equity,drawdown";
    for (const auto& bars : all) out += "," + gt::csv_field(bars.symbol);
    out += "\n";
    double peak = options.cash;
    for (std::size_t u = 0; u < r.time.size(); ++u) {
      peak = std::max(peak, r.equity[u]);
      out += fmt::format("{},{},{}", time(u), gt::csv_number(r.equity[u]), gt::csv_number(1.0 - r.equity[u] / peak));
      for (std::size_t s = 0; s < all.size(); ++s) out += fmt::format(",{}", gt::csv_number(r.value[s][u]));
      out += "\n";
    }
    gt::write_file_atomically(c.equity_path, out);
  }
  if (!c.report_path.empty()) {
    gt::write_file_atomically(c.report_path,
                              gt::report::portfolio_report_html(
                                  {&all, &r, strategy.name, strategy.describe(params), options.cash}, chart_js));
    fmt::print(stderr, "report written to {}\n", c.report_path);
    if (!c.report_png.empty()) {
      gt::report::render_png(c.report_path, c.report_png);
      fmt::print(stderr, "picture written to {}\n", c.report_png);
    }
  }
  const auto& m = r.metrics;
  if (c.json) {
    nlohmann::ordered_json j = gt::metrics_json(m);
    j["strategy"] = strategy.name;
    j["parameters"] = gt::params_json(strategy, params);
    j["timestamps"] = r.time.size();
    j["ruined"] = r.ruined_at.has_value();
    j["skipped_entries"] = r.skipped_entries;
    nlohmann::ordered_json symbols = nlohmann::ordered_json::array();
    for (std::size_t s = 0; s < all.size(); ++s) {
      std::int64_t closed = 0;
      for (const gt::Trade& t : r.trades[s]) closed += !t.open;
      symbols.push_back(
          {{"symbol", all[s].symbol},
           {"weight", allocation.weights.empty() ? 1.0 / static_cast<double>(all.size()) : allocation.weights[s]},
           {"contribution", r.contribution[s]},
           {"trades", closed},
           {"final_value", r.value[s].back()}});
    }
    j["symbols"] = symbols;
    j["periods_per_year"] = r.periods_per_year;
    fmt::print("{}\n", gt::json_text(j));
    return;
  }
  fmt::print("portfolio of {} symbols | {} {} | {} timestamps, {} to {}{}\n", all.size(), strategy.name,
             strategy.describe(params), r.time.size(), time(0), time(r.time.size() - 1),
             allocation.rebalance ? fmt::format(", rebalanced every {}", allocation.rebalance) : "");
  print_metrics(m);
  for (std::size_t s = 0; s < all.size(); ++s)
    fmt::print("  {:<24} contribution {:>14.2f}   value at the end {:>14.2f}\n", all[s].symbol, r.contribution[s],
               r.value[s].back());
  if (r.skipped_entries) fmt::print("  entries skipped for lack of cash: {}\n", r.skipped_entries);
  if (r.ruined_at) fmt::print("  RUINED: the equity reached 0 at {}; nothing more traded\n", time(*r.ruined_at));
}

void run(BacktestCommand& c) {
  auto assignments = split_assignments(c.params);
  c.strategy.require_one();
  const gt::Strategy strategy =
      !c.strategy.signals.empty() ? signals_strategy(c.strategy.signals) : c.strategy.strategy(assignments);
  const gt::ParamValues params = gt::parse_params(strategy, assignments);
  const gt::ExecutionOptions options = c.exec.resolve();
  // The charts' library is checked before any work, so a missing one fails fast.
  const std::string chart_js = c.report_path.empty() ? std::string() : gt::report::chart_library();
  if (!c.report_png.empty()) {
    if (c.report_path.empty()) throw gt::ParamError("--report-png draws the --report page: give --report too");
    (void)gt::report::chromium_path();
  }
  for (const std::string* path : {&c.trades_path, &c.equity_path, &c.report_path, &c.report_png})
    if (!path->empty()) gt::check_output_path(*path);  // every output before any work
  const auto all = c.data.load();
  if (const auto allocation = c.portfolio.resolve())
    return run_portfolio(c, *allocation, all, strategy, params, options, chart_js);
  std::vector<std::pair<const gt::Bars*, gt::BacktestResult>> runs;
  for (const auto& bars : all) strategy.require_enough_bars(bars, params);
  for (const auto& bars : all) runs.emplace_back(&bars, gt::run_strategy(bars, strategy, params, options));
  if (!c.trades_path.empty()) {
    std::vector<std::pair<const gt::Bars*, const std::vector<gt::Trade>*>> trades;
    for (const auto& [bars, r] : runs) trades.emplace_back(bars, &r.trades);
    gt::write_file_atomically(c.trades_path, trades_csv(trades));
  }
  if (!c.equity_path.empty()) gt::write_file_atomically(c.equity_path, equity_csv(runs, options.cash));
  if (!c.report_path.empty()) {
    std::vector<gt::report::BacktestReportInput> inputs;
    for (const auto& [bars, r] : runs)
      inputs.push_back({bars, &r, strategy.name, strategy.describe(params), options.cash});
    gt::write_file_atomically(c.report_path, gt::report::backtest_report_html(inputs, chart_js));
    fmt::print(stderr, "report written to {}\n", c.report_path);
    if (!c.report_png.empty()) {
      gt::report::render_png(c.report_path, c.report_png);
      fmt::print(stderr, "picture written to {}\n", c.report_png);
    }
  }
  if (c.json) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const auto& [bars, r] : runs) {
      nlohmann::ordered_json j = gt::metrics_json(r.metrics);
      j["symbol"] = bars->symbol;
      j["strategy"] = strategy.name;
      j["parameters"] = gt::params_json(strategy, params);
      j["bars"] = bars->size();
      j["ruined"] = r.ruined_at.has_value();
      j["periods_per_year"] = gt::resolve_periods_per_year(*bars, options);
      out.push_back(j);
    }
    fmt::print("{}\n", gt::json_text(runs.size() == 1 ? out[0] : out));
    return;
  }
  for (const auto& [bars, r] : runs) {
    const auto& m = r.metrics;
    fmt::print("{} | {} {} | {} bars, {} to {}\n", bars->symbol, strategy.name, strategy.describe(params), bars->size(),
               gt::format_time(bars->time.front(), bars->intraday), gt::format_time(bars->time.back(), bars->intraday));
    print_metrics(m);
    // Why the closed trades closed, when anything but the rules closed some.
    std::map<std::string_view, int> reasons;
    for (const gt::Trade& t : r.trades)
      if (!t.open) ++reasons[gt::exit_reason_name(t.exit_reason)];
    if (!reasons.empty() && !(reasons.size() == 1 && reasons.begin()->first == "rule")) {
      std::string text;
      for (const auto& [reason, count] : reasons)
        text += fmt::format("{}{} {}", text.empty() ? "" : ", ", reason, count);
      fmt::print("  exits        {}\n", text);
    }
    if (r.ruined_at)
      fmt::print("  RUINED: the equity reached 0 at {}; the position was closed there and nothing more traded\n",
                 gt::format_time(bars->time[*r.ruined_at], bars->intraday));
  }
}

}  // namespace

void add_backtest(CLI::App& app) {
  auto c = std::make_shared<BacktestCommand>();
  CLI::App* cmd = app.add_subcommand("backtest", "Backtest one parameter set of a strategy");
  c->data.add_to(*cmd);
  c->strategy.add_to(*cmd, true);
  cmd->add_option("--param", c->params,
                  "NAME=VALUE (repeatable); defaults from the strategy's schema; model=FILE.pt for --strategy model");
  c->exec.add_to(*cmd);
  cmd->add_option("--trades", c->trades_path, "Write the trade list to this CSV file")->check(output_file());
  cmd->add_option("--equity", c->equity_path, "Write the equity curve to this CSV file")->check(output_file());
  cmd->add_option("--report", c->report_path, "Write an HTML report (price and fills, equity, drawdown) to this file")
      ->check(output_file());
  cmd->add_option("--report-png", c->report_png, "Also draw the report into this PNG file (needs chromium)")
      ->check(output_file());
  cmd->add_flag("--json", c->json, "Print the metrics as JSON");
  c->portfolio.add_to(*cmd);
  cmd->callback([c] { run(*c); });
}

}  // namespace gtrader
