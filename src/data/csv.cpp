#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstring>
#include <fstream>
#include <optional>

#include "csv_fields.hpp"
#include "gt/data.hpp"
#include "gt/error.hpp"

namespace gt {
namespace {

enum class Column { kDate, kTime, kOpen, kHigh, kLow, kClose, kVolume, kIgnored };

constexpr std::array kRequired = {Column::kDate, Column::kOpen,  Column::kHigh,
                                  Column::kLow,  Column::kClose, Column::kVolume};

std::string_view column_label(Column c) {
  switch (c) {
    case Column::kDate:
      return "Date";
    case Column::kTime:
      return "Time";
    case Column::kOpen:
      return "Open";
    case Column::kHigh:
      return "High";
    case Column::kLow:
      return "Low";
    case Column::kClose:
      return "Close";
    case Column::kVolume:
      return "Volume";
    case Column::kIgnored:
      break;
  }
  return "?";
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '"')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '"' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return out;
}

Column classify(std::string_view raw) {
  const std::string name = lower(trim(raw));
  if (name == "date" || name == "datetime" || name == "timestamp") return Column::kDate;
  if (name == "time") return Column::kTime;
  if (name == "open") return Column::kOpen;
  if (name == "high") return Column::kHigh;
  if (name == "low") return Column::kLow;
  if (name == "close") return Column::kClose;
  if (name == "volume") return Column::kVolume;
  return Column::kIgnored;  // Adj Close, OpenInterest and anything else: kept out of the bars
}

bool parse_uint(std::string_view s, std::size_t pos, std::size_t len, unsigned& out) {
  if (pos + len > s.size()) return false;
  unsigned v = 0;
  for (std::size_t i = pos; i < pos + len; ++i) {
    const char c = s[i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  out = v;
  return true;
}

// "HH:MM" or "HH:MM:SS" -> seconds of the day.
std::optional<std::int64_t> parse_clock(std::string_view s) {
  unsigned h = 0, m = 0, sec = 0;
  if (!(s.size() == 5 || s.size() == 8) || !parse_uint(s, 0, 2, h) || s[2] != ':' || !parse_uint(s, 3, 2, m))
    return std::nullopt;
  if (s.size() == 8 && (s[5] != ':' || !parse_uint(s, 6, 2, sec))) return std::nullopt;
  if (h > 23 || m > 59 || sec > 60) return std::nullopt;
  return static_cast<std::int64_t>(h) * 3600 + m * 60 + sec;
}

struct ParsedDate {
  std::int64_t seconds;
  bool has_clock;
};

// "YYYY-MM-DD" (or with '/'), optionally followed by ' ' or 'T' and a clock time.
std::optional<ParsedDate> parse_date(std::string_view s) {
  unsigned y = 0, mo = 0, d = 0;
  if (s.size() < 10 || !parse_uint(s, 0, 4, y) || (s[4] != '-' && s[4] != '/') || !parse_uint(s, 5, 2, mo) ||
      s[7] != s[4] || !parse_uint(s, 8, 2, d))
    return std::nullopt;
  static constexpr std::array<unsigned, 12> kDays = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (mo < 1 || mo > 12 || d < 1 || d > kDays[mo - 1]) return std::nullopt;
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (mo == 2 && d == 29 && !leap) return std::nullopt;
  ParsedDate out{days_from_civil(static_cast<int>(y), mo, d) * 86400, false};
  if (s.size() == 10) return out;
  if (s[10] != ' ' && s[10] != 'T') return std::nullopt;
  auto clock = parse_clock(s.substr(11));
  if (!clock) return std::nullopt;
  out.seconds += *clock;
  out.has_clock = true;
  return out;
}

// Calls f on every column of `bars`, for what is done to each alike.
template <class F>
void for_each_column(Bars& bars, F&& f) {
  f(bars.time);
  f(bars.open);
  f(bars.high);
  f(bars.low);
  f(bars.close);
  f(bars.volume);
}

// The rules of a row (docs/SEMANTICS.md "Market data") and of their order, for rows read from files and for columns
// given in memory alike: appends good rows, skips or fails on bad ones, and names each by its line (a file) or its row
// (columns, counted from 0).
class RowChecker {
 public:
  RowChecker(std::string_view source, const LoadOptions& options, bool numbered_rows, bool engine_range)
      : source_(source), options_(options), rows_(numbered_rows), engine_range_(engine_range) {}

  // Appends the bar, or returns why it is bad.
  std::string add(Bars& bars, std::size_t where, std::int64_t t, bool clock, double o, double h, double l, double c,
                  double v) {
    const std::pair<const char*, double> prices[] = {{"Open", o}, {"High", h}, {"Low", l}, {"Close", c}};
    for (const auto& [name, p] : prices) {
      if (!std::isfinite(p) || p <= 0) return fmt::format("field '{}': price {} must be finite and > 0", name, p);
      if (engine_range_ && (p < kMinPrice || p > kMaxPrice))
        return fmt::format("field '{}': price {} is outside [{:g}, {:g}], the range the engine's arithmetic holds",
                           name, p, kMinPrice, kMaxPrice);
    }
    if (!std::isfinite(v) || v < 0) return fmt::format("field 'Volume': {} must be finite and >= 0", v);
    if (engine_range_ && v > kMaxVolume)
      return fmt::format("field 'Volume': {} is above {:g}, the range the engine's arithmetic holds", v, kMaxVolume);
    if (l > std::min(o, c)) return fmt::format("field 'Low': {} is above min(Open, Close) = {}", l, std::min(o, c));
    if (h < std::max(o, c)) return fmt::format("field 'High': {} is below max(Open, Close) = {}", h, std::max(o, c));
    any_clock_ = any_clock_ || clock;
    bars.time.push_back(t);
    bars.open.push_back(o);
    bars.high.push_back(h);
    bars.low.push_back(l);
    bars.close.push_back(c);
    bars.volume.push_back(v);
    where_.push_back(where);
    return {};
  }

  void skip_or_fail(std::size_t where, const std::string& problem, Bars& bars) const {
    if (!options_.skip_bad_rows)
      fail(where, problem + " (use skip_bad_rows to drop such rows and count them)", {"skip_bad_rows"});
    ++bars.skipped_rows;
    bars.skipped.push_back(fmt::format("{} {}: {}", rows_ ? "row" : "line", where, problem));
  }

  [[noreturn]] void fail(std::size_t where, const std::string& what, std::vector<std::string> parameters = {}) const {
    throw DataError(std::move(parameters), rows_ ? fmt::format("{}: row {}: {}", source_, where, what)
                                                 : fmt::format("{}:{}: {}", source_, where, what));
  }

  bool any_clock() const { return any_clock_; }

  // Rows must run in strictly increasing time. Where they do not, the rows out of order are those
  // outside the longest increasing run through the data (a mistyped year is one row, not every
  // row after it); a repeated time keeps its first row.
  void check_order(Bars& bars) const {
    const auto& time = bars.time;
    bool sorted = true;
    for (std::size_t i = 1; i < time.size() && sorted; ++i) sorted = time[i] > time[i - 1];
    if (sorted) return;
    // The run is found from the last row back (rows whose times decrease), so that of two equally
    // long runs the one with the earlier rows wins: with 03, 02 the second row is the odd one.
    std::vector<std::size_t> tails, successor(time.size(), SIZE_MAX);
    for (std::size_t i = time.size(); i-- > 0;) {
      const auto at = std::lower_bound(tails.begin(), tails.end(), time[i],
                                       [&](std::size_t row, std::int64_t t) { return time[row] > t; });
      if (at != tails.begin()) successor[i] = *(at - 1);
      if (at == tails.end())
        tails.push_back(i);
      else
        *at = i;  // an equal time too: the earlier row stays
    }
    std::vector<bool> keep(time.size(), false);
    for (std::size_t i = tails.back(); i != SIZE_MAX; i = successor[i]) keep[i] = true;
    std::vector<std::size_t> kept;
    for (std::size_t i = 0; i < time.size(); ++i) {
      if (keep[i]) {
        kept.push_back(i);
        continue;
      }
      const auto next = std::find(keep.begin() + static_cast<std::ptrdiff_t>(i), keep.end(), true);
      const std::string before = kept.empty() ? "" : format_time(time[kept.back()], any_clock_);
      const std::string after =
          next == keep.end() ? "" : format_time(time[static_cast<std::size_t>(next - keep.begin())], any_clock_);
      std::string why;
      if (!kept.empty() && time[i] <= time[kept.back()])
        why = fmt::format("is not after the previous row's {}", before);
      else
        why = fmt::format("is out of order: the rows around it run from {} to {}", before, after);
      skip_or_fail(where_[i],
                   fmt::format("field 'Date': {} {} (rows must be in strictly increasing time, without duplicates)",
                               format_time(time[i], any_clock_), why),
                   bars);
    }
    for_each_column(bars, [&](auto& column) {
      std::size_t out = 0;
      for (std::size_t i : kept) column[out++] = column[i];
      column.resize(out);
    });
  }

 private:
  std::string_view source_;
  const LoadOptions& options_;
  bool rows_;
  bool engine_range_;               // also refuse prices and volumes beyond what the engine's arithmetic holds
  std::vector<std::size_t> where_;  // the line or row of each bar appended
  bool any_clock_ = false;
};

class Parser {
 public:
  Parser(std::string_view source, const LoadOptions& options, bool engine_range)
      : source_(source), options_(options), checker_(source, options, false, engine_range) {}

  Bars run(std::string_view text) {
    Bars bars;
    bars.source = std::string(source_);
    bars.symbol = std::filesystem::path(std::string(source_)).stem().string();
    std::size_t pos = 0;
    std::size_t line_no = 0;
    bool header_done = false;
    const std::size_t estimate = static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) + 1;
    while (pos < text.size()) {
      std::size_t end = text.find('\n', pos);
      if (end == std::string_view::npos) end = text.size();
      std::string_view line = text.substr(pos, end - pos);
      pos = end + 1;
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (trim(line).empty()) continue;  // blank lines carry no data
      if (!header_done) {
        read_header(line, line_no);
        header_done = true;
        reserve(bars, estimate);
        continue;
      }
      read_row(line, line_no, bars);
    }
    checker_.check_order(bars);
    if (!header_done) throw DataError(fmt::format("{}: the file is empty (no header row)", source_));
    if (bars.size() == 0)
      throw DataError(fmt::format("{}: no data rows after the header{}", source_,
                                  bars.skipped_rows ? fmt::format(" ({} bad rows skipped)", bars.skipped_rows) : ""));
    bars.intraday = checker_.any_clock();
    return bars;
  }

 private:
  void reserve(Bars& b, std::size_t n) {
    for_each_column(b, [n](auto& column) { column.reserve(n); });
  }

  void read_header(std::string_view line, std::size_t line_no) {
    csv::for_each_field(line, [&](std::string_view field) {
      const Column c = classify(field);
      if (c != Column::kIgnored) {
        for (std::size_t i = 0; i < columns_.size(); ++i)
          if (columns_[i] == c)
            throw DataError(
                fmt::format("{}:{}: column '{}' appears twice in the header", source_, line_no, trim(field)));
      }
      columns_.push_back(c);
      return true;
    });
    for (Column need : kRequired) {
      if (std::find(columns_.begin(), columns_.end(), need) == columns_.end())
        throw DataError(
            fmt::format("{}:{}: missing column '{}' (header is '{}'; need Date or Datetime or Timestamp, "
                        "optional Time, Open, High, Low, Close, Volume)",
                        source_, line_no, column_label(need), trim(line)));
    }
  }

  // Returns an error description, or empty when the row is good and was appended.
  std::string parse_row(std::string_view line, std::size_t line_no, Bars& bars) {
    double values[7] = {0, 0, 0, 0, 0, 0, 0};
    std::string_view date_text, clock_text;
    std::size_t index = 0;
    std::string error;
    csv::for_each_field(line, [&](std::string_view field) {
      if (index >= columns_.size()) {
        error = fmt::format("has more than the header's {} fields", columns_.size());
        return false;
      }
      const Column c = columns_[index];
      if (c == Column::kDate) {
        date_text = trim(field);
      } else if (c == Column::kTime) {
        clock_text = trim(field);
      } else if (c != Column::kIgnored) {
        field = trim(field);
        double v = 0;
        if (!csv::parse_number(field, v)) {
          error = fmt::format("field '{}': '{}' is not a number", column_label(c), field);
          return false;
        }
        values[static_cast<int>(c)] = v;
      }
      ++index;
      return true;
    });
    if (!error.empty()) return error;
    if (index != columns_.size()) return fmt::format("has {} fields, the header has {}", index, columns_.size());

    auto date = parse_date(date_text);
    if (!date) return fmt::format("field 'Date': '{}' is not a date (expected YYYY-MM-DD[ HH:MM[:SS]])", date_text);
    std::int64_t t = date->seconds;
    bool clock = date->has_clock;
    if (!clock_text.empty()) {
      auto secs = parse_clock(clock_text);
      if (!secs || date->has_clock)
        return fmt::format("field 'Time': '{}' is not a time of day (expected HH:MM[:SS])", clock_text);
      t += *secs;
      clock = true;
    }
    auto value = [&](Column col) { return values[static_cast<int>(col)]; };
    return checker_.add(bars, line_no, t, clock, value(Column::kOpen), value(Column::kHigh), value(Column::kLow),
                        value(Column::kClose), value(Column::kVolume));
  }

  void read_row(std::string_view line, std::size_t line_no, Bars& bars) {
    const std::string problem = parse_row(line, line_no, bars);
    if (!problem.empty()) checker_.skip_or_fail(line_no, problem, bars);
  }

  std::string_view source_;
  const LoadOptions& options_;
  std::vector<Column> columns_;
  RowChecker checker_;
};

}  // namespace

std::int64_t days_from_civil(int year, unsigned month, unsigned day) {
  // Howard Hinnant's algorithm: exact for the proleptic Gregorian calendar.
  year -= month <= 2;
  const int era = (year >= 0 ? year : year - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(year - era * 400);
  const unsigned doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return static_cast<std::int64_t>(era) * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

Bars bars_of_length(const Bars& source, std::size_t count) {
  if (source.size() >= count) return last_bars(source, count);
  Bars out;
  out.symbol = fmt::format("{}-{}", source.symbol, count);
  out.source = source.source;
  out.intraday = source.intraday;
  double scale = 1.0;
  std::int64_t t = source.time.front();
  while (out.size() < count) {
    for (std::size_t i = 0; i < source.size() && out.size() < count; ++i) {
      out.time.push_back(t);
      t += 86400;
      out.open.push_back(source.open[i] * scale);
      out.high.push_back(source.high[i] * scale);
      out.low.push_back(source.low[i] * scale);
      out.close.push_back(source.close[i] * scale);
      out.volume.push_back(source.volume[i]);
    }
    scale = out.close.back() / source.close.front();
  }
  return out;
}

namespace {

// Bars [first, first + count) of `bars`, with their own series.
Bars bars_between(const Bars& bars, std::size_t first, std::size_t count) {
  Bars out;
  out.symbol = bars.symbol;
  out.source = bars.source;
  out.intraday = bars.intraday;
  const auto from = static_cast<std::ptrdiff_t>(first), to = static_cast<std::ptrdiff_t>(first + count);
  auto part = [&](const auto& v) { return std::vector(v.begin() + from, v.begin() + to); };
  out.time = part(bars.time);
  out.open = part(bars.open);
  out.high = part(bars.high);
  out.low = part(bars.low);
  out.close = part(bars.close);
  out.volume = part(bars.volume);
  for (const auto& s : bars.series) out.series.push_back({s.name, part(s.values)});
  return out;
}

}  // namespace

Bars last_bars(const Bars& bars, std::size_t count) {
  const std::size_t kept = std::min(count, bars.size());
  return bars_between(bars, bars.size() - kept, kept);
}

Bars first_bars(const Bars& bars, std::size_t count) {
  return bars_between(bars, 0, std::min(count, bars.size()));
}

const UserSeries* Bars::find_series(std::string_view name) const {
  for (const auto& s : series)
    if (s.name == name) return &s;
  return nullptr;
}

Bars with_series(Bars bars, std::string name, std::span<const double> values) {
  const bool identifier = !name.empty() && (std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_') &&
                          std::all_of(name.begin(), name.end(),
                                      [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
  if (!identifier)
    throw ParamError({"series"}, fmt::format("series name '{}' is not an identifier (letters, digits, _)", name));
  for (const char* field : {"open", "high", "low", "close", "volume", "and", "or", "not", "true", "false"})
    if (name == field) throw ParamError({"series"}, fmt::format("series name '{}' is reserved: choose another", name));
  if (bars.find_series(name))
    throw ParamError({"series"}, fmt::format("{}: series '{}' is given twice", bars.symbol, name));
  if (values.size() != bars.size())
    throw DataError(fmt::format("{}: series '{}' has {} values for {} bars (one value per bar, NaN where undefined)",
                                bars.symbol, name, values.size(), bars.size()));
  for (std::size_t t = 0; t < values.size(); ++t)
    if (std::isinf(values[t]))
      throw DataError(
          fmt::format("{}: series '{}' is infinite at row {} (give NaN where it is undefined)", bars.symbol, name, t));
  bars.series.push_back({std::move(name), std::vector<double>(values.begin(), values.end())});
  return bars;
}

std::string format_time(std::int64_t seconds, bool with_time) {
  std::int64_t days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400;
  const std::int64_t secs = seconds - days * 86400;
  days += 719468;
  const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(days - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2);
  if (!with_time) return fmt::format("{:04}-{:02}-{:02}", y, m, d);
  return fmt::format("{:04}-{:02}-{:02} {:02}:{:02}:{:02}", y, m, d, secs / 3600, (secs / 60) % 60, secs % 60);
}

namespace {

Bars parse_csv_text(std::string_view text, std::string_view source, const LoadOptions& options, bool engine_range) {
  constexpr std::string_view kByteOrderMark = "\xEF\xBB\xBF";  // Excel writes one before UTF-8 CSV
  if (text.substr(0, kByteOrderMark.size()) == kByteOrderMark) text.remove_prefix(kByteOrderMark.size());
  // Binary bytes (a spreadsheet, an archive) would otherwise be echoed back in the messages.
  const std::string_view head = text.substr(0, 65536);
  const auto binary = std::find_if(head.begin(), head.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 && c != '\n' && c != '\r' && c != '\t';
  });
  if (binary != head.end())
    throw DataError(
        fmt::format("{}: not a text CSV file (a control byte 0x{:02x} at byte {}); a gzip-compressed "
                    "CSV file is read as it is",
                    source, static_cast<unsigned char>(*binary), binary - head.begin()));
  return Parser(source, options, engine_range).run(text);
}

}  // namespace

Bars parse_csv(std::string_view text, std::string_view source, const LoadOptions& options) {
  return parse_csv_text(text, source, options, false);
}

namespace {

std::string gunzip(const std::string& bytes, const std::filesystem::path& path) {
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) throw DataError(fmt::format("{}: cannot start gzip", path.string()));
  std::string out;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  z.avail_in = static_cast<uInt>(bytes.size());
  int status = Z_OK;
  while (status == Z_OK) {
    out.resize(out.size() + std::max<std::size_t>(bytes.size() * 4, 1 << 16));
    const std::size_t before = z.total_out;
    z.next_out = reinterpret_cast<Bytef*>(out.data() + before);
    z.avail_out = static_cast<uInt>(out.size() - before);
    status = inflate(&z, Z_NO_FLUSH);
    if (status == Z_BUF_ERROR && z.avail_in > 0) status = Z_OK;  // the output was full: grow it
  }
  out.resize(z.total_out);
  inflateEnd(&z);
  if (status != Z_STREAM_END)
    throw DataError(fmt::format("{}: a damaged gzip file ({})", path.string(), z.msg ? z.msg : "truncated"));
  return out;
}

}  // namespace

Bars load_csv(const std::filesystem::path& path, const LoadOptions& options) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw DataError(fmt::format("{}: is a folder, not a CSV file (load_many reads every .csv in it)", path.string()));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(fmt::format("{}: cannot open the file ({})", path.string(), std::strerror(errno)));
  std::string text;
  in.seekg(0, std::ios::end);
  const auto size = in.tellg();
  if (size < 0) throw DataError(fmt::format("{}: cannot read the file", path.string()));
  text.resize(static_cast<std::size_t>(size));
  in.seekg(0);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (!in) throw DataError(fmt::format("{}: cannot read the file", path.string()));
  const bool gzipped =
      text.size() >= 2 && static_cast<unsigned char>(text[0]) == 0x1f && static_cast<unsigned char>(text[1]) == 0x8b;
  Bars bars = parse_csv_text(gzipped ? gunzip(text, path) : text, path.string(), options, true);
  bars.symbol = symbol_of(path);
  return bars;
}

std::string symbol_of(const std::filesystem::path& path) {
  std::filesystem::path name = path.filename();
  if (lower(name.extension().string()) == ".gz") name = name.stem();
  return name.stem().string();
}

std::vector<Bars> load_many(const std::vector<std::filesystem::path>& inputs, const LoadOptions& options) {
  std::vector<Bars> out;
  for (const auto& input : inputs) {
    if (std::filesystem::is_directory(input)) {
      std::vector<std::filesystem::path> files;
      for (const auto& entry : std::filesystem::directory_iterator(input))
        if (entry.is_regular_file() && (lower(entry.path().extension().string()) == ".csv" ||
                                        lower(entry.path().filename().string()).ends_with(".csv.gz")))
          files.push_back(entry.path());
      if (files.empty()) throw DataError(fmt::format("{}: the folder holds no .csv or .csv.gz file", input.string()));
      std::sort(files.begin(), files.end());
      for (const auto& f : files) out.push_back(load_csv(f, options));
    } else {
      out.push_back(load_csv(input, options));
    }
  }
  require_distinct_symbols(out);
  return out;
}

Bars bars_from_columns(std::string symbol, std::span<const std::int64_t> time, std::span<const double> open,
                       std::span<const double> high, std::span<const double> low, std::span<const double> close,
                       std::span<const double> volume, bool intraday, const LoadOptions& options) {
  const std::size_t n = time.size();
  if (open.size() != n || high.size() != n || low.size() != n || close.size() != n || volume.size() != n)
    throw DataError(
        fmt::format("{}: columns of different lengths (time {}, open {}, high {}, low {}, close {}, volume {})", symbol,
                    n, open.size(), high.size(), low.size(), close.size(), volume.size()));
  Bars bars;
  bars.symbol = symbol;
  RowChecker checker(symbol, options, true, true);
  for (std::size_t i = 0; i < n; ++i) {
    const std::string problem = checker.add(bars, i, time[i], intraday, open[i], high[i], low[i], close[i], volume[i]);
    if (!problem.empty()) checker.skip_or_fail(i, problem, bars);
  }
  checker.check_order(bars);
  if (bars.size() == 0)
    throw DataError(fmt::format("{}: no rows{}", symbol,
                                bars.skipped_rows ? fmt::format(" ({} bad rows skipped)", bars.skipped_rows) : ""));
  bars.intraday = intraday;
  return bars;
}

std::string append_bar(Bars& bars, std::string_view time, double open, double high, double low, double close,
                       double volume) {
  const auto date = parse_date(time);
  if (!date) return fmt::format("field 'time': '{}' is not a date (expected YYYY-MM-DD[ HH:MM[:SS]])", time);
  if (!bars.time.empty() && date->seconds <= bars.time.back())
    return fmt::format("field 'time': {} is not after the previous bar's {}", time,
                       format_time(bars.time.back(), bars.intraday || date->has_clock));
  static const LoadOptions options;
  RowChecker checker(bars.symbol, options, true, true);
  std::string problem = checker.add(bars, bars.size(), date->seconds, date->has_clock, open, high, low, close, volume);
  if (problem.empty()) bars.intraday = bars.intraday || date->has_clock;
  return problem;
}

std::string csv_field(std::string_view text) {
  if (text.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(text);
  std::string out = "\"";
  for (const char c : text) {
    out += c;
    if (c == '"') out += '"';
  }
  return out + "\"";
}

std::string csv_number(double value) {
  return std::isnan(value) ? std::string() : fmt::format("{}", value);
}

void require_distinct_symbols(std::span<const Bars> symbols) {
  for (std::size_t i = 0; i < symbols.size(); ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (symbols[i].symbol == symbols[j].symbol) {
        const auto named = [](const Bars& b) {
          return b.source.empty() ? std::string("data given in memory") : b.source;
        };
        throw ParamError(
            fmt::format("two inputs have the symbol name '{}' ({} and {}): results and trades are told apart "
                        "by name; give each symbol its own name (rename or copy one file)",
                        symbols[i].symbol, named(symbols[j]), named(symbols[i])));
      }
}

double infer_periods_per_year(const Bars& bars) {
  if (bars.size() < 2) return 252.0;
  if (bars.intraday) {
    // Bars per trading day, by calendar date: robust to overnight and weekend gaps.
    std::vector<int> per_day;
    std::int64_t day = bars.time[0] / 86400;
    int count = 0;
    for (std::int64_t t : bars.time) {
      if (t / 86400 != day) {
        per_day.push_back(count);
        day = t / 86400;
        count = 0;
      }
      ++count;
    }
    per_day.push_back(count);
    std::nth_element(per_day.begin(), per_day.begin() + per_day.size() / 2, per_day.end());
    return 252.0 * per_day[per_day.size() / 2];
  }
  std::vector<std::int64_t> gaps(bars.size() - 1);
  for (std::size_t i = 1; i < bars.size(); ++i) gaps[i - 1] = bars.time[i] - bars.time[i - 1];
  std::nth_element(gaps.begin(), gaps.begin() + gaps.size() / 2, gaps.end());
  const double days = static_cast<double>(gaps[gaps.size() / 2]) / 86400.0;
  if (days <= 4) return 252.0;
  if (days <= 10) return 52.0;
  if (days <= 40) return 12.0;
  return 1.0;
}

}  // namespace gt
