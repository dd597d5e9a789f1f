// gpt_trader._core is laid out as the engine is: one file of bindings per area of the library,
// each entry a few lines that call it. This header is what they share.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "gt/backtest.hpp"
#include "gt/strategy.hpp"

namespace gt_python {

namespace nb = nanobind;

using InDoubles = nb::ndarray<const double, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using InInt64 = nb::ndarray<const std::int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

// A library JSON value as Python objects (numbers keep their kind; infinities stay floats).
nb::object to_python(const nlohmann::ordered_json& value);
// JSON text from Python (the package's json.dumps) as the library's JSON.
nlohmann::ordered_json from_text(const std::string& text);

void bind_data(nb::module_& m);        // data_module.cpp: Bars, loading, validation
void bind_indicators(nb::module_& m);  // indicators_module.cpp
void bind_backtest(nb::module_& m);    // backtest_module.cpp: metrics, options, strategies, backtests
void bind_optimize(nb::module_& m);    // optimize_module.cpp: studies, range workers, GPUs
void bind_cache(nb::module_& m);       // cache_module.cpp
void bind_ml(nb::module_& m);          // ml_module.cpp: datasets and signal models
void bind_rules(nb::module_& m);       // rules_module.cpp: strategies written as rules

void bind_live(nb::module_& m);           // live_module.cpp: live signals and replay
void bind_signal_arrays(nb::module_& m);  // signal_arrays_module.cpp: backtests of the caller's signals

// A strategy's name, description, code version and parameter schema (backtest_module.cpp).
nb::dict strategy_schema(const gt::Strategy& strategy);
// A study's strategy from what the package sends: a name (a model strategy's file loaded from
// `given`, whose parameter is then taken out), or with `rules` (JSON text, not empty) the rules'
// strategy (backtest_module.cpp).
gt::Strategy strategy_from(const std::string& name, std::vector<std::pair<std::string, std::string>>& given,
                           const std::string& rules);
// A backtest as Python: metrics (dict), trades (dict of NumPy columns), equity and position (backtest_module.cpp).
nb::dict backtest_dict(const gt::BacktestResult& result);

}  // namespace gt_python
