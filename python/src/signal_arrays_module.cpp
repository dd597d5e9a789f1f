// Backtests of the caller's signal arrays, read in place (NumPy boolean arrays of any layout).
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <optional>

#include "bindings.hpp"
#include "gt/signal_arrays.hpp"
#include "gt/study.hpp"
#include "owned_array.hpp"

namespace gt_python {
using namespace nb::literals;

namespace {

using InSignals = nb::ndarray<const bool, nb::ndim<2>, nb::device::cpu>;  // any strides: no copy

gt::SignalArray array_of(const std::optional<InSignals>& a) {
  if (!a) return {};
  return {reinterpret_cast<const std::uint8_t*>(a->data()), a->stride(0), a->shape(1) == 1 ? 0 : a->stride(1)};
}

gt::SignalColumns columns_of(const InSignals& entries, const InSignals& exits,
                             const std::optional<InSignals>& short_entries, const std::optional<InSignals>& short_exits,
                             std::size_t columns) {
  return {entries.shape(0),     columns, array_of(entries), array_of(exits), array_of(short_entries),
          array_of(short_exits)};
}

std::vector<gt::ExecutionOptions> options_of(const std::string& text) {
  std::vector<gt::ExecutionOptions> out;
  for (const auto& o : from_text(text)) out.push_back(gt::execution_options(o, true));
  return out;
}

}  // namespace

void bind_signal_arrays(nb::module_& m) {
  m.def(
      "signal_metrics",
      [](const gt::Bars& bars, InSignals entries, InSignals exits, std::optional<InSignals> short_entries,
         std::optional<InSignals> short_exits, std::size_t columns, const std::string& options) {
        const gt::SignalColumns signals = columns_of(entries, exits, short_entries, short_exits, columns);
        const std::vector<gt::ExecutionOptions> per_column = options_of(options);
        std::vector<gt::Metrics> metrics;
        {
          nb::gil_scoped_release release;
          metrics = gt::signal_metrics(bars, signals, per_column);
        }
        nb::dict out;  // one array per metric, in the metric table's order
        for (std::size_t i = 0; i < gt::kMetricCount; ++i) {
          std::vector<double> values(metrics.size());
          for (std::size_t k = 0; k < metrics.size(); ++k) values[k] = gt::metric_value(metrics[k], i);
          out[std::string(gt::metric_table()[i].name).c_str()] = owned_array(std::move(values));
        }
        return out;
      },
      "bars"_a, "entries"_a, "exits"_a, "short_entries"_a.none(), "short_exits"_a.none(), "columns"_a, "options"_a);
  m.def(
      "signal_backtest",
      [](const gt::Bars& bars, InSignals entries, InSignals exits, std::optional<InSignals> short_entries,
         std::optional<InSignals> short_exits, std::size_t columns, std::size_t column, const std::string& options) {
        const gt::SignalColumns signals = columns_of(entries, exits, short_entries, short_exits, columns);
        const gt::ExecutionOptions o = gt::execution_options(from_text(options), true);
        gt::BacktestResult r;
        {
          nb::gil_scoped_release release;
          r = gt::signal_backtest(bars, signals, column, o);
        }
        return backtest_dict(r);
      },
      "bars"_a, "entries"_a, "exits"_a, "short_entries"_a.none(), "short_exits"_a.none(), "columns"_a, "column"_a,
      "options"_a);
}

}  // namespace gt_python
