// The result cache's location, and atomic writes of the files a study produces.
#include <nanobind/stl/string.h>

#include "bindings.hpp"
#include "gt/atomic_file.hpp"
#include "gt/cache.hpp"

namespace gt_python {
using namespace nb::literals;

void bind_cache(nb::module_& m) {
  m.def("default_cache_dir", [] { return gt::default_cache_dir().string(); });
  m.def(
      "write_file_atomically",
      [](const std::string& path, const std::string& text) { gt::write_file_atomically(path, text); }, "path"_a,
      "text"_a);
}

}  // namespace gt_python
