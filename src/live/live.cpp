// Live signals (gt/live.hpp, docs/SEMANTICS.md "Live signals").
#include "gt/live.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <optional>
#include <thread>
#include <unordered_map>

#include "../backtest/account.hpp"
#include "../redis/redis_connection.hpp"
#include "gt/error.hpp"

namespace gt {
namespace {

constexpr const char* kFields[] = {"symbol", "time", "open", "high", "low", "close", "volume"};

std::string_view text_of(const redisReply* r) {
  return {r->str, r->len};
}

struct BarMessage {
  std::string id;
  std::map<std::string, std::string> fields;
};

// Stream entries of an XRANGE or XREADGROUP reply (the entries of its one stream).
std::vector<BarMessage> entries_of(const redisReply* entries) {
  std::vector<BarMessage> out;
  if (!entries || entries->type != REDIS_REPLY_ARRAY) return out;
  for (std::size_t i = 0; i < entries->elements; ++i) {
    const redisReply* e = entries->element[i];
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2) continue;
    BarMessage m{std::string(text_of(e->element[0])), {}};
    const redisReply* kv = e->element[1];
    if (kv->type == REDIS_REPLY_ARRAY)
      for (std::size_t k = 0; k + 1 < kv->elements; k += 2)
        m.fields[std::string(text_of(kv->element[k]))] = std::string(text_of(kv->element[k + 1]));
    out.push_back(std::move(m));
  }
  return out;
}

// Message ids "ms-seq" in stream order.
bool id_after(const std::string& a, const std::string& b) {
  const auto split = [](const std::string& id) {
    const auto dash = id.find('-');
    return std::pair<std::uint64_t, std::uint64_t>{std::stoull(id.substr(0, dash)),
                                                   dash == std::string::npos ? 0 : std::stoull(id.substr(dash + 1))};
  };
  return split(a) > split(b);
}

class LiveRun {
 public:
  LiveRun(const LiveOptions& o, const Strategy& strategy, const ParamValues& values)
      : o_(o),
        strategy_(strategy),
        values_(values),
        described_(strategy.describe(values)),
        last_key_(fmt::format("gtrader:live:{}:{}:{}:last", o.bars_stream, o.group, o.signals_stream)),
        dead_stream_(o.bars_stream + ":dead") {}

  // Connects and rebuilds every symbol's state from the bars already processed.
  void start(RedisConnection& redis) {
    symbols_.clear();
    const RedisReply created = redis.command({"XGROUP", "CREATE", o_.bars_stream, o_.group, "0", "MKSTREAM"});
    if (created->type == REDIS_REPLY_ERROR && text_of(created.get()).rfind("BUSYGROUP", 0) != 0)
      throw RedisUnavailable(fmt::format("{}: {}", redis.describe(), text_of(created.get())));
    const RedisReply last = redis.checked({"GET", last_key_});
    last_ = last->type == REDIS_REPLY_STRING ? std::string(text_of(last.get())) : "0-0";
    // The state is what the bars processed so far made it: they are read back in order and run
    // through it again, their decisions (made and recorded before) dropped.
    std::string from = "-";
    std::vector<LiveDecision> dropped;
    while (last_ != "0-0") {
      const RedisReply r = redis.checked({"XRANGE", o_.bars_stream, from, last_, "COUNT", "2000"});
      const auto entries = entries_of(r.get());
      for (const auto& m : entries) {
        accept(m, dropped);
        dropped.clear();
        ++report.warm_up;
      }
      if (entries.size() < 2000) break;
      from = "(" + entries.back().id;
    }
  }

  // Processes what is pending for this consumer, then what arrives; returns when idle too long,
  // stopped, or the connection fails (thrown).
  void serve(RedisConnection& redis, const std::atomic<bool>* stop) {
    std::string cursor = "0";  // this consumer's pending entries first, then new ones
    auto idle_since = std::chrono::steady_clock::now();
    while (!(stop && stop->load())) {
      std::vector<std::string> read = {"XREADGROUP", "GROUP", o_.group, o_.consumer, "COUNT", "1000"};
      if (cursor == ">") read.insert(read.end(), {"BLOCK", "200"});
      read.insert(read.end(), {"STREAMS", o_.bars_stream, cursor});
      const RedisReply r = redis.checked(read);
      std::vector<BarMessage> entries;
      if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 && r->element[0]->elements == 2)
        entries = entries_of(r->element[0]->element[1]);
      if (cursor == "0" && entries.empty()) {
        cursor = ">";
        continue;
      }
      if (entries.empty()) {
        const double idle = std::chrono::duration<double>(std::chrono::steady_clock::now() - idle_since).count();
        if (o_.idle_exit_seconds > 0 && idle >= o_.idle_exit_seconds) return;
        continue;
      }
      idle_since = std::chrono::steady_clock::now();
      std::erase_if(entries, [&](const BarMessage& m) { return !id_after(m.id, last_); });  // processed before
      if (!entries.empty()) process(redis, entries);
    }
  }

