// What every CSV reader here shares (the bars in csv.cpp, the optimizer's results in
// src/report/report.cpp): the field loop and the number parser.
#pragma once

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

namespace gt::csv {

// Calls visit(field) for each comma-separated field of `line`, in order (an empty line has one
// empty field), until visit returns false. A field in double quotes (RFC 4180) may hold commas; it
// is passed as written, quotes included (unquote() gives its text).
template <class Visit>
void for_each_field(std::string_view line, Visit&& visit) {
  for (std::size_t start = 0;;) {
    std::size_t from = start;
    if (start < line.size() && line[start] == '"') {  // to the closing quote ("" is a quote inside)
      std::size_t i = start + 1;
      while (i < line.size()) {
        if (line[i] == '"' && (i + 1 >= line.size() || line[i + 1] != '"')) break;
        i += line[i] == '"' ? 2 : 1;
      }
      from = i;
    }
    const std::size_t comma = line.find(',', std::min(from, line.size()));
    if (!visit(line.substr(start, comma == std::string_view::npos ? line.npos : comma - start))) return;
    if (comma == std::string_view::npos) return;
    start = comma + 1;
  }
}

// A field's text: the quotes of a quoted field removed and its doubled quotes made single.
inline std::string unquote(std::string_view field) {
  if (field.size() < 2 || field.front() != '"' || field.back() != '"') return std::string(field);
  std::string out;
  for (std::size_t i = 1; i + 1 < field.size(); ++i) {
    out += field[i];
    if (field[i] == '"' && field[i + 1] == '"') ++i;
  }
  return out;
}

// Decimal text to double. Prices and volumes are short decimals ("2.179012", "36301200"): when
// the digits fit in 53 bits and there are at most 22 decimals, digits / 10^decimals is a single
// correctly rounded division of two exact doubles (Clinger's fast path), the same double that
// from_chars gives. Anything else goes to from_chars.
inline bool parse_number(std::string_view s, double& out) {
  static constexpr double kPow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                      1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
  std::size_t i = 0;
  const bool negative = !s.empty() && s[0] == '-';
  if (negative) ++i;
  std::uint64_t digits = 0;
  int count = 0, decimals = 0;
  bool dot = false;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (c >= '0' && c <= '9') {
      if (++count > 19) break;
      digits = digits * 10 + static_cast<std::uint64_t>(c - '0');
      decimals += dot;
    } else if (c == '.' && !dot) {
      dot = true;
    } else {
      break;
    }
  }
  if (i == s.size() && count > 0 && digits < (std::uint64_t{1} << 53) && decimals <= 22) {
    const double v = static_cast<double>(digits) / kPow10[decimals];
    out = negative ? -v : v;
    return true;
  }
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size() && !s.empty();
}

}  // namespace gt::csv
