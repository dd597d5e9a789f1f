// Indicator conventions of docs/SEMANTICS.md "Indicators" that hold whatever the data: lookback, NaN prefix, and the
// many-periods path equal to the one-period one. Agreement with TA-Lib itself is checked by
// tests/python/test_indicators_talib.py against the PyPI ta-lib package.
#include "gt/indicators.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "../../src/indicators/detail.hpp"
#include "gt/data.hpp"
#include "gt/error.hpp"

namespace {

using gt::ind::MaType;

const gt::Bars& orcl() {
  static const gt::Bars bars = gt::load_csv(GT_DATA_DIR "/orcl-1995-2014.csv");
  return bars;
}

std::size_t leading_nans(const gt::ind::Series& s) {
  std::size_t i = 0;
  while (i < s.size() && std::isnan(s[i])) ++i;
  return i;
}

TEST(Indicators, MovingAveragesHaveTaLibLookbacks) {
  for (MaType type : {MaType::kSma, MaType::kEma, MaType::kWma, MaType::kDema, MaType::kTema, MaType::kKama}) {
    for (int p : {2, 5, 30}) {
      const auto s = gt::ind::ma(type, orcl().close, p);
      EXPECT_EQ(leading_nans(s), static_cast<std::size_t>(gt::ind::ma_lookback(type, p)))
          << "type " << static_cast<int>(type) << " period " << p;
    }
  }
}

TEST(Indicators, SmaOfAConstantIsTheConstant) {
  const std::vector<double> flat(50, 7.25);
  const auto s = gt::ind::sma(flat, 10);
  for (std::size_t i = 9; i < flat.size(); ++i) EXPECT_EQ(s[i], 7.25);
}

TEST(Indicators, HandComputedValues) {
  const std::vector<double> x = {1, 2, 3, 4, 5, 6};
  EXPECT_DOUBLE_EQ(gt::ind::sma(x, 3)[2], 2.0);
  EXPECT_DOUBLE_EQ(gt::ind::wma(x, 3)[2], (1 * 1 + 2 * 2 + 3 * 3) / 6.0);
  const auto e = gt::ind::ema(x, 3);  // seed 2, then k = 0.5
  EXPECT_DOUBLE_EQ(e[2], 2.0);
  EXPECT_DOUBLE_EQ(e[3], 3.0);
  EXPECT_DOUBLE_EQ(gt::ind::roc(x, 2)[5], (6.0 / 4.0 - 1.0) * 100.0);
  const auto o = gt::ind::obv(x, std::vector<double>{10, 1, 1, 1, 1, 1});
  EXPECT_EQ(o[0], 10);  // TA-Lib starts from the first volume
  EXPECT_EQ(o[5], 15);
  EXPECT_DOUBLE_EQ(gt::ind::rsi(x, 3)[3], 100.0);  // only gains
}

TEST(Indicators, ManyPeriodsEqualOnePeriodAtATime) {
  const std::vector<int> periods = {3, 5, 8, 13, 21, 34};
  for (MaType type : {MaType::kSma, MaType::kEma, MaType::kWma}) {
    const auto m = gt::ind::ma_many(type, orcl().close, periods);
    ASSERT_EQ(m.rows, periods.size());
    for (std::size_t r = 0; r < periods.size(); ++r) {
      const auto one = gt::ind::ma(type, orcl().close, periods[r]);
      const auto row = m.row(r);
      for (std::size_t i = 0; i < one.size(); ++i)
        ASSERT_TRUE((std::isnan(one[i]) && std::isnan(row[i])) || one[i] == row[i]);
    }
  }
}

TEST(Indicators, ManyPeriodsInSimdLanesAreBitIdenticalForEveryGroupShape) {
  std::vector<int> periods;
  for (int p = 2; p <= 75; p += (p % 7 == 0 ? 3 : 1)) periods.push_back(p);
  periods.push_back(6000);                       // longer than the data: all NaN, like the one-period function
  std::reverse(periods.begin(), periods.end());  // order of the request is kept in the rows
  for (MaType type : {MaType::kSma, MaType::kEma, MaType::kWma, MaType::kDema}) {
    const auto m = gt::ind::ma_many(type, orcl().close, periods);
    for (std::size_t r = 0; r < periods.size(); ++r) {
      const auto one = gt::ind::ma(type, orcl().close, periods[r]);
      const auto row = m.row(r);
      for (std::size_t i = 0; i < one.size(); ++i)
        ASSERT_TRUE((std::isnan(one[i]) && std::isnan(row[i])) || one[i] == row[i])
            << "type " << static_cast<int>(type) << " period " << periods[r] << " bar " << i;
    }
  }
}

// Resume points: every stride of every row computed again from its point equals the row bit for
// bit, for first values in the scalar prefix and in the lanes, on a stride's first bar (periods 65
// and 129) or inside it, periods longer than the data beside shorter ones in a group, either way
// of dividing, and data whose length is not a multiple of the stride.
TEST(Indicators, ResumePointsGiveEachStrideAgainBitForBit) {
  std::vector<int> periods = {1, 2, 3, 7, 8, 9, 20, 63, 64, 65, 66, 100, 129, 200, 1190, 1300};
  std::vector<double> close = orcl().close;
  close.resize(1234);
  const std::size_t n = close.size(), strides = (n + gt::ind::kResumeStride - 1) / gt::ind::kResumeStride;
  for (const bool fused : {true, false}) {
    gt::ind::detail::force_fused_division(fused);
    for (MaType type : {MaType::kSma, MaType::kEma, MaType::kWma}) {
      std::vector<double> rows(periods.size() * n);
      std::vector<gt::ind::MaResume> resume(periods.size() * strides);
      gt::ind::ma_many_into(type, close, periods, rows.data(), n, resume.data());
      for (std::size_t r = 0; r < periods.size(); ++r) {
        const auto one = gt::ind::ma(type, close, periods[r]);
        for (std::size_t s = 0; s < strides; ++s) {
          const std::size_t base = s * gt::ind::kResumeStride, to = std::min(n, base + gt::ind::kResumeStride);
          if (to <= static_cast<std::size_t>(periods[r] - 1)) continue;  // no value in this stride: no point
          double word[gt::ind::kResumeStride];
          gt::ind::ma_resume(type, close, periods[r], resume[r * strides + s], s, to, word);
          for (std::size_t i = base; i < to; ++i) {
            const double again = word[i - base];
            ASSERT_TRUE((std::isnan(one[i]) && std::isnan(again)) || std::memcmp(&one[i], &again, sizeof again) == 0)
                << "fused " << fused << " type " << static_cast<int>(type) << " period " << periods[r] << " bar " << i
                << ": " << one[i] << " against " << again;
            const double kept = rows[r * n + i];  // the rows written beside the points are the same
            ASSERT_TRUE((std::isnan(one[i]) && std::isnan(kept)) || std::memcmp(&one[i], &kept, sizeof kept) == 0);
          }
        }
      }
    }
  }
  gt::ind::detail::force_fused_division(true);
  std::vector<double> out(n);
  gt::ind::MaResume point;
  EXPECT_THROW(gt::ind::ma_many_into(MaType::kDema, close, std::vector<int>{5}, out.data(), n, &point), gt::ParamError);
}

// Either way of dividing in the lanes (the fused quotient where AVX-512 runs, the division unit
// elsewhere), on prices and on inputs where the fused quotient must hand over to the division:
// zeros (signed), subnormal and huge magnitudes, infinities, NaN.
TEST(Indicators, ManyPeriodsAreBitIdenticalWithEitherDivisionOnAnyInput) {
  std::vector<double> odd = orcl().close;
  odd.resize(1200);
  for (std::size_t i = 200; i < 260; ++i) odd[i] = i % 2 ? 0.0 : -0.0;
  for (std::size_t i = 400; i < 440; ++i) odd[i] = 1e-310 * static_cast<double>(i % 5);
  for (std::size_t i = 600; i < 640; ++i) odd[i] = 1e300 * static_cast<double>(i % 3 + 1);
  odd[800] = HUGE_VAL;
  odd[900] = -HUGE_VAL;
  odd[1000] = std::nan("");
  for (std::size_t i = 1100; i < 1200; ++i) odd[i] = -odd[i - 1000];
  std::vector<int> periods;
  for (int p = 1; p <= 40; ++p) periods.push_back(p);
  for (const bool fused : {true, false}) {
    gt::ind::detail::force_fused_division(fused);
    for (const std::vector<double>* input : {&orcl().close, &std::as_const(odd)})
      for (MaType type : {MaType::kSma, MaType::kEma, MaType::kWma}) {
        const auto m = gt::ind::ma_many(type, *input, periods);
        for (std::size_t r = 0; r < periods.size(); ++r) {
          const auto one = gt::ind::ma(type, *input, periods[r]);
          const auto row = m.row(r);
          for (std::size_t i = 0; i < one.size(); ++i)
            ASSERT_TRUE((std::isnan(one[i]) && std::isnan(row[i])) ||
                        std::memcmp(&one[i], &row[i], sizeof(double)) == 0)
                << "fused " << fused << " type " << static_cast<int>(type) << " period " << periods[r] << " bar " << i
                << ": " << one[i] << " against " << row[i];
        }
      }
  }
  gt::ind::detail::force_fused_division(true);
}

TEST(Indicators, RegistryRejectsUnknownNamesForeignArgumentsAndBadPeriods) {
  gt::ind::IndicatorArgs args;
  EXPECT_THROW(gt::ind::compute("FOO", orcl(), args), gt::ParamError);
  args.fast = 3;
  try {
    gt::ind::compute("sma", orcl(), args);
    FAIL();
  } catch (const gt::ParamError& e) {
    EXPECT_STREQ(e.what(), "SMA does not take fast (it takes period)");
  }
  gt::ind::IndicatorArgs zero;
  zero.period = 0;
  try {
    gt::ind::compute("rsi", orcl(), zero);
    FAIL();
  } catch (const gt::ParamError& e) {
    EXPECT_STREQ(e.what(), "RSI: period = 0 is out of range (allowed: 2 to 100000)");
  }
  gt::ind::IndicatorArgs huge;
  huge.period = 100000;
  EXPECT_THROW(gt::ind::compute("EMA", orcl(), huge), gt::ParamError);
}

TEST(Indicators, MultiOutputNamesFollowTaLibOrder) {
  const auto macd = gt::ind::compute("MACD", orcl(), {});
  ASSERT_EQ(macd.size(), 3u);
  EXPECT_EQ(macd[0].name, "macd");
  EXPECT_EQ(macd[1].name, "signal");
  EXPECT_EQ(macd[2].name, "hist");
  EXPECT_EQ(leading_nans(macd[0].values), 33u);
  const auto bands = gt::ind::compute("BBANDS", orcl(), {});
  EXPECT_EQ(bands[0].name, "upper");
  EXPECT_EQ(bands[2].name, "lower");
  const auto st = gt::ind::compute("STOCH", orcl(), {});
  EXPECT_EQ(st[0].name, "k");
  EXPECT_EQ(leading_nans(st[1].values), 8u);
}

}  // namespace

