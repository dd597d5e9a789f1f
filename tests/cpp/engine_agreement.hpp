// The fast engines held to the reference engine (docs/SEMANTICS.md "Ranking"): every metric of
// every valid combination of a grid, within 1e-9 relative; trade counts and exposure exactly.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <string_view>
#include <vector>

#include "gt/optimize.hpp"

namespace gt::testing {

inline void expect_close(double fast, double reference, const char* what, const std::string& where) {
  if (std::isinf(reference)) {
    EXPECT_EQ(fast, reference) << what << " " << where;
    return;
  }
  EXPECT_LE(std::fabs(fast - reference), 1e-9 * std::fabs(reference) + 1e-12) << what << " " << where;
}

// Every metric of every combination of `grid`: the engine make_evaluator picks (it must be
// `engine`) against the reference engine.
inline void expect_engines_agree(const gt::Bars& bars, const gt::Grid& grid, const gt::ExecutionOptions& options,
                                 std::string_view engine) {
  const auto fast = gt::make_evaluator(bars, grid, options);
  ASSERT_EQ(fast->name(), engine);
  const auto reference = gt::make_reference_evaluator(bars, grid, options);
  const std::size_t stride = grid.base().size();
  std::vector<double> params;
  std::vector<double> combo(stride);
  for (std::uint64_t i = 0; i < grid.size(); ++i) {
    grid.decode(i, combo);
    if (grid.is_valid(combo)) params.insert(params.end(), combo.begin(), combo.end());
  }
  const std::size_t count = params.size() / stride;
  std::vector<gt::Metrics> a(count), b(count);
  fast->evaluate(params, stride, a);
  reference->evaluate(params, stride, b);
  for (std::size_t i = 0; i < count; ++i) {
    const std::string where =
        grid.strategy().describe(gt::ParamValues(params.begin() + static_cast<std::ptrdiff_t>(i * stride),
                                                 params.begin() + static_cast<std::ptrdiff_t>((i + 1) * stride)));
    ASSERT_EQ(a[i].trades, b[i].trades) << where;
    EXPECT_EQ(a[i].exposure, b[i].exposure) << where;
    expect_close(a[i].total_return, b[i].total_return, "total_return", where);
    expect_close(a[i].cagr, b[i].cagr, "cagr", where);
    expect_close(a[i].sharpe, b[i].sharpe, "sharpe", where);
    expect_close(a[i].sortino, b[i].sortino, "sortino", where);
    expect_close(a[i].max_drawdown, b[i].max_drawdown, "max_drawdown", where);
    expect_close(a[i].calmar, b[i].calmar, "calmar", where);
    expect_close(a[i].win_rate, b[i].win_rate, "win_rate", where);
    expect_close(a[i].profit_factor, b[i].profit_factor, "profit_factor", where);
    expect_close(a[i].avg_trade_return, b[i].avg_trade_return, "avg_trade_return", where);
    expect_close(a[i].final_equity, b[i].final_equity, "final_equity", where);
  }
}

}  // namespace gt::testing
