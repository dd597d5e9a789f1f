// Market data per docs/SEMANTICS.md "Market data": what is accepted, and the message for each thing that is not.
#include "gt/data.hpp"

#include <gtest/gtest.h>

#include <charconv>
#include <cmath>
#include <cstring>

#include "gt/error.hpp"

namespace {

constexpr const char* kHeader = "Date,Open,High,Low,Close,Adj Close,Volume\n";

std::string error_of(const std::string& text, gt::LoadOptions options = {}) {
  try {
    gt::parse_csv(text, "prices.csv", options);
  } catch (const gt::DataError& e) {
    return e.what();
  }
  return "no error";
}

TEST(Data, ReadsDailyBarsIntoColumnsAndIgnoresAdjClose) {
  const gt::Bars b = gt::parse_csv(std::string(kHeader) +
                                       "2020-01-02,10,11,9,10.5,99,1000\n"
                                       "2020-01-03,10.5,12,10,11.5,98,2000\n",
                                   "dir/abc.csv");
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b.symbol, "abc");
  EXPECT_FALSE(b.intraday);
  EXPECT_EQ(b.close[1], 11.5);  // never the Adj Close column
  EXPECT_EQ(b.volume[1], 2000);
  EXPECT_EQ(gt::format_time(b.time[0], false), "2020-01-02");
}

TEST(Data, JoinsDateAndTimeColumnsCaseInsensitively) {
  const gt::Bars b = gt::parse_csv(
      "date,TIME,open,high,low,close,volume,OpenInterest\r\n"
      "2006-01-02,09:05:00,1,2,1,2,0,0\r\n2006-01-02,09:10,2,2,1,1,0,0\r\n",
      "es.csv");
  ASSERT_EQ(b.size(), 2u);
  EXPECT_TRUE(b.intraday);
  EXPECT_EQ(b.time[1] - b.time[0], 300);
  EXPECT_EQ(gt::format_time(b.time[0], true), "2006-01-02 09:05:00");
}

TEST(Data, AcceptsDatetimeColumn) {
  const gt::Bars b = gt::parse_csv("Datetime,Open,High,Low,Close,Volume\n2021-03-04 10:00:00,1,1,1,1,5\n", "x.csv");
  EXPECT_TRUE(b.intraday);
}

TEST(Data, MissingColumnNamesItAndTheHeader) {
  EXPECT_EQ(error_of("Date,Open,High,Low,Volume\n2020-01-02,1,1,1,1\n"),
            "prices.csv:1: missing column 'Close' (header is 'Date,Open,High,Low,Volume'; need Date or "
            "Datetime or Timestamp, optional Time, Open, High, Low, Close, Volume)");
}

TEST(Data, UnparsableNumberNamesFileLineAndField) {
  EXPECT_EQ(error_of(std::string(kHeader) + "2020-01-02,10,11,9,1o.5,10,1000\n"),
            "prices.csv:2: field 'Close': '1o.5' is not a number (use skip_bad_rows to drop such "
            "rows and count them)");
}

TEST(Data, BadDate) {
  EXPECT_NE(error_of(std::string(kHeader) + "2020-02-30,10,11,9,10,10,1\n")
                .find("prices.csv:2: field 'Date': '2020-02-30' is not a date"),
            std::string::npos);
}

TEST(Data, UnsortedAndDuplicateTimestampsAreErrors) {
  const std::string dup = error_of(std::string(kHeader) + "2020-01-02,1,1,1,1,1,1\n2020-01-02,1,1,1,1,1,1\n");
  EXPECT_NE(dup.find("prices.csv:3: field 'Date': 2020-01-02 is not after the previous row's 2020-01-02"),
            std::string::npos);
  const std::string back = error_of(std::string(kHeader) + "2020-01-03,1,1,1,1,1,1\n2020-01-02,1,1,1,1,1,1\n");
  EXPECT_NE(back.find("prices.csv:3:"), std::string::npos);
}

