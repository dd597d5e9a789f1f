// Indicators updated bar by bar (docs/SEMANTICS.md "Live signals"): each update() takes the next
// bar's values and returns the indicator at that bar, NaN within its lookback, in O(1) (the
// window extremes: O(1) amortized). The batch functions of gt/indicators.hpp run the same states
// or the same recurrences, so a value computed as bars arrive equals the one computed from a file.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <utility>
#include <vector>

#include "gt/indicators.hpp"

namespace gt::ind::incremental {

// The last `size` values pushed, the oldest first out.
class Window {
 public:
  explicit Window(std::size_t size) : values_(size) {}
  void push(double x) {
    values_[head_] = x;
    head_ = head_ + 1 == values_.size() ? 0 : head_ + 1;
    ++count_;
  }
  std::size_t count() const { return count_; }  // pushes so far
  // The value pushed `back` pushes before the last (0: the last); back < size and < count.
  double ago(std::size_t back) const {
    const std::size_t n = values_.size();
    return values_[(head_ + n - 1 - back % n) % n];
  }

 private:
  std::vector<double> values_;
  std::size_t head_ = 0, count_ = 0;
};

class Sma {
 public:
  explicit Sma(int period);
  double update(double x);

 private:
  int period_;
  double total_ = 0.0;
  Window window_;
};

// TA-Lib's EMA: seeded with the SMA of the `period` values ending at input `first_out` (period - 1
// unless a composite such as MACD starts it later).
class Ema {
 public:
  explicit Ema(int period, std::size_t first_out = SIZE_MAX);
  double update(double x);
  double smoothing() const { return k_; }

 private:
  int period_;
  std::size_t first_out_, seen_ = 0;
  double k_, prev_ = 0.0;
  Window window_;
};

class Wma {
 public:
  explicit Wma(int period);
  double update(double x);

 private:
  int period_;
  double sum_ = 0.0, sub_ = 0.0, divider_;
  Window window_;
};

// An indicator fed from its input's first defined value on (as TA-Lib's composites run their
// inner stage over the valid tail): the inner stage of DEMA, TEMA, STOCH and MACD's signal.
template <class Inner>
class FromDefined {
 public:
  template <class... Args>
  explicit FromDefined(Args... args) : inner_(args...) {}
  double update(double x) {
    if (!started_ && std::isnan(x)) return x;
    started_ = true;
    return inner_.update(x);
  }

 private:
  Inner inner_;
  bool started_ = false;
};

class Dema {
 public:
  explicit Dema(int period) : e1_(period), e2_(period) {}
  double update(double x);

 private:
  Ema e1_;
  FromDefined<Ema> e2_;
};

class Tema {
 public:
  explicit Tema(int period) : e1_(period), e2_(period), e3_(period) {}
  double update(double x);

 private:
  Ema e1_;
  FromDefined<Ema> e2_, e3_;
};

class Kama {
 public:
  explicit Kama(int period);
  double update(double x);

 private:
  int period_;
  double sum_roc1_ = 0.0, prev_ = 0.0, trailing_value_ = 0.0;
  Window window_;  // the last period + 1 inputs
};

// Any of TA-Lib's moving averages by MAType.
class Ma {
 public:
  Ma(MaType type, int period);
  Ma(Ma&&) noexcept;
  Ma& operator=(Ma&&) noexcept;
  ~Ma();
  double update(double x);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class Rsi {
 public:
  explicit Rsi(int period) : period_(period) {}
  double update(double x);

 private:
  int period_;
  std::size_t seen_ = 0;
  double gain_ = 0.0, loss_ = 0.0, prev_ = 0.0;
};

class Roc {
 public:
  explicit Roc(int period) : period_(period), window_(static_cast<std::size_t>(period) + 1) {}
  double update(double x);

 private:
  int period_;
  Window window_;
};

class Atr {
 public:
  explicit Atr(int period) : period_(period) {}
  double update(double high, double low, double close);

 private:
  int period_;
  std::size_t seen_ = 0;
  double total_ = 0.0, prev_ = 0.0, prev_close_ = 0.0;
};

class Adx {
 public:
  explicit Adx(int period) : period_(period) {}
  double update(double high, double low, double close);

 private:
  void step(double high, double low, double close, bool smooth);
  double dx() const;
  int period_;
  std::size_t seen_ = 0;
  double minus_dm_ = 0.0, plus_dm_ = 0.0, tr_ = 0.0, sum_dx_ = 0.0, adx_ = 0.0;
  double prev_high_ = 0.0, prev_low_ = 0.0, prev_close_ = 0.0;
};

class Obv {
 public:
  double update(double close, double volume);

 private:
  bool started_ = false;
  double total_ = 0.0, prev_ = 0.0;
};

struct MacdValue {
  double macd, signal, hist;
};
class MacdState {
 public:
  MacdState(int fast, int slow, int signal);
  MacdValue update(double x);

 private:
  Ema fast_, slow_;
  FromDefined<Ema> signal_;
};

struct BandsValue {
  double upper, middle, lower;
};
class BbandsState {
 public:
  BbandsState(int period, double nbdev_up, double nbdev_down);
  BandsValue update(double x);

 private:
  int period_;
  double up_, down_, total2_ = 0.0;
  Sma middle_;
  Window window_;
};

// The highest or lowest of the last `period` values; NaN where one of them is.
class Extreme {
 public:
  Extreme(int period, bool highest) : period_(static_cast<std::size_t>(period)), highest_(highest) {}
  double update(double x);

 private:
  std::size_t period_;
  bool highest_;
  std::size_t t_ = 0;
  std::int64_t last_undefined_ = -1;
  std::deque<std::pair<std::size_t, double>> window_;  // (bar, value), monotone
};

struct StochValue {
  double k, d;
};
class StochState {
 public:
  StochState(int fastk, int slowk, int slowd);
  StochValue update(double high, double low, double close);

 private:
  Extreme highest_, lowest_;
  FromDefined<Sma> k_;
  FromDefined<Sma> d_;
};

}  // namespace gt::ind::incremental
