// gpt_trader._core: the C++ engine for Python. Arrays go out as NumPy views of the engine's own
// memory where they can (a Bars object's columns), and heavy calls release the GIL.
#include <fmt/format.h>
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/vector.h>
#include <tbb/global_control.h>

#include <cmath>
#include <optional>

#include "gt/atomic_file.hpp"
#include "gt/backtest.hpp"
#include "gt/cache.hpp"
#include "gt/data.hpp"
#include "gt/error.hpp"
#include "gt/gpu.hpp"
#include "gt/grid.hpp"
#include "gt/indicators.hpp"
#include "gt/ml.hpp"
#include "gt/optimize.hpp"
#include "gt/strategy.hpp"
#include "owned_array.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

using gt_python::owned_array;
using InDoubles = nb::ndarray<const double, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using InInt64 = nb::ndarray<const std::int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

gt::ExecutionOptions execution_options(const nb::dict& d) {
  gt::ExecutionOptions o;
  for (auto [key, value] : d) {
    const std::string k = nb::cast<std::string>(key);
    if (k == "fill") {
      const std::string fill = nb::cast<std::string>(value);
      if (fill != "next_open" && fill != "close")
        throw gt::ParamError(fmt::format("fill = '{}' (allowed: next_open, close)", fill));
      o.fill = fill == "close" ? gt::Fill::kClose : gt::Fill::kNextOpen;
    } else if (k == "allow_short") {
      o.allow_short = nb::cast<bool>(value);
    } else if (k == "commission") {
      o.commission = nb::cast<double>(value);
    } else if (k == "slippage_bps") {
      o.slippage_bps = nb::cast<double>(value);
    } else if (k == "size") {
      o.size = nb::cast<double>(value);
    } else if (k == "cash") {
      o.cash = nb::cast<double>(value);
    } else if (k == "periods_per_year") {
      if (!value.is_none()) o.periods_per_year = nb::cast<double>(value);
    } else {
      throw gt::ParamError(
          fmt::format("unknown execution option '{}' (allowed: fill, allow_short, commission, "
                      "slippage_bps, size, cash, periods_per_year)",
                      k));
    }
  }
  o.validate();
  return o;
}

std::string value_text(nb::handle v) {
  if (nb::isinstance<bool>(v)) return nb::cast<bool>(v) ? "true" : "false";
  if (nb::isinstance<int>(v)) return std::to_string(nb::cast<long long>(v));
  if (nb::isinstance<float>(v)) return fmt::format("{}", nb::cast<double>(v));
  return nb::cast<std::string>(nb::str(v));
}

std::vector<std::pair<std::string, std::string>> assignments(const nb::dict& d) {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto [k, v] : d) out.emplace_back(nb::cast<std::string>(k), value_text(v));
  return out;
}

nb::dict metrics_dict(const gt::Metrics& m) {
  nb::dict d;
  const auto& names = gt::metric_names();
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (names[i] == "trades")
      d[names[i].c_str()] = m.trades;
    else
      d[names[i].c_str()] = gt::metric_value(m, i);
  }
  return d;
}

nb::dict params_dict(const gt::Strategy& s, std::span<const double> values) {
  nb::dict d;
  for (std::size_t i = 0; i < s.params.size(); ++i) {
    const auto& p = s.params[i];
    if (p.type == gt::ParamType::kBool)
      d[p.name.c_str()] = values[i] != 0;
    else if (p.type == gt::ParamType::kInt)
      d[p.name.c_str()] = static_cast<long long>(values[i]);
    else
      d[p.name.c_str()] = values[i];
  }
  return d;
}

gt::Grid make_grid(const std::string& strategy, const std::vector<std::string>& grid, const nb::dict& fixed) {
  return gt::parse_grid(gt::find_strategy(strategy), grid, std::nullopt, assignments(fixed));
}

}  // namespace

void bind_ml(nb::module_& m);  // ml_module.cpp

