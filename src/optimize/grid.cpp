#include "gt/grid.hpp"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>

#include "gt/error.hpp"

namespace gt {

Grid::Grid(const Strategy& strategy, std::vector<Axis> axes, ParamValues base)
    : strategy_(&strategy), axes_(std::move(axes)), base_(std::move(base)) {
  std::sort(axes_.begin(), axes_.end(), [](const Axis& a, const Axis& b) { return a.param < b.param; });
  for (const Axis& axis : axes_) {
    if (axis.values.empty()) throw ParamError(fmt::format("grid for '{}' is empty", strategy.params[axis.param].name));
    if (size_ > kMaxGridSize / axis.values.size())
      throw ParamError(
          fmt::format("the grid has more than 2^40 combinations (limit {}); split the study", kMaxGridSize));
    size_ *= axis.values.size();
  }
}

void Grid::decode(std::uint64_t index, std::span<double> out) const {
  std::copy(base_.begin(), base_.end(), out.begin());
  for (std::size_t i = axes_.size(); i-- > 0;) {
    const auto& axis = axes_[i];
    const std::uint64_t n = axis.values.size();
    out[axis.param] = axis.values[index % n];
    index /= n;
  }
}

bool Grid::has_exits() const {
  for (std::size_t p = strategy_->signal_param_count(); p < base_.size(); ++p) {
    if (base_[p] != 0) return true;
    for (const Axis& axis : axes_)
      if (axis.param == p && std::any_of(axis.values.begin(), axis.values.end(), [](double v) { return v != 0; }))
        return true;
  }
  return false;
}

bool Grid::is_valid(std::span<const double> values) const {
  return !strategy_->constraint.holds || strategy_->constraint.holds(values);
}

namespace {

std::vector<double> expand_spec(const ParamSpec& spec, const std::string& text) {
  const auto fail = [&](const std::string& why) -> ParamError {
    return ParamError({"grid"}, fmt::format("grid {}={}: {}", spec.name, text, why));
  };
  std::vector<double> values;
  if (text.find(':') != std::string::npos) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    for (;;) {
      const auto colon = text.find(':', start);
      parts.push_back(text.substr(start, colon == std::string::npos ? std::string::npos : colon - start));
      if (colon == std::string::npos) break;
      start = colon + 1;
    }
    if (parts.size() > 3) throw fail("a range is a:b or a:b:step");
    if (spec.type == ParamType::kBool) throw fail("a bool takes a list (true,false), not a range");
    const double lo = parse_param_value(spec, parts[0]);
    const double hi = parse_param_value(spec, parts[1]);
    const double step = parts.size() == 3 ? parse_param_value(spec, parts[2]) : 1.0;
    // The first value of the range that the schema refuses, named before the range is expanded
    // (a bound of 1e20 would otherwise overflow the count).
    double first_out = std::nan("");
    if (lo < spec.min || lo > spec.max)
      first_out = lo;
    else if (hi > spec.max && step > 0)
      first_out = lo + (std::floor((spec.max - lo) / step) + 1) * step;
    if (!std::isnan(first_out))
      throw fail(fmt::format("{} is out of range (allowed: {} to {})", format_param_value(spec, first_out),
                             format_param_value(spec, spec.min), format_param_value(spec, spec.max)));
    if (step <= 0) throw fail(fmt::format("step must be > 0 (got {})", parts.size() == 3 ? parts[2] : "1"));
    if (hi < lo) throw fail(fmt::format("empty range: {} is above {}", parts[0], parts[1]));
    const double count = std::floor((hi - lo) / step + 1e-9) + 1;
    if (count > static_cast<double>(kMaxGridSize)) throw fail("the range has more than 2^40 values");
    for (std::uint64_t i = 0; i < static_cast<std::uint64_t>(count); ++i)
      values.push_back(lo + static_cast<double>(i) * step);
  } else {
    std::size_t start = 0;
    for (;;) {
      const auto comma = text.find(',', start);
      const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      if (item.empty()) throw fail("empty value in the list");
      values.push_back(parse_param_value(spec, item));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  for (double v : values) {
    if (is_exit_param(spec.name)) {
      try {
        check_exit_param(spec.name, v);
      } catch (const ParamError& e) {
        throw fail(e.what());
      }
    }
    if (v < spec.min || v > spec.max)
      throw fail(fmt::format("{} is out of range (allowed: {} to {})", format_param_value(spec, v),
                             format_param_value(spec, spec.min), format_param_value(spec, spec.max)));
  }
  return values;
}

std::string yaml_spec(const YAML::Node& node, const std::string& name, const std::filesystem::path& file) {
  if (node.IsScalar()) return node.as<std::string>();
  if (node.IsSequence()) {
    std::string joined;
    for (const auto& item : node) {
      if (!item.IsScalar()) break;
      if (!joined.empty()) joined += ',';
      joined += item.as<std::string>();
    }
    if (!joined.empty()) return joined;
  }
  throw ParamError(fmt::format("{}:{}: grid entry '{}' must be \"a:b\", \"a:b:step\" or a list of values",
                               file.string(), node.Mark().line + 1, name));
}

// Risk sizing reads the stop's distance: a grid where some combination has risk without a stop is
// refused before any work rather than left with combinations that cannot run.
void require_risk_with_stop(const Strategy& strategy, const std::vector<Grid::Axis>& axes, const ParamValues& base) {
  const auto values_of = [&](std::string_view name) {
    const std::size_t i = strategy.index_of(name);
    for (const auto& a : axes)
      if (a.param == i) return a.values;
    return std::vector<double>{base[i]};
  };
  const std::vector<double> risk = values_of("risk"), stop = values_of("stop_loss");
  const double most_risk = *std::max_element(risk.begin(), risk.end());
  const double least_stop = *std::min_element(stop.begin(), stop.end());
  if (most_risk > 0 && least_stop <= 0)
    throw ParamError(
        fmt::format("risk = {} needs a stop_loss in every combination, but the grid has stop_loss = 0: "
                    "risk sizing buys the units whose stop would lose that fraction of equity (give "
                    "stop_loss values above 0, or risk = 0)",
                    most_risk));
}

}  // namespace

Grid parse_grid(const Strategy& strategy, const std::vector<std::string>& specs,
                const std::optional<std::filesystem::path>& yaml_file,
                const std::vector<std::pair<std::string, std::string>>& fixed) {
  // Its signals come from a model file, which no cache key or grid parameter describes.
  if (!strategy.model_parameter.empty())
    throw ParamError(
        fmt::format("the {} strategy cannot be optimized over a grid; backtest it with its model file "
                    "and a threshold",
                    strategy.name));
  std::vector<std::pair<std::string, std::string>> items;
  for (const auto& s : specs) {
    const auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0) throw ParamError({"grid"}, fmt::format("grid '{}' is not NAME=SPEC", s));
    items.emplace_back(s.substr(0, eq), s.substr(eq + 1));
  }
  if (yaml_file) {
    YAML::Node root;
    try {
      root = YAML::LoadFile(yaml_file->string());
    } catch (const YAML::Exception& e) {
      throw ParamError(fmt::format("{}: {}", yaml_file->string(), e.what()));
    }
    const std::string file = yaml_file->string();
    if (root.IsNull())
      throw ParamError(fmt::format("{}: the grid file is empty (expected grid: {{NAME: SPEC}})", file));
    if (!root.IsMap())
      throw ParamError(fmt::format("{}: expected a map of parameter: spec (optionally under 'grid:')", file));
    // yaml-cpp keeps both of two equal keys and looks up the first: a repeated key would be lost.
    std::vector<std::string> seen;
    const auto check_unique = [&](const YAML::Node& map) {
      seen.clear();
      for (const auto& entry : map) {
        const auto name = entry.first.as<std::string>();
        if (std::find(seen.begin(), seen.end(), name) != seen.end())
          throw ParamError(fmt::format("{}:{}: key '{}' appears twice", file, entry.first.Mark().line + 1, name));
        seen.push_back(name);
      }
    };
    check_unique(root);
    const bool nested = static_cast<bool>(root["grid"]);
    if (nested) {
      for (const auto& entry : root) {
        const auto key = entry.first.as<std::string>();
        if (key != "grid" && key != "strategy")
          throw ParamError(fmt::format("{}:{}: unknown key '{}' (allowed at the top: grid, strategy)", file,
                                       entry.first.Mark().line + 1, key));
      }
    }
    if (const YAML::Node named = root["strategy"];
        named && named.IsScalar() && named.as<std::string>() != strategy.name)
      throw ParamError(fmt::format("{}: the file is a grid of strategy '{}', not '{}'", file, named.as<std::string>(),
                                   strategy.name));
    const YAML::Node grid = nested ? root["grid"] : root;
    if (!grid.IsMap())
      throw ParamError(fmt::format("{}: expected a map of parameter: spec (optionally under 'grid:')", file));
    check_unique(grid);
    for (const auto& entry : grid) {
      const auto name = entry.first.as<std::string>();
      if (name == "strategy") continue;
      items.emplace_back(name, yaml_spec(entry.second, name, *yaml_file));
    }
    if (items.empty()) throw ParamError(fmt::format("{}: the grid names no parameter", file));
  }
  ParamValues base = strategy.defaults();
  for (const auto& [name, text] : fixed) {
    const std::size_t i = strategy.index_of(name);
    base[i] = parse_param_value(strategy.params[i], text);
  }
  std::vector<Grid::Axis> axes;
  for (const auto& [name, text] : items) {
    const std::size_t i = strategy.index_of(name);
    for (const auto& a : axes)
      if (a.param == i) throw ParamError({"grid"}, fmt::format("grid: parameter '{}' is given twice", name));
    for (const auto& [fixed_name, unused] : fixed)
      if (fixed_name == name)
        throw ParamError({"fixed"}, fmt::format("parameter '{}' is both fixed and in the grid", name));
    axes.push_back({i, expand_spec(strategy.params[i], text), text.find(':') != std::string::npos});
  }
  require_risk_with_stop(strategy, axes, base);
  return Grid(strategy, std::move(axes), std::move(base));
}

}  // namespace gt
