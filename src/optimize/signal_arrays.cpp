// Signal arrays backtested column by column (include/gt/signal_arrays.hpp): long-only,
// whole-equity columns through the long-only book the grid engines use (the arrays packed into bit
// masks 64 columns at a time, so that a row-major array is read a cache line at a time), the others
// through the reference engine.
#include "gt/signal_arrays.hpp"

#include <fmt/format.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <optional>

#include "../data/csv_fields.hpp"
#include "gt/error.hpp"
#include "long_trades.hpp"

namespace gt {
namespace {

// Columns packed and booked together: one cache line of a row-major array per bar.
constexpr std::size_t kBlock = 64;

}  // namespace

void SignalColumns::validate(const Bars& for_bars) const {
  if (bars != for_bars.size())
    throw ParamError({"entries"}, fmt::format("{} rows of signals for the {} bars of {} (one row per bar)", bars,
                                              for_bars.size(), for_bars.symbol));
  if (!entries.data) throw ParamError({"entries"}, "entries are required (one boolean per bar and column)");
  if (!exits.data) throw ParamError({"exits"}, "exits are required (one boolean per bar and column)");
  if (!short_entries.data != !short_exits.data)
    throw ParamError({"short_entries", "short_exits"},
                     "short_entries and short_exits go together: give both or neither");
  if (columns == 0) throw ParamError({"entries"}, "entries have no columns: give at least one");
}

void SignalColumns::events(std::size_t column, std::span<std::uint8_t> out) const {
  const bool shorts = short_entries.data != nullptr;
  for (std::size_t t = 0; t < bars; ++t)
    out[t] = rule_events(entries.at(t, column), exits.at(t, column), shorts, shorts && short_entries.at(t, column),
                         shorts && short_exits.at(t, column));
}

std::vector<Metrics> signal_metrics(const Bars& bars, const SignalColumns& signals,
                                    std::span<const ExecutionOptions> options) {
  signals.validate(bars);
  if (options.size() != 1 && options.size() != signals.columns)
    throw ParamError(
        fmt::format("{} option sets for {} columns (give one, or one per column)", options.size(), signals.columns));
  for (const auto& o : options) o.validate();
  const auto options_of = [&](std::size_t k) -> const ExecutionOptions& {
    return options[options.size() == 1 ? 0 : k];
  };
  // One book per distinct set of options that the book serves (usually one); a column's exits are
  // its own, handed to the book with its signals.
  const auto without_exits = [](ExecutionOptions o) {
    o.exits = {};
    return o;
  };
  std::vector<std::size_t> book_of(signals.columns, 0);
  std::vector<ExecutionOptions> distinct;
  for (std::size_t k = 0; k < signals.columns; ++k) {
    if (!detail::LongTradeBook::serves(options_of(k))) continue;
    const ExecutionOptions book_options = without_exits(options_of(k));
    auto it = std::find(distinct.begin(), distinct.end(), book_options);
    book_of[k] = static_cast<std::size_t>(it - distinct.begin());
    if (it == distinct.end()) distinct.push_back(book_options);
  }
  std::vector<std::optional<detail::LongTradeBook>> books(distinct.size());
  tbb::parallel_for(std::size_t{0}, distinct.size(), [&](std::size_t b) { books[b].emplace(bars, distinct[b]); });

  std::vector<Metrics> out(signals.columns);
  const std::size_t n = bars.size(), words = (n + 63) / 64;
  const bool shorts = signals.short_entries.data != nullptr;
  tbb::parallel_for(std::size_t{0}, (signals.columns + kBlock - 1) / kBlock, [&](std::size_t block) {
    const std::size_t first = block * kBlock, count = std::min(kBlock, signals.columns - first);
    // Entries (where short_entry does not also hold, as the rules read them) and exits as masks.
    std::vector<std::uint64_t> entry_masks(count * words, 0), exit_masks(count * words, 0);
    for (std::size_t t = 0; t < n; ++t) {
      const std::uint64_t bit = std::uint64_t{1} << (t % 64);
      for (std::size_t c = 0; c < count; ++c) {
        const std::size_t k = first + c;
        const bool entry = signals.entries.at(t, k) && !(shorts && signals.short_entries.at(t, k));
        if (entry) entry_masks[c * words + t / 64] |= bit;
        if (signals.exits.at(t, k)) exit_masks[c * words + t / 64] |= bit;
      }
    }
    const auto slots = std::span(out).subspan(first, count);
    std::vector<std::uint8_t> events(n);
    for (std::size_t b = 0; b < books.size(); ++b) {
      detail::LongTradeBook::Batch batch(*books[b], slots);
      for (std::size_t c = 0; c < count; ++c)
        if (detail::LongTradeBook::serves(options_of(first + c)) && book_of[first + c] == b)
          batch.add(static_cast<std::uint32_t>(c), entry_masks.data() + c * words, nullptr,
                    exit_masks.data() + c * words, options_of(first + c).exits);
      batch.finish();
    }
    for (std::size_t c = 0; c < count; ++c) {
      const ExecutionOptions& o = options_of(first + c);
      if (detail::LongTradeBook::serves(o)) continue;
      signals.events(first + c, events);
      slots[c] = backtest_metrics(bars, events, o, resolve_periods_per_year(bars, o));
    }
  });
  return out;
}

BacktestResult signal_backtest(const Bars& bars, const SignalColumns& signals, std::size_t column,
                               const ExecutionOptions& options) {
  signals.validate(bars);
  if (column >= signals.columns)
    throw ParamError(fmt::format("column {} of {} (allowed: 0 to {})", column, signals.columns, signals.columns - 1));
  std::vector<std::uint8_t> events(bars.size());
  signals.events(column, events);
  return run_backtest(bars, events, options);
}

std::vector<std::uint8_t> read_signals_csv(const std::filesystem::path& path, const Bars& bars) {
  const std::string file = path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ParamError({"signals"}, fmt::format("{}: cannot read the signals file", file));
  // The fields of a line by the field loop every CSV reader here shares, trimmed and in lower case.
  const auto split = [](const std::string& line) {
    std::vector<std::string> fields;
    csv::for_each_field(line, [&](std::string_view field) {
      std::string f = csv::unquote(field);
      while (!f.empty() && std::isspace(static_cast<unsigned char>(f.back()))) f.pop_back();
      while (!f.empty() && std::isspace(static_cast<unsigned char>(f.front()))) f.erase(f.begin());
      std::transform(f.begin(), f.end(), f.begin(), [](unsigned char c) { return std::tolower(c); });
      fields.push_back(std::move(f));
      return true;
    });
    return fields;
  };
  std::string line;
  if (!std::getline(in, line)) throw ParamError({"signals"}, fmt::format("{}: the file is empty", file));
  const std::vector<std::string> header = split(line);
  const auto column = [&](const char* name) -> std::optional<std::size_t> {
    const auto it = std::find(header.begin(), header.end(), name);
    return it == header.end() ? std::nullopt : std::optional(static_cast<std::size_t>(it - header.begin()));
  };
  const auto time = column("time"), entry = column("entry"), exit = column("exit"), short_entry = column("short_entry"),
             short_exit = column("short_exit");
  if (!time || !entry || !exit)
    throw ParamError({"signals"}, fmt::format("{}:1: the header needs time, entry and exit (optional: short_entry, "
                                              "short_exit), not '{}'",
                                              file, line));
  if (short_entry.has_value() != short_exit.has_value())
    throw ParamError({"signals"}, fmt::format("{}:1: short_entry and short_exit go together", file));
  std::vector<std::uint8_t> events;
  std::size_t number = 1;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty() || line == "\r") continue;
    const std::vector<std::string> fields = split(line);
    const std::string where = fmt::format("{}:{}", file, number);
    const auto flag = [&](std::optional<std::size_t> at, const char* name) {
      if (!at) return false;
      const std::string value = *at < fields.size() ? fields[*at] : "";
      if (value == "1" || value == "true") return true;
      if (value == "0" || value == "false") return false;
      throw ParamError({"signals"}, fmt::format("{}: {} = '{}' (allowed: 0, 1, true, false)", where, name, value));
    };
    const std::size_t bar = events.size();
    if (bar >= bars.size())
      throw ParamError({"signals"},
                       fmt::format("{}: more rows than the {} bars of {}", where, bars.size(), bars.symbol));
    const std::string expected = format_time(bars.time[bar], bars.intraday);
    if (*time >= fields.size() || fields[*time] != expected)
      throw ParamError({"signals"},
                       fmt::format("{}: time '{}' where bar {} of {} is at {} (one row per bar, in order)", where,
                                   *time < fields.size() ? fields[*time] : "", bar + 1, bars.symbol, expected));
    const bool shorts = short_entry.has_value();
    events.push_back(rule_events(flag(entry, "entry"), flag(exit, "exit"), shorts, flag(short_entry, "short_entry"),
                                 flag(short_exit, "short_exit")));
  }
  if (events.size() != bars.size())
    throw ParamError({"signals"}, fmt::format("{}: {} rows of signals for the {} bars of {} (one row per bar)", file,
                                              events.size(), bars.size(), bars.symbol));
  return events;
}

}  // namespace gt
