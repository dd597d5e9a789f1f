// gtrader replay: a file's bars into a Redis stream (docs/SEMANTICS.md "Live signals").
#include <fmt/format.h>

#include <memory>

#include "commands.hpp"
#include "gt/cache.hpp"
#include "gt/live.hpp"

namespace gtrader {
namespace {

struct ReplayCommand {
  DataOptions data;
  std::string redis, stream;
  double speed = 0;
};

void run_replay(ReplayCommand& c) {
  for (const gt::Bars& bars : c.data.load()) {
    const std::uint64_t n = gt::replay_bars(bars, c.redis, c.stream, c.speed);
    fmt::print("replayed {} bars of {} into {} on {}\n", n, bars.symbol, c.stream, gt::redact_url(c.redis));
  }
}

}  // namespace

void add_replay(CLI::App& app) {
  auto c = std::make_shared<ReplayCommand>();
  CLI::App* cmd = app.add_subcommand("replay", "Push a file's bars into a Redis stream, one message per bar");
  c->data.add_to(*cmd);
  cmd->add_option("--redis", c->redis, "redis://[[user]:password@]host[:port][/db]")->required();
  cmd->add_option("--bars-stream", c->stream, "The stream to append to")->required();
  cmd->add_option("--speed", c->speed, "Bars per second (0: as fast as Redis takes them)")
      ->check(CLI::NonNegativeNumber);
  cmd->callback([c] { run_replay(*c); });
}

}  // namespace gtrader
