// Market data: validated OHLCV bars in a columnar layout (docs/SEMANTICS.md "Market data").
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace gt {

// What a row may hold besides docs/SEMANTICS.md "Market data" rules: sums of many prices, their squares and products
// with units, and sums of volumes (the volume filter's SMA), all stay far inside a double's range
// and above its subnormals. Real instruments trade well inside these bounds.
inline constexpr double kMinPrice = 1e-12, kMaxPrice = 1e12, kMaxVolume = 1e18;

// A series of the user's own beside the bars (docs/SEMANTICS.md "Rules"): one value per bar, NaN
// where it is undefined; rules read it by name.
struct UserSeries {
  std::string name;
  std::vector<double> values;
};

// One symbol's bars, one contiguous array per field so that kernels stream a single column.
// Times are seconds since 1970-01-01 on the exchange's own clock (no time zone is applied).
struct Bars {
  std::string symbol;  // the file's stem, e.g. "orcl-1995-2014"
  std::string source;  // the path it was read from
  std::vector<std::int64_t> time;
  std::vector<double> open, high, low, close, volume;
  bool intraday = false;             // the file had a time of day (Time column or Datetime values)
  std::size_t skipped_rows = 0;      // rows dropped under LoadOptions::skip_bad_rows
  std::vector<std::string> skipped;  // "line N: why" for each of them
  std::vector<UserSeries> series;    // the user's own series, in the order given

  const UserSeries* find_series(std::string_view name) const;

  std::size_t size() const { return close.size(); }
};

struct LoadOptions {
  // Drop rows that fail validation instead of failing; the count lands in Bars::skipped_rows.
  bool skip_bad_rows = false;
};

// Parses CSV text by docs/SEMANTICS.md "Market data" rules; `source` names it in error messages.
Bars parse_csv(std::string_view text, std::string_view source, const LoadOptions& options = {});
// load_csv and bars_from_columns, the ways data enter a study, also refuse prices outside
// [kMinPrice, kMaxPrice] and volumes above kMaxVolume.
// A file, gzip-compressed or not (read by its bytes, whatever its name); a UTF-8 byte-order mark is
// passed over.
Bars load_csv(const std::filesystem::path& path, const LoadOptions& options = {});
// A file's symbol name: its name without .csv (and .gz).
std::string symbol_of(const std::filesystem::path& path);

// Bars from columns in memory (a DataFrame's, say), by the same rules as a file; errors and skipped
// rows name the row, counted from 0. `source` stays empty.
Bars bars_from_columns(std::string symbol, std::span<const std::int64_t> time, std::span<const double> open,
                       std::span<const double> high, std::span<const double> low, std::span<const double> close,
                       std::span<const double> volume, bool intraday, const LoadOptions& options = {});

// `bars` with a series of the user's own added: one finite value or NaN per bar. Throws DataError
// naming the series when its length differs from the bars' or a value is infinite, and ParamError
// when the name is not an identifier, is a bar field (open high low close volume) or is taken.
Bars with_series(Bars bars, std::string name, std::span<const double> values);
// Appends one bar arriving on its own (a live feed): its time as a file gives it ("YYYY-MM-DD[
// HH:MM[:SS]]") and its prices, checked by the rules a file's rows follow and after the last bar.
// Returns why it is refused (nothing appended), or "" when appended.
std::string append_bar(Bars& bars, std::string_view time, double open, double high, double low, double close,
                       double volume);

// Files and folders: a folder contributes every *.csv in it, in name order.
std::vector<Bars> load_many(const std::vector<std::filesystem::path>& inputs, const LoadOptions& options = {});

// Symbols are told apart by name in results, trades and the cache's reports: throws ParamError
// naming the inputs when two share a name.
void require_distinct_symbols(std::span<const Bars> symbols);

// The last `count` bars of `bars` (all of them when it has fewer).
Bars last_bars(const Bars& bars, std::size_t count);
// The first `count` bars (all when there are fewer).
Bars first_bars(const Bars& bars, std::size_t count);
// `count` bars from `source` for benchmarks: its last bars when it has enough, otherwise its bars
// replayed end to end (prices rescaled to continue from the last close, one day apart).
Bars bars_of_length(const Bars& source, std::size_t count);

// `text` as one CSV field (RFC 4180): in double quotes, its quotes doubled, when it holds a comma,
// a quote or a line break; as it is otherwise. Every CSV file the project writes goes through it.
std::string csv_field(std::string_view text);
// A number as a CSV field: the shortest text that reads back to the same double; empty for NaN
// (an undefined value).
std::string csv_number(double value);

// "YYYY-MM-DD", or "YYYY-MM-DD HH:MM:SS" when `with_time`.
std::string format_time(std::int64_t seconds, bool with_time);

// Bars per year: 252 for daily bars, 52 weekly, 12 monthly; for intraday bars 252 times the
// median number of bars per trading day.
double infer_periods_per_year(const Bars& bars);

// Days since 1970-01-01 of a proleptic Gregorian date.
std::int64_t days_from_civil(int year, unsigned month, unsigned day);

}  // namespace gt
