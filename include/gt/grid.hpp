// Parameter grids: which combinations an optimization evaluates, in which order.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "gt/strategy.hpp"

namespace gt {

inline constexpr std::uint64_t kMaxGridSize = std::uint64_t{1} << 40;

// The cartesian product of one value list per parameter. Axes follow the strategy's schema
// order and the first axis is the most significant, so combination indices sort by parameter
// order (the tie-break of docs/SEMANTICS.md "Ranking"). Parameters without an axis stay at their base value.
class Grid {
 public:
  struct Axis {
    std::size_t param;           // index in the schema
    std::vector<double> values;  // in the order given (ranges ascend)
    // Given as a range (a:b or a:b:step): ordered values, which the non-grid searches treat as
    // bounds with a step; a list is a set of categories (docs/SEMANTICS.md "Search").
    bool range = false;
  };

  Grid(const Strategy& strategy, std::vector<Axis> axes, ParamValues base);

  const Strategy& strategy() const { return *strategy_; }
  const std::vector<Axis>& axes() const { return axes_; }
  std::uint64_t size() const { return size_; }
  // Writes combination `index` into `out` (one value per schema parameter).
  void decode(std::uint64_t index, std::span<double> out) const;
  // Range checks only (types and ranges were checked when the grid was built); the strategy's
  // cross-parameter constraint decides validity.
  bool is_valid(std::span<const double> values) const;
  const ParamValues& base() const { return base_; }
  // Whether some combination has an exit parameter set (docs/SEMANTICS.md "Exits by price and time").
  bool has_exits() const;

 private:
  const Strategy* strategy_;
  std::vector<Axis> axes_;
  ParamValues base_;
  std::uint64_t size_ = 1;
};

// Builds a grid from `--grid NAME=SPEC` items and/or a YAML file, over `fixed` NAME=VALUE
// assignments and the schema's defaults. SPEC: a:b (inclusive), a:b:step, or v1,v2,...
// Throws ParamError before any work: unknown parameter, empty range, step 0, wrong type, a
// value outside the schema's range, a parameter given twice, a grid larger than 2^40.
Grid parse_grid(const Strategy& strategy, const std::vector<std::string>& specs,
                const std::optional<std::filesystem::path>& yaml_file,
                const std::vector<std::pair<std::string, std::string>>& fixed);

}  // namespace gt
