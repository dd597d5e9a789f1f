// The metric table, the execution options' declaration, the strategies and one backtest.
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cmath>

#include "bindings.hpp"
#include "gt/backtest.hpp"
#include "gt/ml.hpp"
#include "gt/portfolio.hpp"
#include "gt/rules.hpp"
#include "gt/strategy.hpp"
#include "gt/study.hpp"
#include "owned_array.hpp"

namespace gt_python {
using namespace nb::literals;

nb::dict strategy_schema(const gt::Strategy& s) {
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
  return d;
}

nb::dict trade_arrays(const std::vector<gt::Trade>& trades) {
  gt::TradeColumns c = gt::trade_columns(trades);
  nb::dict d;
  d["entry_bar"] = owned_array(std::move(c.entry_bar));
  d["exit_bar"] = owned_array(std::move(c.exit_bar));
  d["side"] = owned_array(std::move(c.side));
  d["entry_price"] = owned_array(std::move(c.entry_price));
  d["exit_price"] = owned_array(std::move(c.exit_price));
  d["units"] = owned_array(std::move(c.units));
  d["pnl"] = owned_array(std::move(c.pnl));
  d["return"] = owned_array(std::move(c.ret));
  d["bars_held"] = owned_array(std::move(c.bars_held));
  d["open"] = owned_array(std::move(c.open));
  nb::list reasons;
  for (const std::string_view reason : c.exit_reason) reasons.append(nb::str(reason.data(), reason.size()));
  d["exit_reason"] = reasons;
  return d;
}

nb::dict backtest_dict(const gt::BacktestResult& r) {
  nb::dict out;
  out["metrics"] = to_python(gt::metrics_json(r.metrics));
  out["trades"] = trade_arrays(r.trades);
  out["equity"] = owned_array(std::vector<double>(r.equity));
  out["position"] = owned_array(std::vector<double>(r.position));
  return out;
}

gt::Strategy strategy_from(const std::string& name, std::vector<std::pair<std::string, std::string>>& given,
                           const std::string& rules) {
  return rules.empty() ? gt::ml::resolve_strategy(name, given)
                       : *gt::rules::compile(gt::rules::rules_from_json(from_text(rules)));
}

void bind_backtest(nb::module_& m) {
  m.def("metric_table", [] {
    nb::list out;
    for (const auto& info : gt::metric_table()) {
      nb::dict d;
      d["name"] = std::string(info.name);
      d["higher_is_better"] = info.higher_is_better;
      d["integer"] = info.integer != nullptr;
      d["description"] = std::string(info.description);
      out.append(d);
    }
    return out;
  });
  m.def("metric_names", &gt::metric_names);
  m.def("execution_options", [] {
    nb::list out;
    static constexpr const char* kKinds[] = {"choice", "number", "optional_number", "flag"};
    for (const auto& spec : gt::execution_option_specs()) {
      nb::dict d;
      d["name"] = std::string(spec.name);
      d["kind"] = kKinds[static_cast<int>(spec.kind)];
      d["default"] = std::string(spec.default_text);
      d["choices"] = std::string(spec.choices);
      d["help"] = std::string(spec.help);
      out.append(d);
    }
    return out;
  });
  m.def("exit_params", [] {
    nb::list out;
    for (const auto& p : gt::exit_param_table()) {
      nb::dict d;
      d["name"] = std::string(p.name);
      d["integer"] = p.integer;
      d["help"] = std::string(p.help);
      out.append(d);
    }
    return out;
  });
  m.def("strategies", [] {
    nb::list out;
    for (const auto& s : gt::strategies()) out.append(strategy_schema(s));
    return out;
  });
  m.def(
      "backtest",
      [](const gt::Bars& bars, const std::string& strategy, const std::string& params, const std::string& options,
         const std::string& rules) {
        auto given = gt::assignments(from_text(params));
        const gt::Strategy s = strategy_from(strategy, given, rules);
        const gt::ParamValues values = gt::parse_params(s, given);
        const gt::ExecutionOptions o = gt::execution_options(from_text(options));
        s.require_enough_bars(bars, values);
        gt::BacktestResult r;
        {
          nb::gil_scoped_release release;
          r = gt::run_strategy(bars, s, values, o);
        }
        nb::dict out = backtest_dict(r);
        out["parameters"] = to_python(gt::params_json(s, values));
        return out;
      },
      "bars"_a, "strategy"_a, "params"_a, "options"_a, "rules"_a = "");
  m.def(
      "portfolio_backtest",
      [](const std::vector<gt::Bars>& symbols, const std::string& strategy, const std::string& params,
         const std::string& options, const std::string& rules, const std::vector<double>& weights,
         std::size_t rebalance) {
        auto given = gt::assignments(from_text(params));
        const gt::Strategy s = strategy_from(strategy, given, rules);
        const gt::ParamValues values = gt::parse_params(s, given);
        const gt::ExecutionOptions o = gt::execution_options(from_text(options));
        const gt::PortfolioOptions allocation{weights, rebalance};
        gt::check_portfolio(symbols, allocation);
        for (const auto& bars : symbols) s.require_enough_bars(bars, values);
        gt::PortfolioResult r;
        {
          nb::gil_scoped_release release;
          r = gt::run_portfolio(symbols, s, values, o, allocation);
        }
        nb::dict out;
        out["metrics"] = to_python(gt::metrics_json(r.metrics));
        out["parameters"] = to_python(gt::params_json(s, values));
        std::vector<double> time(r.time.begin(), r.time.end());
        out["time"] = owned_array(std::move(time));
        out["equity"] = owned_array(std::move(r.equity));
        nb::list per_symbol;
        for (std::size_t i = 0; i < symbols.size(); ++i) {
          nb::dict d;
          d["symbol"] = symbols[i].symbol;
          d["value"] = owned_array(std::move(r.value[i]));
          d["trades"] = trade_arrays(r.trades[i]);
          d["contribution"] = r.contribution[i];
          per_symbol.append(d);
        }
        out["symbols"] = per_symbol;
        out["skipped_entries"] = r.skipped_entries;
        return out;
      },
      "symbols"_a, "strategy"_a, "params"_a, "options"_a, "rules"_a, "weights"_a, "rebalance"_a,
      "One strategy over several symbols with one cash account (docs/SEMANTICS.md \"Portfolios\").");
}

}  // namespace gt_python
