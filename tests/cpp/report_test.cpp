// What a report shows, computed by plain functions (docs/SEMANTICS.md "Reports", "Ranking"): a
// results file read back as columns, its rows ranked, and the heatmap's cells under each way of
// treating the other parameters. Each case is a small results file written here and the numbers
// expected from it by hand.
#include "gt/report.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "gt/error.hpp"

namespace {

using gt::report::Others;

gt::report::ResultsTable table(const std::string& csv) {
  const auto path = std::filesystem::temp_directory_path() / ("gt-report-test-" + std::to_string(::getpid()) + ".csv");
  std::ofstream(path) << csv;
  struct Removed {  // also when read_results throws, as the error cases expect
    std::filesystem::path path;
    ~Removed() {
      std::error_code ec;
      std::filesystem::remove(path, ec);
    }
  } removed{path};
  return gt::report::read_results(path);
}

// fast, slow, flag; sharpe, max_drawdown, final_equity. Row 4 is ruined; row 5 has no sharpe.
const char* kResults =
    "symbol,fast,slow,flag,sharpe,max_drawdown,final_equity\n"
    "\"a,b\",5,20,false,1.0,0.30,110\n"
    "\"a,b\",5,30,false,2.0,0.20,120\n"
    "\"a,b\",6,20,false,2.0,0.10,120\n"
    "\"a,b\",6,30,false,0.5,0.40,105\n"
    "\"a,b\",5,20,true,9.0,1.00,0\n"
    "\"a,b\",5,30,true,,0.50,100\n"
    "\"a,b\",6,20,true,3.0,0.25,130\n"
    "\"a,b\",6,30,true,1.5,0.35,115\n"
    "other,5,20,false,7.0,0.1,150\n";

TEST(Report, AResultsFileReadsBackAsColumns) {
  const auto r = table(kResults);
  ASSERT_EQ(r.rows(), 9u);
  EXPECT_EQ(r.params, (std::vector<std::string>{"fast", "slow", "flag"}));
  EXPECT_EQ(r.metrics, (std::vector<std::string>{"sharpe", "max_drawdown", "final_equity"}));
  EXPECT_EQ(r.symbols[0], "a,b");
  EXPECT_TRUE(r.boolean_params[2]);
  EXPECT_EQ(r.param_values[2][4], 1.0);
  EXPECT_TRUE(std::isnan(r.metric_values[0][5]));
  EXPECT_THROW(table("fast,slow\n5,20\n"), gt::DataError);  // no metric column
  EXPECT_THROW(table("fast,sharpe\n5,1.0\n6\n"), gt::DataError);
}

TEST(Report, RowsRankBetterFirstThenNaNThenRuinedWithTiesInFileOrder) {
  const auto r = table(kResults);
  const auto rows = gt::report::rows_of_symbol(r, "a,b");
  EXPECT_EQ(rows.size(), 8u);
  // sharpe: 3.0 (row 6), 2.0 (rows 1, 2 in file order), 1.5, 1.0, 0.5, NaN (row 5), ruined (row 4).
  EXPECT_EQ(gt::report::ranked_rows(r, rows, 0), (std::vector<std::size_t>{6, 1, 2, 7, 0, 3, 5, 4}));
  // max_drawdown: lower is better; the ruined row last although nothing is drawn down more.
  EXPECT_EQ(gt::report::ranked_rows(r, rows, 1), (std::vector<std::size_t>{2, 1, 6, 0, 7, 3, 5, 4}));
  EXPECT_THROW(gt::report::rows_of_symbol(r, "missing"), gt::ParamError);
}

TEST(Report, HeatmapCellsTakeTheBestSliceTheMeanOrTheBestValue) {
  const auto r = table(kResults);
  const auto rows = gt::report::rows_of_symbol(r, "a,b");
  const std::size_t best = gt::report::ranked_rows(r, rows, 0).front();  // row 6: flag true
  const auto best_slice = gt::report::heatmap_cells(r, rows, 0, 1, 0, Others::kBest, best);
  ASSERT_EQ(best_slice.size(), 4u);  // (5,20) (5,30) (6,20) (6,30) at flag = true
  EXPECT_EQ(best_slice[0].value, 9.0);
  EXPECT_TRUE(std::isnan(best_slice[1].value));
  EXPECT_EQ(best_slice[2].value, 3.0);
  EXPECT_EQ(best_slice[3].value, 1.5);
  const auto mean = gt::report::heatmap_cells(r, rows, 0, 1, 0, Others::kMean, best);
  EXPECT_DOUBLE_EQ(mean[0].value, 5.0);  // (1.0 + 9.0) / 2
  EXPECT_DOUBLE_EQ(mean[1].value, 2.0);  // NaN left out
  EXPECT_DOUBLE_EQ(mean[3].value, 1.0);
  const auto lowest_drawdown = gt::report::heatmap_cells(r, rows, 0, 1, 1, Others::kMax, best);
  EXPECT_EQ(lowest_drawdown[0].value, 0.30);  // the best max_drawdown is the lower one
  EXPECT_EQ(lowest_drawdown[2].value, 0.10);
  EXPECT_EQ(lowest_drawdown[0].x, 5.0);
  EXPECT_EQ(lowest_drawdown[0].y, 20.0);
}

}  // namespace
