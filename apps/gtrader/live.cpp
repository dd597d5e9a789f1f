// gtrader live (docs/SEMANTICS.md "Live signals").
#include "gt/live.hpp"

#include <fmt/format.h>

#include <atomic>
#include <csignal>
#include <memory>

#include "commands.hpp"
#include "execution_options.hpp"

namespace gtrader {
namespace {

std::atomic<bool> stop_requested{false};

struct LiveCommand {
  gt::LiveOptions live;
  ExecutionFlags exec;
  StrategyChoice strategy;
  std::vector<std::string> params;
};

void run_live(LiveCommand& c) {
  auto assignments = split_assignments(c.params);
  c.strategy.require_one();
  const gt::Strategy strategy = c.strategy.strategy(assignments);
  const gt::ParamValues params = gt::parse_params(strategy, assignments);
  c.live.execution = c.exec.resolve();
  // SIGINT and SIGTERM end the run between bars: every bar is then processed with its signals or not at all.
  std::signal(SIGINT, [](int) { stop_requested = true; });
  std::signal(SIGTERM, [](int) { stop_requested = true; });
  const gt::LiveReport r = gt::run_live(c.live, strategy, params, &stop_requested);
  fmt::print("live {} {}: {} bars, {} signals to {}, {} set aside in {}:dead; {} bars of warm-up from the stream{}\n",
             strategy.name, strategy.describe(params), r.bars, r.decisions, c.live.signals_stream, r.dead_letters,
             c.live.bars_stream, r.warm_up, r.reconnects ? fmt::format("; {} reconnections", r.reconnects) : "");
}

}  // namespace

void add_live(CLI::App& app) {
  auto c = std::make_shared<LiveCommand>();
  CLI::App* cmd = app.add_subcommand("live", "Trading signals from bars arriving on a Redis stream, exactly once");
  cmd->add_option("--redis", c->live.redis, "redis://[[user]:password@]host[:port][/db]")->required();
  cmd->add_option("--bars-stream", c->live.bars_stream,
                  "Stream of bar messages (fields symbol, time, open, high, low, close, volume)")
      ->required();
  cmd->add_option("--signals-stream", c->live.signals_stream, "Stream the decisions are appended to")->required();
  cmd->add_option("--group", c->live.group, "Consumer group on the bars stream (gtrader)");
  cmd->add_option("--idle-exit", c->live.idle_exit_seconds,
                  "Stop after this many seconds without a new bar (0: run until interrupted)");
  c->strategy.add_to(*cmd);
  cmd->add_option("--param", c->params, "NAME=VALUE (repeatable)");
  c->exec.add_to(*cmd);
  cmd->callback([c] { run_live(*c); });
}

}  // namespace gtrader
