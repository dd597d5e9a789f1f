// Bars: loaded from files, or built from columns by the same validator files go through.
#include <nanobind/stl/filesystem.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <span>

#include "bindings.hpp"
#include "gt/data.hpp"

namespace gt_python {
using namespace nb::literals;

void bind_data(nb::module_& m) {
  // A column as a read-only NumPy view that keeps its Bars alive.
  const auto column = []<class T>(std::vector<T> gt::Bars::*member) {
    return [member](gt::Bars& b) {
      return nb::ndarray<nb::numpy, const T, nb::ndim<1>>((b.*member).data(), {b.size()}, nb::handle());
    };
  };
  nb::class_<gt::Bars>(m, "Bars", "One symbol's validated OHLCV bars; columns are NumPy views")
      .def_ro("symbol", &gt::Bars::symbol)
      .def_ro("source", &gt::Bars::source)
      .def_ro("intraday", &gt::Bars::intraday)
      .def_ro("skipped_rows", &gt::Bars::skipped_rows)
      .def_ro("skipped", &gt::Bars::skipped)
      .def("__len__", &gt::Bars::size)
      .def_prop_ro("time", column(&gt::Bars::time), nb::rv_policy::reference_internal,
                   "seconds since 1970-01-01, exchange clock")
      .def_prop_ro("open", column(&gt::Bars::open), nb::rv_policy::reference_internal)
      .def_prop_ro("high", column(&gt::Bars::high), nb::rv_policy::reference_internal)
      .def_prop_ro("low", column(&gt::Bars::low), nb::rv_policy::reference_internal)
      .def_prop_ro("close", column(&gt::Bars::close), nb::rv_policy::reference_internal)
      .def_prop_ro("volume", column(&gt::Bars::volume), nb::rv_policy::reference_internal)
      .def_prop_ro(
          "series",
          [](gt::Bars& b) {
            nb::dict out;
            for (const auto& s : b.series)
              out[s.name.c_str()] =
                  nb::ndarray<nb::numpy, const double, nb::ndim<1>>(s.values.data(), {b.size()}, nb::handle());
            return out;
          },
          nb::rv_policy::reference_internal, "the user's own series by name (read-only views)");

  m.def(
      "renamed",
      [](gt::Bars bars, const std::string& symbol) {
        bars.symbol = symbol;
        return bars;
      },
      "bars"_a, "symbol"_a);
  m.def(
      "require_distinct_symbols", [](const std::vector<gt::Bars>& symbols) { gt::require_distinct_symbols(symbols); },
      "symbols"_a);
  m.def(
      "load_csv",
      [](const std::string& path, bool skip_bad_rows) { return gt::load_csv(path, {.skip_bad_rows = skip_bad_rows}); },
      "path"_a, "skip_bad_rows"_a = false);
  m.def(
      "load_many",
      [](const std::vector<std::filesystem::path>& inputs, bool skip_bad_rows) {
        return gt::load_many(inputs, {.skip_bad_rows = skip_bad_rows});
      },
      "inputs"_a, "skip_bad_rows"_a = false);
  m.def(
      "bars_from_arrays",
      [](const std::string& symbol, InInt64 time, InDoubles open, InDoubles high, InDoubles low, InDoubles close,
         InDoubles volume, bool intraday, bool skip_bad_rows) {
        const auto span = [](const auto& a) { return std::span(a.data(), a.shape(0)); };
        return gt::bars_from_columns(symbol, span(time), span(open), span(high), span(low), span(close), span(volume),
                                     intraday, {.skip_bad_rows = skip_bad_rows});
      },
      "symbol"_a, "time"_a, "open"_a, "high"_a, "low"_a, "close"_a, "volume"_a, "intraday"_a = false,
      "skip_bad_rows"_a = false);
  m.def(
      "with_series",
      [](gt::Bars bars, const std::string& name, InDoubles values) {
        return gt::with_series(std::move(bars), name, std::span(values.data(), values.shape(0)));
      },
      "bars"_a, "name"_a, "values"_a);
  m.def("format_time", &gt::format_time, "seconds"_a, "with_time"_a);
  m.def("infer_periods_per_year", &gt::infer_periods_per_year, "bars"_a);
}

}  // namespace gt_python
