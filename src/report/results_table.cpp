// A study's results file as columns, and the numbers a report shows from it: the rows of a
// symbol, their ranking, the heatmap's cells. Plain functions, tested in tests/cpp/report_test.cpp.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>

#include "../data/csv_fields.hpp"
#include "gt/error.hpp"
#include "gt/report.hpp"

namespace gt::report {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::vector<std::string> split(std::string_view line) {
  std::vector<std::string> out;
  csv::for_each_field(line, [&](std::string_view field) {
    out.push_back(csv::unquote(field));
    return true;
  });
  return out;
}

// An empty field (a metric without a value) is NaN.
double number_of(const std::string& text, const std::filesystem::path& path, std::size_t line_number,
                 const std::string& column) {
  double v = kNaN;
  if (!text.empty() && !csv::parse_number(text, v))
    throw DataError(fmt::format("{}:{}: field '{}': '{}' is not a number", path.string(), line_number, column, text));
  return v;
}

}  // namespace

std::size_t column_of(const std::vector<std::string>& names, const std::string& name, std::string_view what) {
  const auto it = std::find(names.begin(), names.end(), name);
  if (it == names.end())
    throw ParamError(fmt::format("{} '{}' is not in the results; available: {}", what, name, fmt::join(names, ", ")));
  return static_cast<std::size_t>(it - names.begin());
}

Others parse_others(std::string_view name) {
  if (name == "best") return Others::kBest;
  if (name == "mean") return Others::kMean;
  if (name == "max") return Others::kMax;
  throw ParamError({"others"}, fmt::format("others '{}' is unknown; allowed: best, mean, max", name));
}

ResultsTable read_results(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw DataError(fmt::format("{}: cannot open the results file", path.string()));
  std::string line;
  if (!std::getline(in, line)) throw DataError(fmt::format("{}:1: the results file is empty", path.string()));
  const std::vector<std::string> header = split(line);
  const auto& metric_list = metric_names();
  ResultsTable r;
  const bool has_symbol = !header.empty() && header[0] == "symbol";
  std::vector<int> role(header.size());  // 0 symbol, 1 param, 2 metric
  for (std::size_t c = has_symbol ? 1 : 0; c < header.size(); ++c) {
    const bool metric = std::find(metric_list.begin(), metric_list.end(), header[c]) != metric_list.end();
    role[c] = metric ? 2 : 1;
    (metric ? r.metrics : r.params).push_back(header[c]);
  }
  if (r.metrics.empty() || r.params.empty())
    throw DataError(fmt::format("{}:1: not a study's results file (no parameter or metric columns)", path.string()));
  r.param_values.resize(r.params.size());
  r.metric_values.resize(r.metrics.size());
  r.boolean_params.assign(r.params.size(), false);
  std::size_t line_number = 1;
  while (std::getline(in, line)) {
    ++line_number;
    if (line.empty()) continue;
    const auto fields = split(line);
    if (fields.size() != header.size())
      throw DataError(
          fmt::format("{}:{}: {} fields, the header has {}", path.string(), line_number, fields.size(), header.size()));
    r.symbols.push_back(has_symbol ? fields[0] : std::string());
    std::size_t p = 0, m = 0;
    for (std::size_t c = has_symbol ? 1 : 0; c < fields.size(); ++c) {
      if (role[c] == 1) {
        const bool boolean = fields[c] == "true" || fields[c] == "false";
        r.boolean_params[p] = r.boolean_params[p] || boolean;
        r.param_values[p++].push_back(boolean ? (fields[c] == "true" ? 1.0 : 0.0)
                                              : number_of(fields[c], path, line_number, header[c]));
      } else {
        r.metric_values[m++].push_back(number_of(fields[c], path, line_number, header[c]));
      }
    }
  }
  if (r.rows() == 0) throw DataError(fmt::format("{}: the results file has no rows", path.string()));
  return r;
}

std::vector<std::size_t> rows_of_symbol(const ResultsTable& r, const std::string& symbol) {
  std::vector<std::size_t> rows;
  for (std::size_t i = 0; i < r.rows(); ++i)
    if (r.symbols[i] == symbol) rows.push_back(i);
  if (rows.empty()) throw ParamError(fmt::format("symbol '{}' is not in the results", symbol));
  return rows;
}

std::vector<std::size_t> ranked_rows(const ResultsTable& r, const std::vector<std::size_t>& rows, std::size_t metric) {
  // The ranking's one rule (compare_for_ranking); ruined rows are those whose final equity is 0,
  // and ties keep the file's order, which is grid order.
  const bool higher_better = metric_higher_is_better(r.metrics[metric]);
  const auto equity = std::find(r.metrics.begin(), r.metrics.end(), "final_equity");
  const auto ruined = [&](std::size_t row) {
    return equity != r.metrics.end() && r.metric_values[static_cast<std::size_t>(equity - r.metrics.begin())][row] <= 0;
  };
  std::vector<std::size_t> ranked = rows;
  std::stable_sort(ranked.begin(), ranked.end(), [&](std::size_t a, std::size_t b) {
    return compare_for_ranking(r.metric_values[metric][a], ruined(a), r.metric_values[metric][b], ruined(b),
                               higher_better) < 0;
  });
  return ranked;
}

std::vector<HeatmapCell> heatmap_cells(const ResultsTable& r, const std::vector<std::size_t>& rows, std::size_t px,
                                       std::size_t py, std::size_t metric, Others others, std::size_t best) {
  const bool higher_better = metric_higher_is_better(r.metrics[metric]);
  std::map<std::pair<double, double>, std::pair<double, std::size_t>> cells;  // value (or sum) and count
  for (const std::size_t i : rows) {
    if (others == Others::kBest) {
      bool on_slice = true;
      for (std::size_t p = 0; p < r.params.size(); ++p)
        if (p != px && p != py && r.param_values[p][i] != r.param_values[p][best]) on_slice = false;
      if (!on_slice) continue;
    }
    const double v = r.metric_values[metric][i];
    auto& [acc, count] = cells.try_emplace({r.param_values[px][i], r.param_values[py][i]}, kNaN, 0).first->second;
    if (std::isnan(v)) continue;
    if (others == Others::kMean)
      acc = count == 0 ? v : acc + v;
    else if (others == Others::kMax)
      acc = count == 0 || compare_for_ranking(v, false, acc, false, higher_better) < 0 ? v : acc;
    else
      acc = v;
    ++count;
  }
  std::vector<HeatmapCell> out;
  for (const auto& [xy, value] : cells)
    out.push_back(
        {xy.first, xy.second,
         others == Others::kMean && value.second > 0 ? value.first / static_cast<double>(value.second) : value.first});
  return out;
}

}  // namespace gt::report