namespace {

// Naive definitions of docs/SEMANTICS.md "Indicators", summed afresh at every bar: independent of the running sums and
// SIMD lanes the library uses, so a wrong window or weight there cannot pass here.
gt::ind::Series naive_sma(const std::vector<double>& x, int p) {
  gt::ind::Series out(x.size(), std::nan(""));
  for (std::size_t t = static_cast<std::size_t>(p) - 1; t < x.size(); ++t) {
    long double sum = 0;
    for (int k = 0; k < p; ++k) sum += x[t - k];
    out[t] = static_cast<double>(sum / p);
  }
  return out;
}

gt::ind::Series naive_wma(const std::vector<double>& x, int p) {
  gt::ind::Series out(x.size(), std::nan(""));
  for (std::size_t t = static_cast<std::size_t>(p) - 1; t < x.size(); ++t) {
    long double sum = 0;
    for (int k = 0; k < p; ++k) sum += static_cast<long double>(p - k) * x[t - k];  // the newest weighs p
    out[t] = static_cast<double>(sum / (p * (p + 1) / 2.0L));
  }
  return out;
}

gt::ind::Series naive_ema(const std::vector<double>& x, int p) {
  gt::ind::Series out(x.size(), std::nan(""));
  const std::size_t first = static_cast<std::size_t>(p) - 1;
  if (x.size() <= first) return out;
  long double value = 0;
  for (int k = 0; k < p; ++k) value += x[k];
  value /= p;  // seeded with the SMA of the first p values
  out[first] = static_cast<double>(value);
  const long double alpha = 2.0L / (p + 1);
  for (std::size_t t = first + 1; t < x.size(); ++t) {
    value = alpha * x[t] + (1 - alpha) * value;
    out[t] = static_cast<double>(value);
  }
  return out;
}

void expect_equal_at_every_bar(const gt::ind::Series& got, const gt::ind::Series& want, const char* what, int p) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t t = 0; t < got.size(); ++t) {
    if (std::isnan(want[t])) {
      ASSERT_TRUE(std::isnan(got[t])) << what << "(" << p << ") defined too early at bar " << t;
    } else {
      ASSERT_NEAR(got[t], want[t], 1e-9 * std::fabs(want[t])) << what << "(" << p << ") at bar " << t;
    }
  }
}

