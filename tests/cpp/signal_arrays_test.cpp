// Signal arrays (docs/SEMANTICS.md "Signal arrays"): each column backtested as the rules strategy
// its arrays are, whatever the layout; long-only columns booked as the grid engines book them agree
// with the reference engine; a signals file is read bar by bar or refused naming its line.
#include "gt/signal_arrays.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "engine_agreement.hpp"
#include "gt/error.hpp"

namespace {

const gt::Bars& orcl() {
  static const gt::Bars bars = gt::load_csv(GT_DATA_DIR "/orcl-1995-2014.csv");
  return bars;
}

// Random entries and exits, `columns` wide, stored row-major (bar by bar).
std::vector<std::uint8_t> random_rows(std::size_t bars, std::size_t columns, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::uint8_t> out(bars * columns);
  for (auto& v : out) v = rng() % 25 == 0;
  return out;
}

TEST(SignalArrays, EveryColumnIsTheReferenceBacktestOfItsEventsWhateverTheLayout) {
  const std::size_t n = orcl().size(), k = 70;
  const auto entries = random_rows(n, k, 1), exits = random_rows(n, k, 2);
  // The same arrays column-major.
  std::vector<std::uint8_t> entries_t(n * k), exits_t(n * k);
  for (std::size_t t = 0; t < n; ++t)
    for (std::size_t c = 0; c < k; ++c) {
      entries_t[c * n + t] = entries[t * k + c];
      exits_t[c * n + t] = exits[t * k + c];
    }
  const auto kk = static_cast<std::ptrdiff_t>(k), nn = static_cast<std::ptrdiff_t>(n);
  const gt::SignalColumns rows{n, k, {entries.data(), kk, 1}, {exits.data(), kk, 1}, {}, {}};
  const gt::SignalColumns cols{n, k, {entries_t.data(), 1, nn}, {exits_t.data(), 1, nn}, {}, {}};
  for (const bool shorts : {false, true}) {
    gt::ExecutionOptions o;
    o.allow_short = shorts;  // with shorts: the reference engine; without: the long-only book
    o.commission = 0.001;
    const auto a = gt::signal_metrics(orcl(), rows, std::span(&o, 1));
    const auto b = gt::signal_metrics(orcl(), cols, std::span(&o, 1));
    std::vector<std::uint8_t> events(n);
    for (std::size_t c = 0; c < k; ++c) {
      rows.events(c, events);
      const gt::Metrics expected = gt::run_backtest(orcl(), events, o).metrics;
      EXPECT_EQ(a[c].trades, expected.trades) << c;
      EXPECT_EQ(b[c].final_equity, a[c].final_equity) << c;
      gt::testing::expect_close(a[c].sharpe, expected.sharpe, "sharpe", std::to_string(c));
      gt::testing::expect_close(a[c].final_equity, expected.final_equity, "final_equity", std::to_string(c));
      gt::testing::expect_close(a[c].max_drawdown, expected.max_drawdown, "max_drawdown", std::to_string(c));
    }
  }
}

TEST(SignalArrays, ShapesThatCannotBeUsedAreRefusedNamingTheArray) {
  const std::uint8_t one[] = {1};
  gt::SignalColumns s{1, 1, {one, 1, 1}, {}, {}, {}};
  gt::ExecutionOptions o;
  EXPECT_THROW(gt::signal_metrics(orcl(), s, std::span(&o, 1)), gt::ParamError);  // no exits
  s.exits = s.entries;
  s.short_entries = s.entries;
  EXPECT_THROW(gt::signal_metrics(orcl(), s, std::span(&o, 1)), gt::ParamError);  // short arrays alone
}

TEST(SignalArrays, ASignalsFileIsReadBarByBarOrRefusedNamingItsLine) {
  const gt::Bars bars = gt::last_bars(orcl(), 3);
  const std::string path = ::testing::TempDir() + "/signals.csv";
  const auto write = [&](const std::string& text) { std::ofstream(path) << text; };
  const auto day = [&](std::size_t i) { return gt::format_time(bars.time[i], false); };
  write("Time,Entry,Exit\n" + day(0) + ",1,0\n" + day(1) + ",false,TRUE\n" + day(2) + ",0,0\n");
  const auto events = gt::read_signals_csv(path, bars);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0], gt::kLongEntry | gt::kShortExit);
  EXPECT_EQ(events[1], gt::kLongExit | gt::kShortEntry);
  EXPECT_EQ(events[2], 0);
  write("time,entry,exit\n" + day(0) + ",1,0\n" + day(2) + ",0,1\n");
  try {
    gt::read_signals_csv(path, bars);
    FAIL();
  } catch (const gt::ParamError& e) {
    EXPECT_NE(std::string(e.what()).find(path + ":3: time '" + day(2) + "' where bar 2"), std::string::npos);
  }
  write("time,entry\n");
  EXPECT_THROW(gt::read_signals_csv(path, bars), gt::ParamError);
}

}  // namespace
