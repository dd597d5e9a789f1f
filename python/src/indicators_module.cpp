// TA-Lib-exact indicators over one symbol's bars.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <optional>

#include "bindings.hpp"
#include "gt/data.hpp"
#include "gt/indicators.hpp"
#include "owned_array.hpp"

namespace gt_python {
using namespace nb::literals;

void bind_indicators(nb::module_& m) {
  m.def(
      "indicator",
      [](const std::string& name, const gt::Bars& bars, std::optional<int> period, std::optional<int> fast,
         std::optional<int> slow, std::optional<int> signal, std::optional<double> nbdev, std::optional<int> fastk,
         std::optional<int> slowk, std::optional<int> slowd) {
        const gt::ind::IndicatorArgs args{period, fast, slow, signal, fastk, slowk, slowd, nbdev};
        std::vector<gt::ind::NamedSeries> outputs;
        {
          nb::gil_scoped_release release;
          outputs = gt::ind::compute(name, bars, args);
        }
        nb::dict d;
        for (auto& o : outputs) d[o.name.c_str()] = owned_array(std::move(o.values));
        return d;
      },
      "name"_a, "bars"_a, "period"_a = nb::none(), "fast"_a = nb::none(), "slow"_a = nb::none(),
      "signal"_a = nb::none(), "nbdev"_a = nb::none(), "fastk"_a = nb::none(), "slowk"_a = nb::none(),
      "slowd"_a = nb::none());
  m.def(
      "moving_average",
      [](InDoubles values, int ma_type, int period) {
        return owned_array(
            gt::ind::ma(static_cast<gt::ind::MaType>(ma_type), std::span(values.data(), values.shape(0)), period));
      },
      "values"_a, "ma_type"_a, "period"_a);
}

}  // namespace gt_python