TEST(Indicators, SmaWmaEmaEqualNaiveLoopsAtEveryBar) {
  const std::vector<double> close(orcl().close.begin(), orcl().close.end());
  const std::vector<double> volume(orcl().volume.begin(), orcl().volume.end());
  for (int p : {2, 3, 7, 20, 30, 49, 200}) {
    expect_equal_at_every_bar(gt::ind::sma(close, p), naive_sma(close, p), "SMA", p);
    expect_equal_at_every_bar(gt::ind::wma(close, p), naive_wma(close, p), "WMA", p);
    expect_equal_at_every_bar(gt::ind::ema(close, p), naive_ema(close, p), "EMA", p);
    expect_equal_at_every_bar(gt::ind::sma(volume, p), naive_sma(volume, p), "SMA of volume", p);
  }
  // The many-periods path the grid engine uses, row by row.
  const std::vector<int> periods = {5, 9, 10, 17, 20, 33, 49, 50, 51};
  for (MaType type : {MaType::kSma, MaType::kEma, MaType::kWma}) {
    const auto many = gt::ind::ma_many(type, close, periods);
    for (std::size_t r = 0; r < periods.size(); ++r) {
      const int p = periods[r];
      const auto row = many.row(r);
      const auto want = type == MaType::kSma ? naive_sma(close, p)
                                             : (type == MaType::kEma ? naive_ema(close, p) : naive_wma(close, p));
      expect_equal_at_every_bar(gt::ind::Series(row.begin(), row.end()), want, "ma_many", p);
    }
  }
}

}  // namespace
