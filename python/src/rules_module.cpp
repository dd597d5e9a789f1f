// Strategies written as rules: read from a file, checked and described, as the library's JSON.
#include <nanobind/stl/string.h>

#include "bindings.hpp"
#include "gt/rules.hpp"
#include "gt/study.hpp"
#include "owned_array.hpp"

namespace gt_python {
using namespace nb::literals;

void bind_rules(nb::module_& m) {
  m.def(
      "read_strategy_file",
      [](const std::string& path) { return gt::rules::rules_json(gt::rules::read_strategy_file(path)).dump(); },
      "path"_a, "A strategy file's rules as the library's JSON");
  m.def(
      "compile_rules",
      [](const std::string& rules) {
        const gt::rules::RuleTexts texts = gt::rules::rules_from_json(from_text(rules));
        const auto strategy = gt::rules::compile(texts);
        nb::dict schema = strategy_schema(*strategy);
        schema["canonical"] = strategy->signal_identity;  // the canonical text, from the one parse
        return schema;
      },
      "rules"_a, "Checks rules (JSON) and returns their strategy's schema and canonical text");
  m.def(
      "evaluate_expression",
      [](const gt::Bars& bars, const std::string& context, const std::string& expression, const std::string& params) {
        const gt::rules::RuleTexts texts = gt::rules::rules_from_json(from_text(context));
        gt::Strategy schema{};  // the parameters alone, to read their values by name
        schema.name = "expression";
        schema.params = texts.params;
        gt::add_exit_params(schema.name, schema.params);  // every schema ends with them
        gt::ParamValues values = gt::parse_params(schema, gt::assignments(from_text(params)));
        values.resize(texts.params.size());  // the expression reads the strategy's own, not the exits
        std::vector<double> out;
        {
          nb::gil_scoped_release release;
          out = gt::rules::evaluate_expression(bars, texts, expression, values);
        }
        return owned_array(std::move(out));
      },
      "bars"_a, "context"_a, "expression"_a, "params"_a);
  m.def("rule_functions", &gt::rules::function_names);
  m.def("rule_series", &gt::rules::series_names);
}

}  // namespace gt_python
