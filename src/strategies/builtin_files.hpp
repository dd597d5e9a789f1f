// The built-in strategies' files (strategies/*.yaml), their text compiled into the library at
// build time (src/CMakeLists.txt), so the registry needs no file at run time.
#pragma once

#include <span>
#include <string_view>

namespace gt {

struct BuiltinStrategyFile {
  std::string_view path;  // as shipped, e.g. "strategies/ma_cross.yaml"
  std::string_view text;
};
std::span<const BuiltinStrategyFile> builtin_strategy_files();

}  // namespace gt
