// CSV loading throughput (rows per second), on a synthetic daily file of 1 million rows held in
// memory, so that the figure measures parsing and validation rather than the disk.
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <cmath>

#include "gt/data.hpp"

namespace {

std::string synthetic_csv(std::size_t rows, bool intraday) {
  std::string text =
      intraday ? "Date,Time,Open,High,Low,Close,Volume,OpenInterest\n" : "Date,Open,High,Low,Close,Adj Close,Volume\n";
  for (std::size_t i = 0; i < rows; ++i) {
    const std::int64_t t =
        (intraday ? static_cast<std::int64_t>(i) * 300 : static_cast<std::int64_t>(i) * 86400) + 946684800;
    const std::string date = gt::format_time(t, intraday);
    const double price =
        100.0 + 20.0 * std::sin(static_cast<double>(i) / 500.0) + static_cast<double>((i * 7919) % 101) / 100.0;
    const double open = price, close = price * 1.003, high = close * 1.01, low = open * 0.99;
    if (intraday)
      text += fmt::format("{},{},{:.2f},{:.2f},{:.2f},{:.2f},{},0\n", date.substr(0, 10), date.substr(11), open, high,
                          low, close, 1000 + i % 5000);
    else
      text += fmt::format("{},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},{}\n", date, open, high, low, close, close,
                          1000000 + i % 777777);
  }
  return text;
}

void LoadCsv(benchmark::State& state) {
  const bool intraday = state.range(0) != 0;
  const std::size_t rows = 1'000'000;
  const std::string text = synthetic_csv(rows, intraday);
  for (auto _ : state) {
    gt::Bars bars = gt::parse_csv(text, intraday ? "intraday.csv" : "daily.csv");
    benchmark::DoNotOptimize(bars);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(rows));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(text.size()));
  state.SetLabel(intraday ? "Date+Time, 5-minute bars" : "Date, daily bars");
}
BENCHMARK(LoadCsv)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

}  // namespace