  LiveReport report;

 private:
  // Parses a bar message and runs it through its symbol's state, adding its decisions; the reason
  // when it is refused (the state unchanged).
  std::string accept(const BarMessage& m, std::vector<LiveDecision>& decisions) {
    for (const char* f : kFields)
      if (!m.fields.count(f)) return fmt::format("field '{}' is missing", f);
    double v[5];
    for (int i = 0; i < 5; ++i) {
      const std::string& text = m.fields.at(kFields[i + 2]);
      char* end = nullptr;
      v[i] = std::strtod(text.c_str(), &end);
      if (text.empty() || end != text.c_str() + text.size())
        return fmt::format("field '{}': '{}' is not a number", kFields[i + 2], text);
    }
    const std::string& symbol = m.fields.at("symbol");
    auto it = symbols_.find(symbol);
    if (it == symbols_.end())
      it = symbols_.emplace(symbol, std::make_unique<LiveSymbol>(symbol, strategy_, values_, o_.execution)).first;
    return it->second->add(m.fields.at("time"), {v[0], v[1], v[2], v[3], v[4]}, decisions);
  }

  // The bars of one read: their decisions, their acknowledgements and the record of how far this
  // run got, in one MULTI/EXEC transaction, so that a crash leaves all of them or none (and a
  // failed transaction, the connection lost, rebuilds the state from Redis: start()).
  void process(RedisConnection& redis, const std::vector<BarMessage>& entries) {
    std::vector<std::vector<std::string>> commands = {{"MULTI"}};
    std::vector<std::string> ack = {"XACK", o_.bars_stream, o_.group};
    LiveReport counted;
    std::vector<LiveDecision> decisions;
    for (const BarMessage& m : entries) {
      decisions.clear();
      const std::string problem = accept(m, decisions);
      if (!problem.empty()) {
        std::vector<std::string> dead = {"XADD", dead_stream_, "*", "bar_id", m.id, "reason", problem};
        for (const auto& [k, val] : m.fields) {
          dead.push_back(k);
          dead.push_back(val);
        }
        commands.push_back(std::move(dead));
        ++counted.dead_letters;
      } else {
        for (const LiveDecision& d : decisions)
          commands.push_back({"XADD", o_.signals_stream, "*", "symbol", m.fields.at("symbol"), "time",
                              m.fields.at("time"), "action", d.action, "strategy", strategy_.name, "parameters",
                              described_, "bar_id", m.id});
        counted.decisions += decisions.size();
        ++counted.bars;
      }
      ack.push_back(m.id);
    }
    commands.push_back(std::move(ack));
    commands.push_back({"SET", last_key_, entries.back().id});
    commands.push_back({"EXEC"});
    const auto replies = redis.pipeline(commands);
    const redisReply* exec = replies.back().get();
    if (exec->type != REDIS_REPLY_ARRAY)
      throw RedisUnavailable(fmt::format("{}: the transaction of bars {} to {} failed ({})", redis.describe(),
                                         entries.front().id, entries.back().id,
                                         exec->type == REDIS_REPLY_ERROR ? text_of(exec) : "no reply"));
    last_ = entries.back().id;
    report.bars += counted.bars;
    report.decisions += counted.decisions;
    report.dead_letters += counted.dead_letters;
  }

  const LiveOptions& o_;
  const Strategy& strategy_;
  const ParamValues& values_;
  std::string described_, last_key_, dead_stream_, last_ = "0-0";
  std::unordered_map<std::string, std::unique_ptr<LiveSymbol>> symbols_;  // each symbol's state
};

}  // namespace

struct LiveSymbol::State {
  State(std::string symbol, const Strategy& s, const ParamValues& v, const ExecutionOptions& o)
      : strategy(s), values(v), options(s.options_for(o, v)), simulation(options, trades) {
    bars.symbol = std::move(symbol);
    if (s.stream) stream = s.stream(v);
  }
  // This bar's events: from the stream, or from the signals over the bars so far (none before the
  // strategy's first signal bar: a model has no window before it).
  std::uint8_t events(const BarValues& bar) {
    if (stream) return stream->next(bar);
    if (strategy.first_signal_bar && bars.size() <= strategy.first_signal_bar(values)) return 0;
    std::vector<std::uint8_t> signals(bars.size());
    SeriesCache cache;
    strategy.signals(bars, values, signals, cache);
    return signals.back();
  }

  const Strategy& strategy;
  const ParamValues values;
  const ExecutionOptions options;
  std::unique_ptr<SignalStream> stream;
  Bars bars;                  // the bars so far; with a stream, the last one only (what the next is checked against)
  std::vector<Trade> trades;  // the open trade, if any, and those closed at the last bar
  detail::Simulation simulation;
  std::size_t t = 0;  // the bar's index
};

