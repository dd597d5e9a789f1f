// Live signals (docs/SEMANTICS.md "Live signals"): bars read from a Redis stream through a
// consumer group, one state per symbol, and a message on a signals stream for every decision the
// backtest would make on the same bars, exactly once across crashes and restarts.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gt/backtest.hpp"
#include "gt/data.hpp"
#include "gt/strategy.hpp"

namespace gt {

struct LiveOptions {
  std::string redis;  // redis://[[user]:password@]host[:port][/db]
  std::string bars_stream, signals_stream;
  std::string group = "gtrader";
  std::string consumer = "gtrader-live";
  ExecutionOptions execution;
  // Stop after this many seconds without a new bar (0: run until `stop` is set).
  double idle_exit_seconds = 0;
};

struct LiveReport {
  std::uint64_t bars = 0;          // bars processed by this run (decided on)
  std::uint64_t decisions = 0;     // signals appended by this run
  std::uint64_t dead_letters = 0;  // malformed or out-of-order bars set aside by this run
  std::uint64_t warm_up = 0;       // bars replayed from the stream to rebuild the state at start
  std::uint64_t reconnects = 0;    // times the connection was lost and made again
};

// A decision on a bar: buy (flat -> long), sell (long -> flat), short (flat -> short), cover
// (short -> flat); a reversal is two.
struct LiveDecision {
  std::string action;
};

// One symbol's state as its bars arrive: the strategy's signals bar by bar (its stream, O(1) a bar;
// a strategy without one, the model, computes its signals over the bars so far) and the backtest's
// fills stepped one bar at a time, so that its decisions are those `run_backtest` makes on the
// same bars.
class LiveSymbol {
 public:
  LiveSymbol(std::string symbol, const Strategy& strategy, const ParamValues& values, const ExecutionOptions& options);
  ~LiveSymbol();
  LiveSymbol(const LiveSymbol&) = delete;
  LiveSymbol& operator=(const LiveSymbol&) = delete;

  // The next bar (its time as a data file writes it): the decisions it brings appended to
  // `decisions` (orders placed at its close, for the next open or filled at the close, and exits by
  // price or time within it). Returns why the bar is refused (out of order, bad prices: nothing
  // changes), or "".
  std::string add(std::string_view time, const BarValues& bar, std::vector<LiveDecision>& decisions);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Runs until `stop` is set, or idle for options.idle_exit_seconds. Throws Error when Redis cannot
// be reached at start (a lost connection later is retried with backoff).
LiveReport run_live(const LiveOptions& options, const Strategy& strategy, const ParamValues& values,
                    const std::atomic<bool>* stop = nullptr);

// Appends `bars` to `stream`, one message per bar (symbol, time, open, high, low, close, volume),
// `bars_per_second` at most (0: as fast as Redis takes them). Returns the messages written.
std::uint64_t replay_bars(const Bars& bars, const std::string& redis, const std::string& stream,
                          double bars_per_second);

}  // namespace gt
