// gpt_trader._core: the C++ engine for Python. Arrays go out as NumPy views of the engine's own
// memory where they can (a Bars object's columns), and heavy calls release the GIL.
#include <nanobind/stl/string.h>

#include "bindings.hpp"
#include "gt/error.hpp"

namespace gt_python {

nb::object to_python(const nlohmann::ordered_json& v) {
  switch (v.type()) {
    case nlohmann::ordered_json::value_t::null:
      return nb::none();
    case nlohmann::ordered_json::value_t::boolean:
      return nb::bool_(v.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return nb::int_(v.get<long long>());
    case nlohmann::ordered_json::value_t::number_unsigned:
      return nb::int_(v.get<unsigned long long>());
    case nlohmann::ordered_json::value_t::number_float:
      return nb::float_(v.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return nb::str(v.get_ref<const std::string&>().c_str());
    case nlohmann::ordered_json::value_t::array: {
      nb::list out;
      for (const auto& item : v) out.append(to_python(item));
      return out;
    }
    case nlohmann::ordered_json::value_t::object: {
      nb::dict out;
      for (const auto& [key, item] : v.items()) out[key.c_str()] = to_python(item);
      return out;
    }
    default:
      return nb::none();
  }
}

nlohmann::ordered_json from_text(const std::string& text) {
  try {
    return nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::ordered_json::exception& e) {
    throw gt::ParamError(std::string("not JSON: ") + e.what());
  }
}

}  // namespace gt_python

namespace nb = nanobind;

NB_MODULE(_core, m) {
  m.doc() = "GPT-Trader's C++ engine";
  // The library's messages already name parameters as Python spells them (cache, skip_bad_rows).
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const gt::ParamError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const gt::DataError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });
  gt_python::bind_data(m);
  gt_python::bind_indicators(m);
  gt_python::bind_backtest(m);
  gt_python::bind_optimize(m);
  gt_python::bind_cache(m);
  gt_python::bind_ml(m);
  gt_python::bind_rules(m);
  gt_python::bind_signal_arrays(m);
  gt_python::bind_live(m);
}