TEST(Data, NonPositiveAndNonFinitePrices) {
  EXPECT_NE(error_of(std::string(kHeader) + "2020-01-02,0,1,1,1,1,1\n")
                .find("prices.csv:2: field 'Open': price 0 must be finite and > 0"),
            std::string::npos);
  EXPECT_NE(error_of(std::string(kHeader) + "2020-01-02,1,inf,1,1,1,1\n").find("field 'High': price inf"),
            std::string::npos);
  EXPECT_NE(error_of(std::string(kHeader) + "2020-01-02,1,1,1,nan,1,1\n").find("field 'Close': price nan"),
            std::string::npos);
  EXPECT_NE(error_of(std::string(kHeader) + "2020-01-02,1,1,1,1,1,-5\n").find("field 'Volume': -5 must be"),
            std::string::npos);
}

TEST(Data, HighLowMustEncloseOpenAndClose) {
  EXPECT_NE(error_of(std::string(kHeader) + "2020-01-02,10,10.5,9,11,1,1\n")
                .find("prices.csv:2: field 'High': 10.5 is below max(Open, Close) = 11"),
            std::string::npos);
  EXPECT_NE(error_of(std::string(kHeader) + "2020-01-02,10,12,10.5,11,1,1\n")
                .find("prices.csv:2: field 'Low': 10.5 is above min(Open, Close) = 10"),
            std::string::npos);
}

TEST(Data, WrongFieldCount) {
  EXPECT_NE(error_of(std::string(kHeader) + "2020-01-02,10,12,9,11,1\n").find("has 6 fields, the header has 7"),
            std::string::npos);
}

TEST(Data, SkipBadRowsCountsWhatItDropped) {
  gt::LoadOptions skip;
  skip.skip_bad_rows = true;
  const gt::Bars b = gt::parse_csv(std::string(kHeader) +
                                       "2020-01-02,10,11,9,10.5,1,1000\n"
                                       "2020-01-03,x,11,9,10.5,1,1000\n"
                                       "2020-01-02,10,11,9,10.5,1,1000\n"
                                       "2020-01-06,10,11,9,10.5,1,1000\n",
                                   "p.csv", skip);
  EXPECT_EQ(b.size(), 2u);
  EXPECT_EQ(b.skipped_rows, 2u);
}

TEST(Data, EmptyFileAndMissingFile) {
  EXPECT_EQ(error_of(""), "prices.csv: the file is empty (no header row)");
  EXPECT_EQ(error_of(kHeader), "prices.csv: no data rows after the header");
  EXPECT_THROW(gt::load_csv("/nonexistent/file.csv"), gt::DataError);
}

TEST(Data, LoadsTheBundledFilesAndAFolder) {
  const auto all = gt::load_many({GT_DATA_DIR});
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].symbol, "es-2006-5min");
  EXPECT_TRUE(all[0].intraday);
  EXPECT_EQ(all[1].size(), 5036u);
  EXPECT_EQ(gt::infer_periods_per_year(all[1]), 252.0);
  // 5-minute bars: 252 trading days times the bars in a typical session.
  const double a = gt::infer_periods_per_year(all[0]);
  EXPECT_EQ(std::fmod(a, 252.0), 0.0);
  EXPECT_GT(a, 252.0 * 50);
}

}  // namespace

namespace {

// The fast decimal path must give from_chars' double for every price-like text.
TEST(Data, NumbersParseToTheCorrectlyRoundedDouble) {
  const char* texts[] = {"2.179012",
                         "0.1",
                         "36301200",
                         "3578.73",
                         "1e3",
                         "123456789012345678901",
                         "-0.5",
                         "9007199254740993",
                         "0.30000000000000004",
                         "12.",
                         ".5",
                         "1.7976931348623157e308"};
  for (const char* text : texts) {
    const std::string csv =
        std::string("Date,Open,High,Low,Close,Volume\n2020-01-02,1e-300,1.7976931348623157e308,1e-300,") + text +
        ",1\n";
    double expected = 0;
    std::from_chars(text, text + std::strlen(text), expected);
    if (expected <= 0) continue;  // not a valid price
    EXPECT_EQ(gt::parse_csv(csv, "n.csv").close[0], expected) << text;
  }
}

}  // namespace
