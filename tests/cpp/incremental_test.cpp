// Incremental indicators (gt/incremental.hpp, docs/SEMANTICS.md "Live signals"): fed one bar at a
// time, every indicator equals the batch function at every bar of every data file (to 1e-9
// relative; the batch functions equal TA-Lib: tests/python/test_indicators_talib.py). The batch
// moving averages and the optimizer's many-period lanes run array-driven states, so they are an
// independent check of the windows here; the other batch functions run these very states.
#include "gt/incremental.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>

#include "gt/data.hpp"
#include "gt/indicators.hpp"

namespace {

namespace inc = gt::ind::incremental;

const std::vector<gt::Bars>& all_files() {
  static const std::vector<gt::Bars> bars = {gt::load_csv(GT_DATA_DIR "/orcl-1995-2014.csv"),
                                             gt::load_csv(GT_DATA_DIR "/yhoo-1996-2014.csv"),
                                             gt::load_csv(GT_DATA_DIR "/es-2006-5min.csv")};
  return bars;
}

void expect_equal_at_every_bar(const std::vector<double>& batch, const std::vector<double>& live,
                               const std::string& what) {
  ASSERT_EQ(batch.size(), live.size()) << what;
  std::size_t defined = 0;
  for (std::size_t t = 0; t < batch.size(); ++t) {
    if (std::isnan(batch[t])) {
      ASSERT_TRUE(std::isnan(live[t])) << what << " bar " << t << ": " << live[t] << " where the batch is undefined";
      continue;
    }
    ++defined;
    ASSERT_NEAR(live[t], batch[t], 1e-9 * std::max(1.0, std::fabs(batch[t]))) << what << " bar " << t;
  }
  EXPECT_GT(defined, batch.size() / 2) << what;
}

// Runs `update` over the bars one at a time.
std::vector<double> live(const gt::Bars& b, const std::function<double(std::size_t)>& update) {
  std::vector<double> out(b.size());
  for (std::size_t t = 0; t < b.size(); ++t) out[t] = update(t);
  return out;
}

TEST(Incremental, MovingAveragesEqualTheBatchAndTheManyPeriodLanesAtEveryBar) {
  using gt::ind::MaType;
  for (const auto& b : all_files())
    for (const int p : {1, 2, 5, 14, 30, 200})
      for (const MaType type :
           {MaType::kSma, MaType::kEma, MaType::kWma, MaType::kDema, MaType::kTema, MaType::kKama}) {
        const std::string what =
            b.symbol + " type " + std::to_string(static_cast<int>(type)) + " period " + std::to_string(p);
        inc::Ma ma(type, p);
        const auto got = live(b, [&](std::size_t t) { return ma.update(b.close[t]); });
        expect_equal_at_every_bar(gt::ind::ma(type, b.close, p), got, what);
        if (type == MaType::kSma || type == MaType::kEma || type == MaType::kWma) {
          const int periods[] = {p};
          const auto lanes = gt::ind::ma_many(type, b.close, periods);
          expect_equal_at_every_bar(std::vector<double>(lanes.row(0).begin(), lanes.row(0).end()), got,
                                    what + " (lanes)");
        }
      }
}

TEST(Incremental, OscillatorsAndVolatilityEqualTheBatchAtEveryBar) {
  for (const auto& b : all_files())
    for (const int p : {2, 7, 14, 30}) {
      const std::string what = b.symbol + " period " + std::to_string(p);
      inc::Rsi rsi(p);
      expect_equal_at_every_bar(gt::ind::rsi(b.close, p), live(b, [&](auto t) { return rsi.update(b.close[t]); }),
                                "rsi " + what);
      inc::Roc roc(p);
      expect_equal_at_every_bar(gt::ind::roc(b.close, p), live(b, [&](auto t) { return roc.update(b.close[t]); }),
                                "roc " + what);
      inc::Atr atr(p);
      expect_equal_at_every_bar(gt::ind::atr(b.high, b.low, b.close, p),
                                live(b, [&](auto t) { return atr.update(b.high[t], b.low[t], b.close[t]); }),
                                "atr " + what);
      inc::Adx adx(p);
      expect_equal_at_every_bar(gt::ind::adx(b.high, b.low, b.close, p),
                                live(b, [&](auto t) { return adx.update(b.high[t], b.low[t], b.close[t]); }),
                                "adx " + what);
      for (const bool highest : {true, false}) {
        inc::Extreme extreme(p, highest);
        const auto got = live(b, [&](auto t) { return extreme.update(b.close[t]); });
        for (std::size_t t = 0; t < b.size(); ++t) {  // by definition: the extreme of the p closes ending at t
          if (t + 1 < static_cast<std::size_t>(p)) {
            ASSERT_TRUE(std::isnan(got[t]));
            continue;
          }
          double want = b.close[t];
          for (std::size_t s = t + 1 - static_cast<std::size_t>(p); s <= t; ++s)
            want = highest ? std::max(want, b.close[s]) : std::min(want, b.close[s]);
          ASSERT_EQ(got[t], want) << (highest ? "highest " : "lowest ") << what << " bar " << t;
        }
      }
    }
}

TEST(Incremental, MultiOutputIndicatorsEqualTheBatchAtEveryBar) {
  for (const auto& b : all_files()) {
    inc::Obv obv;
    expect_equal_at_every_bar(gt::ind::obv(b.close, b.volume),
                              live(b, [&](auto t) { return obv.update(b.close[t], b.volume[t]); }), "obv " + b.symbol);
    for (const auto& [fast, slow, signal] : {std::tuple{12, 26, 9}, std::tuple{5, 35, 5}, std::tuple{30, 10, 4}}) {
      const auto batch = gt::ind::macd(b.close, fast, slow, signal);
      inc::MacdState state(fast, slow, signal);
      std::vector<double> m, s, h;
      for (std::size_t t = 0; t < b.size(); ++t) {
        const auto v = state.update(b.close[t]);
        m.push_back(v.macd);
        s.push_back(v.signal);
        h.push_back(v.hist);
      }
      const std::string what = "macd " + std::to_string(fast) + "," + std::to_string(slow) + " " + b.symbol;
      expect_equal_at_every_bar(batch.macd, m, what);
      expect_equal_at_every_bar(batch.signal, s, what + " signal");
      expect_equal_at_every_bar(batch.hist, h, what + " hist");
    }
    for (const auto& [period, up, down] : {std::tuple{20, 2.0, 2.0}, std::tuple{5, 1.5, 2.5}}) {
      const auto batch = gt::ind::bbands(b.close, period, up, down);
      inc::BbandsState state(period, up, down);
      std::vector<double> u, m, l;
      for (std::size_t t = 0; t < b.size(); ++t) {
        const auto v = state.update(b.close[t]);
        u.push_back(v.upper);
        m.push_back(v.middle);
        l.push_back(v.lower);
      }
      expect_equal_at_every_bar(batch.upper, u, "bb upper " + b.symbol);
      expect_equal_at_every_bar(batch.middle, m, "bb middle " + b.symbol);
      expect_equal_at_every_bar(batch.lower, l, "bb lower " + b.symbol);
    }
    for (const auto& [fastk, slowk, slowd] : {std::tuple{14, 3, 3}, std::tuple{5, 1, 4}}) {
      const auto batch = gt::ind::stoch(b.high, b.low, b.close, fastk, slowk, slowd);
      inc::StochState state(fastk, slowk, slowd);
      std::vector<double> k, d;
      for (std::size_t t = 0; t < b.size(); ++t) {
        const auto v = state.update(b.high[t], b.low[t], b.close[t]);
        k.push_back(v.k);
        d.push_back(v.d);
      }
      expect_equal_at_every_bar(batch.k, k, "stoch k " + b.symbol);
      expect_equal_at_every_bar(batch.d, d, "stoch d " + b.symbol);
    }
  }
}

TEST(Incremental, AnIndicatorOfAnIndicatorStartsAtItsInputsFirstDefinedValue) {
  // sma(rsi(close, 14), 10) as the rules compute it: the SMA over RSI's defined tail.
  const auto& b = all_files().front();
  const auto rsi = gt::ind::rsi(b.close, 14);
  const auto batch = gt::ind::sma(std::span<const double>(rsi).subspan(14), 10);
  inc::Rsi live_rsi(14);
  inc::FromDefined<inc::Sma> live_sma(10);
  for (std::size_t t = 0; t < b.size(); ++t) {
    const double v = live_sma.update(live_rsi.update(b.close[t]));
    if (t < 14 + 9)
      ASSERT_TRUE(std::isnan(v)) << t;
    else
      ASSERT_NEAR(v, batch[t - 14], 1e-9 * std::fabs(batch[t - 14])) << t;
  }
}

}  // namespace