NB_MODULE(_core, m) {
  m.doc() = "GPT-Trader's C++ engine";
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const gt::ParamError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const gt::DataError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

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
      .def_prop_ro("volume", column(&gt::Bars::volume), nb::rv_policy::reference_internal);

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
      [](const std::string& path, bool skip_bad_rows) {
        gt::LoadOptions o;
        o.skip_bad_rows = skip_bad_rows;
        return gt::load_csv(path, o);
      },
      "path"_a, "skip_bad_rows"_a = false);

  m.def(
      "bars_from_arrays",
      [](const std::string& symbol, InInt64 time, InDoubles open, InDoubles high, InDoubles low, InDoubles close,
         InDoubles volume, bool intraday, bool skip_bad_rows) {
        const auto span = [](const auto& a) { return std::span(a.data(), a.shape(0)); };
        gt::LoadOptions options;
        options.skip_bad_rows = skip_bad_rows;
        return gt::bars_from_columns(symbol, span(time), span(open), span(high), span(low), span(close), span(volume),
                                     intraday, options);
      },
      "symbol"_a, "time"_a, "open"_a, "high"_a, "low"_a, "close"_a, "volume"_a, "intraday"_a = false,
      "skip_bad_rows"_a = false);

  m.def(
      "parse_csv",
      [](nb::bytes text, const std::string& source) {
        return gt::parse_csv(std::string_view(text.c_str(), text.size()), source);
      },
      "text"_a, "source"_a);

  m.def(
      "bars_to_csv",
      [](const gt::Bars& b) {
        // Canonical text that parse_csv reads back to the same bits (shortest round-trip numbers).
        std::string csv = "Date,Open,High,Low,Close,Volume\n";
        csv.reserve(b.size() * 80);
        for (std::size_t i = 0; i < b.size(); ++i)
          fmt::format_to(std::back_inserter(csv), "{},{},{},{},{},{}\n", gt::format_time(b.time[i], b.intraday),
                         b.open[i], b.high[i], b.low[i], b.close[i], b.volume[i]);
        return nb::bytes(csv.data(), csv.size());
      },
      "bars"_a);

  m.def("format_time", &gt::format_time, "seconds"_a, "with_time"_a);
  m.def("infer_periods_per_year", &gt::infer_periods_per_year, "bars"_a);

  m.def(
      "indicator",
      [](const std::string& name, const gt::Bars& bars, std::optional<int> period, std::optional<int> fast,
         std::optional<int> slow, std::optional<int> signal, std::optional<double> nbdev, std::optional<int> fastk,
         std::optional<int> slowk, std::optional<int> slowd) {
        gt::ind::IndicatorArgs a{period, fast, slow, signal, fastk, slowk, slowd, nbdev};
        std::vector<gt::ind::NamedSeries> outputs;
        {
          nb::gil_scoped_release release;
          outputs = gt::ind::compute(name, bars, a);
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
        std::span<const double> in(values.data(), values.shape(0));
        return owned_array(gt::ind::ma(static_cast<gt::ind::MaType>(ma_type), in, period));
      },
      "values"_a, "ma_type"_a, "period"_a);

  m.def("metric_names", &gt::metric_names);

  m.def("strategies", [] {
    nb::list out;
    for (const auto& s : gt::strategies()) {
      nb::list params;
      for (const auto& p : s.params) {
        nb::dict d;
        d["name"] = p.name;
        d["type"] = std::string(gt::param_type_name(p.type));
        d["min"] = p.min;
        d["max"] = p.max;
        d["default"] = p.default_value;
        d["help"] = p.help;
        params.append(d);
      }
      nb::dict d;
      d["name"] = s.name;
      d["description"] = s.description;
      d["version"] = s.code_version;
      d["params"] = params;
      out.append(d);
    }
    return out;
  });

  m.def(
      "backtest",
      [](const gt::Bars& bars, const std::string& strategy, const nb::dict& params, const nb::dict& options) {
        auto given = assignments(params);
        const gt::Strategy s = gt::ml::resolve_strategy(strategy, given);
        const gt::ParamValues values = gt::parse_params(s, given);
        const gt::ExecutionOptions o = execution_options(options);
        s.require_enough_bars(bars, values);
        gt::BacktestResult r;
        {
          nb::gil_scoped_release release;
          std::vector<std::uint8_t> signals(bars.size());
          gt::SeriesCache cache;
          s.signals(bars, values, signals, cache);
          r = gt::run_backtest(bars, signals, o);
        }
        nb::dict trades;
        std::vector<double> entry_bar, exit_bar, side, entry_price, exit_price, units, pnl, ret, bars_held, open;
        for (const auto& t : r.trades) {
          entry_bar.push_back(static_cast<double>(t.entry_bar));
          exit_bar.push_back(t.open ? std::nan("") : static_cast<double>(t.exit_bar));
          side.push_back(t.side);
          entry_price.push_back(t.entry_price);
          exit_price.push_back(t.open ? std::nan("") : t.exit_price);
          units.push_back(t.units);
          pnl.push_back(t.open ? std::nan("") : t.pnl);
          ret.push_back(t.open ? std::nan("") : t.ret);
          bars_held.push_back(static_cast<double>(t.bars_held));
          open.push_back(t.open);
        }
        trades["entry_bar"] = owned_array(entry_bar);
        trades["exit_bar"] = owned_array(exit_bar);
        trades["side"] = owned_array(side);
        trades["entry_price"] = owned_array(entry_price);
        trades["exit_price"] = owned_array(exit_price);
        trades["units"] = owned_array(units);
        trades["pnl"] = owned_array(pnl);
        trades["return"] = owned_array(ret);
        trades["bars_held"] = owned_array(bars_held);
        trades["open"] = owned_array(open);
        nb::dict out;
        out["metrics"] = metrics_dict(r.metrics);
        out["parameters"] = params_dict(s, values);
        out["trades"] = trades;
        out["equity"] = owned_array(std::move(r.equity));
        out["position"] = owned_array(std::move(r.position));
        return out;
      },
      "bars"_a, "strategy"_a, "params"_a, "options"_a);

  m.def(
      "cuda_available", [] { return gt::cuda_available(); },
      "True when this build has the CUDA engine and a GPU is visible.");
  m.def("cuda_devices", &gt::cuda_devices, "The visible GPUs, or why there are none.");

  m.def(
      "grid_size",
      [](const std::string& strategy, const std::vector<std::string>& grid, const nb::dict& fixed) {
        return make_grid(strategy, grid, fixed).size();
      },
      "strategy"_a, "grid"_a, "fixed"_a);

  m.def(
      "optimize",
      [](const std::vector<gt::Bars>& symbols, const std::string& strategy, const std::vector<std::string>& grid_specs,
         const nb::dict& fixed, const nb::dict& options, const std::string& metric, std::size_t top,
         std::int64_t min_trades, int threads, std::optional<std::string> out_path, bool reference,
         std::optional<std::string> cache_location, const std::string& device, const std::string& gpus, bool force) {
        const gt::Grid grid = make_grid(strategy, grid_specs, fixed);
        const bool disk_store = cache_location && cache_location->rfind("redis://", 0) != 0;
        if (!force)
          gt::require_study_fits(
              gt::estimate_study(symbols, grid, execution_options(options), threads, out_path.has_value(), disk_store),
              out_path.value_or(""), disk_store ? *cache_location : std::string());
        std::unique_ptr<gt::ResultCache> cache;
        if (cache_location) cache = gt::open_result_cache(*cache_location);
        const gt::ExecutionOptions o = execution_options(options);
        gt::OptimizeOptions opt;
        opt.metric = metric;
        opt.top = top;
        opt.min_trades = min_trades;
        opt.threads = threads;
        opt.reference = reference;
        opt.cache = cache.get();
        opt.device = device;
        if (device != "cpu" && gt::cuda_available()) opt.gpus = gt::parse_gpus(gpus);
        gt::OptimizeResult r;
        {
          nb::gil_scoped_release release;
          std::unique_ptr<gt::AtomicFile> file;
          std::unique_ptr<gt::CsvResultSink> sink;
          if (out_path) {
            file = std::make_unique<gt::AtomicFile>(*out_path);
            sink = std::make_unique<gt::CsvResultSink>(grid, gt::symbol_names(symbols),
                                                       [&](std::string_view t) { file->write(t); });
            file->write(sink->header());
          }
          r = gt::optimize(symbols, grid, o, opt, sink.get());
          if (file) file->commit();
        }
        nb::dict out;
        out["combinations"] = r.combinations;
        out["valid"] = r.valid;
        out["invalid"] = r.invalid;
        out["computed"] = r.computed;
        out["from_cache"] = r.from_cache;
        out["seconds"] = r.seconds;
        out["bar_combinations"] = r.bar_combinations;
        out["engine"] = r.evaluator;
        out["device"] = r.device;
        nb::list top_list;
        for (const auto& per_symbol : r.top)
          for (const auto& c : per_symbol) {
            nb::dict d;
            d["symbol"] = symbols[c.symbol].symbol;
            d["index"] = c.index;
            d["parameters"] = params_dict(grid.strategy(), c.params);
            d["metrics"] = metrics_dict(c.metrics);
            top_list.append(d);
          }
        out["top"] = top_list;
        return out;
      },
      "symbols"_a, "strategy"_a, "grid"_a, "fixed"_a, "options"_a, "metric"_a = "sharpe", "top"_a = 10,
      "min_trades"_a = 0, "threads"_a = 0, "out"_a = nb::none(), "reference"_a = false, "cache"_a = nb::none(),
      "device"_a = "cpu", "gpus"_a = "all", "force"_a = false);

  // An evaluator built once (indicator series, tables) for many ranges of one grid on one symbol.
  struct RangeEvaluator {
    gt::Bars bars;
    gt::Grid grid;
    std::unique_ptr<gt::Evaluator> evaluator;
    std::unique_ptr<gt::ResultCache> cache;  // optional: shared by every worker when on Redis
    std::string cache_ns;
  };
  auto chunk_arrays = [](gt::ChunkResults&& r) {
    const auto& names = gt::metric_names();
    std::vector<double> metrics(r.valid.size() * names.size(), std::nan(""));
    for (std::size_t i = 0; i < r.valid.size(); ++i)
      if (r.valid[i])
        for (std::size_t k = 0; k < names.size(); ++k)
          metrics[i * names.size() + k] = gt::metric_value(r.metrics[i], k);
    std::vector<double> valid(r.valid.begin(), r.valid.end());
    return nb::make_tuple(owned_array(std::move(valid)),
                          owned_array<double, 2>(std::move(r.params), {r.valid.size(), r.stride}),
                          owned_array<double, 2>(std::move(metrics), {r.valid.size(), names.size()}), r.from_cache);
  };
  nb::class_<RangeEvaluator>(m, "RangeEvaluator")
      .def(
          "__init__",
          [](RangeEvaluator* self, const gt::Bars& bars, const std::string& strategy,
             const std::vector<std::string>& grid_specs, const nb::dict& fixed, const nb::dict& options, int threads,
             std::optional<std::string> cache) {
            gt::Grid grid = make_grid(strategy, grid_specs, fixed);
            const gt::ExecutionOptions o = execution_options(options);
            new (self) RangeEvaluator{bars, std::move(grid), nullptr, nullptr, {}};
            if (cache) {
              self->cache = gt::open_result_cache(*cache);
              self->cache_ns = gt::cache_namespace(self->bars, self->grid.strategy(), o);
            }
            nb::gil_scoped_release release;
            // A worker given one CPU builds with one thread, so that workers do not oversubscribe.
            std::optional<tbb::global_control> limit;
            if (threads > 0)
              limit.emplace(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(threads));
            self->evaluator = gt::make_evaluator(self->bars, self->grid, o);
          },
          "bars"_a, "strategy"_a, "grid"_a, "fixed"_a, "options"_a, "threads"_a = 0, "cache"_a = nb::none())
      .def(
          "evaluate_range",
          [chunk_arrays](const RangeEvaluator& self, std::uint64_t first, std::uint64_t count) {
            gt::ChunkResults r;
            {
              nb::gil_scoped_release release;
              r = gt::evaluate_range(*self.evaluator, self.grid, first, count, self.cache.get(), self.cache_ns);
            }
            return chunk_arrays(std::move(r));
          },
          "first"_a, "count"_a);

  m.def("default_cache_dir", [] { return gt::default_cache_dir().string(); });

  m.def(
      "evaluate_range",
      [chunk_arrays](const gt::Bars& bars, const std::string& strategy, const std::vector<std::string>& grid_specs,
                     const nb::dict& fixed, const nb::dict& options, std::uint64_t first, std::uint64_t count) {
        const gt::Grid grid = make_grid(strategy, grid_specs, fixed);
        const gt::ExecutionOptions o = execution_options(options);
        gt::ChunkResults r;
        {
          nb::gil_scoped_release release;
          r = gt::evaluate_range(bars, grid, o, first, count);
        }
        return chunk_arrays(std::move(r));
      },
      "bars"_a, "strategy"_a, "grid"_a, "fixed"_a, "options"_a, "first"_a, "count"_a);

  m.def(
      "format_results",
      [](const std::string& strategy, const std::vector<std::string>& grid_specs, const nb::dict& fixed,
         const std::vector<std::string>& symbols, std::size_t symbol, std::uint64_t first, InDoubles valid,
         nb::ndarray<const double, nb::ndim<2>, nb::c_contig> params,
         nb::ndarray<const double, nb::ndim<2>, nb::c_contig> metrics, bool header) {
        // The CSV text of one evaluated range, exactly as `gtrader optimize --out` writes it.
        const gt::Grid grid = make_grid(strategy, grid_specs, fixed);
        gt::CsvResultSink sink(grid, symbols, [](std::string_view) {});
        gt::ChunkResults r;
        r.symbol = symbol;
        r.first = first;
        r.stride = params.shape(1);
        const auto& names = gt::metric_names();
        for (std::size_t i = 0; i < valid.shape(0); ++i) {
          r.valid.push_back(valid(i) != 0);
          for (std::size_t p = 0; p < r.stride; ++p) r.params.push_back(params(i, p));
          gt::Metrics m;
          if (valid(i) != 0)
            for (std::size_t k = 0; k < names.size(); ++k) gt::set_metric_value(m, k, metrics(i, k));
          r.metrics.push_back(m);
        }
        return (header ? sink.header() : std::string()) + sink.format(r);
      },
      "strategy"_a, "grid"_a, "fixed"_a, "symbols"_a, "symbol"_a, "first"_a, "valid"_a, "params"_a, "metrics"_a,
      "header"_a = false);

  bind_ml(m);

  m.def(
      "write_file_atomically",
      [](const std::string& path, const std::string& text) { gt::write_file_atomically(path, text); }, "path"_a,
      "text"_a);
}