LiveSymbol::LiveSymbol(std::string symbol, const Strategy& strategy, const ParamValues& values,
                       const ExecutionOptions& options)
    : state_(std::make_unique<State>(std::move(symbol), strategy, values, options)) {}
LiveSymbol::~LiveSymbol() = default;

std::string LiveSymbol::add(std::string_view time, const BarValues& bar, std::vector<LiveDecision>& decisions) {
  State& s = *state_;
  if (std::string problem = append_bar(s.bars, time, bar.open, bar.high, bar.low, bar.close, bar.volume);
      !problem.empty())
    return problem;
  const std::uint8_t events = s.events(bar);
  if (s.stream && s.bars.size() > 1) {  // only the last bar is needed from here on
    for (auto* column : {&s.bars.open, &s.bars.high, &s.bars.low, &s.bars.close, &s.bars.volume})
      column->erase(column->begin());
    s.bars.time.erase(s.bars.time.begin());
  }
  const std::size_t t = s.t++;
  s.simulation.step(t, bar.open, bar.high, bar.low, bar.close, events, false);
  const auto exit_action = [](int side) { return side > 0 ? "sell" : "cover"; };
  const auto entry_action = [](int side) { return side > 0 ? "buy" : "short"; };
  const bool close_fills = s.options.fill == Fill::kClose;
  // Fills within this bar that were not ordered at the previous close: exits by price and time,
  // and with close fills everything the rules do at this close (exits first).
  for (const Trade& trade : s.trades)
    if (!trade.open && trade.exit_bar == t && (close_fills || trade.exit_reason != ExitReason::kRule))
      decisions.push_back({exit_action(trade.side)});
  if (close_fills) {
    for (const Trade& trade : s.trades)
      if (trade.entry_bar == t) decisions.push_back({entry_action(trade.side)});
  } else if (const auto target = s.simulation.order()) {  // next-open fills: the order this close places
    if (s.simulation.direction() != 0) decisions.push_back({exit_action(s.simulation.direction())});
    if (*target != 0) decisions.push_back({entry_action(*target)});
  }
  std::erase_if(s.trades, [](const Trade& trade) { return !trade.open; });  // the open one stays last
  return "";
}

LiveReport run_live(const LiveOptions& options, const Strategy& strategy, const ParamValues& values,
                    const std::atomic<bool>* stop) {
  options.execution.validate();
  strategy.require_signals();
  strategy.validate(values);
  if (options.bars_stream.empty() || options.signals_stream.empty())
    throw ParamError({"bars_stream", "signals_stream"}, "live signals need a bars stream and a signals stream");
  LiveRun run(options, strategy, values);
  std::optional<RedisConnection> redis;
  redis.emplace(options.redis, "redis");  // unreachable or refused at start: the user's to fix
  double backoff = 0.1;
  for (;;) {
    try {
      run.start(*redis);
      run.serve(*redis, stop);
      return run.report;
    } catch (const RedisUnavailable&) {
      // Lost while running: connect again, with growing pauses, and start over from what Redis
      // recorded (the bars processed are exactly those acknowledged with their signals).
      for (;;) {
        if (stop && stop->load()) return run.report;
        std::this_thread::sleep_for(std::chrono::duration<double>(backoff));
        backoff = std::min(backoff * 2, 5.0);
        try {
          redis.reset();
          redis.emplace(options.redis, "redis");
          ++run.report.reconnects;
          backoff = 0.1;
          break;
        } catch (const Error&) {
        }
      }
    }
  }
}

std::uint64_t replay_bars(const Bars& bars, const std::string& url, const std::string& stream, double bars_per_second) {
  RedisConnection redis(url, "redis");
  const auto start = std::chrono::steady_clock::now();
  constexpr std::size_t kBatch = 500;
  std::uint64_t written = 0;
  for (std::size_t at = 0; at < bars.size();) {
    const std::size_t n = bars_per_second > 0 ? 1 : std::min(kBatch, bars.size() - at);
    std::vector<std::vector<std::string>> commands;
    for (std::size_t i = at; i < at + n; ++i)
      commands.push_back({"XADD", stream, "*", "symbol", bars.symbol, "time", format_time(bars.time[i], bars.intraday),
                          "open", csv_number(bars.open[i]), "high", csv_number(bars.high[i]), "low",
                          csv_number(bars.low[i]), "close", csv_number(bars.close[i]), "volume",
                          csv_number(bars.volume[i])});
    for (const auto& reply : redis.pipeline(commands))
      if (reply->type == REDIS_REPLY_ERROR)
        throw Error({"redis"},
                    fmt::format("redis {}: XADD to {} refused ({})", redis.describe(), stream, text_of(reply.get())));
    at += n;
    written += n;
    if (bars_per_second > 0)
      std::this_thread::sleep_until(start +
                                    std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                        std::chrono::duration<double>(static_cast<double>(at) / bars_per_second)));
  }
  return written;
}

}  // namespace gt
