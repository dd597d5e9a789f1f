// Rules (docs/SEMANTICS.md "Rules") on six hand-made bars: what each expression makes of them, bar
// by bar, with undefined values in three-valued logic. Each case: an entry rule, then the bars on
// which it is true (a long entry), computed by hand.
#include "gt/rules.hpp"

#include <gtest/gtest.h>

#include "gt/backtest.hpp"
#include "gt/data.hpp"
#include "gt/error.hpp"

namespace {

gt::Bars six_bars() {
  gt::Bars b;
  b.symbol = "hand";
  const double closes[] = {10, 11, 9, 12, 12, 8};
  for (int t = 0; t < 6; ++t) {
    b.time.push_back(86400 * (t + 1));
    b.open.push_back(closes[t]);
    b.high.push_back(closes[t] + 1);
    b.low.push_back(closes[t] - 1);
    b.close.push_back(closes[t]);
    b.volume.push_back(100);
  }
  return b;
}

std::string entries(const std::string& rule) {
  gt::rules::RuleTexts r;
  r.entry = rule;
  r.exit = "close < 0";
  const auto strategy = gt::rules::compile(r);
  const gt::Bars bars = six_bars();
  std::vector<std::uint8_t> out(bars.size());
  gt::SeriesCache cache;
  strategy->signals(bars, {}, out, cache);
  std::string bits;
  for (const auto e : out) bits += (e & gt::kLongEntry) ? '1' : '.';
  return bits;
}

TEST(Rules, ComparisonsWithAnUndefinedSideAreUndefinedAndNotActedOn) {
  EXPECT_EQ(entries("close > close[1]"), ".1.1..");
  EXPECT_EQ(entries("not (close > close[1])"), "..1.11");  // not keeps undefined
}

TEST(Rules, AndIsFalseWhenEitherSideIsFalseOrIsTrueWhenEitherSideIsTrue) {
  EXPECT_EQ(entries("close > close[1] or true"), "111111");
  EXPECT_EQ(entries("close > close[1] and false"), "......");
  EXPECT_EQ(entries("close > close[1] or close > 100"), ".1.1..");
  EXPECT_EQ(entries("close[2] > 0 and close > 0"), "..1111");
}

TEST(Rules, DivisionByZeroIsUndefinedNotACrash) {
  EXPECT_EQ(entries("close / (close - close) > 0 or close / (close - close) <= 0"), "......");
}

TEST(Rules, HighestAndLowestCoverTheNBarsEndingAtT) {
  EXPECT_EQ(entries("highest(close, 2) == close"), ".1.11.");
  EXPECT_EQ(entries("lowest(close, 3) == close"), "..1..1");
}

TEST(Rules, CrossesAreTheMaCrossEvents) {
  EXPECT_EQ(entries("cross_above(close, 10.5)"), ".1.1..");
  EXPECT_EQ(entries("cross_below(close, 10.5)"), "..1..1");
}

TEST(Rules, ConstraintsAreConditionsOverParameters) {
  gt::rules::RuleTexts r;
  r.params = {{"fast", gt::ParamType::kInt, 2, 100, 5, ""}, {"slow", gt::ParamType::kInt, 2, 100, 20, ""}};
  r.entry = "cross_above(sma(close, fast), sma(close, slow))";
  r.exit = "cross_below(sma(close, fast), sma(close, slow))";
  r.constraints = {"fast < slow"};
  const auto s = gt::rules::compile(r);
  const double ok[] = {5, 20}, bad[] = {20, 5};
  EXPECT_TRUE(s->constraint.holds(ok));
  EXPECT_FALSE(s->constraint.holds(bad));
  EXPECT_EQ(s->constraint.explain(bad), "fast = 20 must be below slow = 5");  // a comparison, in words
  r.constraints = {"fast * 2 <= slow"};
  EXPECT_EQ(gt::rules::compile(r)->constraint.explain(bad),
            "constraint 'fast * 2 <= slow' does not hold (fast=20 slow=5)");
  r.constraints = {"close < slow"};
  EXPECT_THROW(gt::rules::compile(r), gt::ParamError);
}

TEST(Rules, TheCanonicalTextIdentifiesTheRulesWhateverTheirSpacing) {
  gt::rules::RuleTexts a, b;
  a.entry = "close>close[1] and  volume>0";
  b.entry = "(close > close[1]) and (volume > 0)";
  a.exit = b.exit = "close < 0";
  EXPECT_EQ(gt::rules::canonical_text(a), gt::rules::canonical_text(b));
  EXPECT_EQ(gt::rules::compile(a)->signal_identity, gt::rules::canonical_text(a));
}

TEST(Rules, SyntaxErrorsPointAtTheirColumn) {
  gt::rules::RuleTexts r;
  r.entry = "close > ";
  r.exit = "close < 0";
  try {
    gt::rules::compile(r);
    FAIL() << "no error";
  } catch (const gt::ParamError& e) {
    EXPECT_NE(std::string(e.what()).find("the expression ends early"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("\n  close > \n          ^"), std::string::npos) << e.what();
  }
}

}  // namespace
