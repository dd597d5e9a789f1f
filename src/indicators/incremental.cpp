// Incremental indicators (gt/incremental.hpp): TA-Lib's recurrences one bar at a time, in TA-Lib's
// order of operations (the SMA's and WMA's from detail.hpp, which the batch functions use too).
#include "gt/incremental.hpp"

#include <cmath>
#include <variant>

#include "detail.hpp"

namespace gt::ind::incremental {

using detail::kNaN;
using detail::true_range;

Sma::Sma(int period) : period_(period), window_(static_cast<std::size_t>(period)) {}

double Sma::update(double x) {
  window_.push(x);
  const auto p = static_cast<std::size_t>(period_);
  if (window_.count() < p) {
    total_ += x;
    return kNaN;
  }
  detail::SmaCore core{period_, total_};
  const double out = core.advance(x, window_.ago(p - 1));
  total_ = core.total;
  return out;
}

Ema::Ema(int period, std::size_t first_out)
    : period_(period),
      first_out_(first_out == SIZE_MAX ? static_cast<std::size_t>(period - 1) : first_out),
      k_(2.0 / static_cast<double>(period + 1)),
      window_(static_cast<std::size_t>(period)) {}

double Ema::update(double x) {
  const std::size_t i = seen_++;
  if (i < first_out_) {
    window_.push(x);
    return kNaN;
  }
  if (i == first_out_) {  // the seed: the SMA of the `period` values ending here, oldest first
    window_.push(x);
    double sum = 0.0;
    for (std::size_t back = static_cast<std::size_t>(period_); back-- > 0;) sum += window_.ago(back);
    prev_ = sum / period_;
    return prev_;
  }
  detail::EmaRunning ema(prev_, k_);
  prev_ = ema.step(x);
  return prev_;
}

Wma::Wma(int period)
    : period_(period),
      divider_(static_cast<double>((period * (period + 1)) >> 1)),
      window_(static_cast<std::size_t>(period)) {}

double Wma::update(double x) {
  const auto p = static_cast<std::size_t>(period_);
  detail::WmaCore core(period_);
  core.sum = sum_;
  core.sub = sub_;
  const std::size_t i = window_.count();
  double out = kNaN;
  if (i + 1 < p)
    core.prime(x, i);
  else
    out = core.advance(x, i + 1 == p ? 0.0 : window_.ago(p - 1));  // the value `period` before x
  window_.push(x);
  sum_ = core.sum;
  sub_ = core.sub;
  return out;
}

double Dema::update(double x) {
  const double e1 = e1_.update(x);
  const double e2 = e2_.update(e1);
  return std::isnan(e2) ? kNaN : (2.0 * e1) - e2;
}

double Tema::update(double x) {
  const double e1 = e1_.update(x);
  const double e2 = e2_.update(e1);
  const double e3 = e3_.update(e2);
  return std::isnan(e3) ? kNaN : e3 + ((3.0 * e1) - (3.0 * e2));
}

Kama::Kama(int period) : period_(period), window_(static_cast<std::size_t>(period) + 1) {}

double Kama::update(double x) {
  const auto p = static_cast<std::size_t>(period_);
  const std::size_t i = window_.count();
  const double before = i > 0 ? window_.ago(0) : 0.0;
  window_.push(x);
  if (i >= 1 && i <= p) sum_roc1_ += std::fabs(before - x);
  if (i < p) return kNaN;
  constexpr double kConstMax = 2.0 / (30.0 + 1.0);
  constexpr double kConstDiff = 2.0 / (2.0 + 1.0) - kConstMax;
  const auto smoothing = [&](double period_roc) {
    double er = (sum_roc1_ <= period_roc || detail::is_zero(sum_roc1_)) ? 1.0 : std::fabs(period_roc / sum_roc1_);
    er = er * kConstDiff + kConstMax;
    return er * er;
  };
  if (i == p) {  // TA-Lib's first value: from the value before, against the first input
    prev_ = before;
    trailing_value_ = window_.ago(p);
    prev_ = (x - prev_) * smoothing(x - trailing_value_) + prev_;
    return prev_;
  }
  const double old = window_.ago(p);  // the input `period` bars before x
  sum_roc1_ -= std::fabs(trailing_value_ - old);
  sum_roc1_ += std::fabs(x - before);
  trailing_value_ = old;
  prev_ = (x - prev_) * smoothing(x - old) + prev_;
  return prev_;
}

struct Ma::Impl {
  std::variant<Sma, Ema, Wma, Dema, Tema, Kama> ma;
};

Ma::Ma(MaType type, int period) {
  ma_lookback(type, period);  // an unknown type: the message that lists the allowed ones
  switch (type) {
    case MaType::kSma:
      impl_.reset(new Impl{Sma(period)});
      break;
    case MaType::kEma:
      impl_.reset(new Impl{Ema(period)});
      break;
    case MaType::kWma:
      impl_.reset(new Impl{Wma(period)});
      break;
    case MaType::kDema:
      impl_.reset(new Impl{Dema(period)});
      break;
    case MaType::kTema:
      impl_.reset(new Impl{Tema(period)});
      break;
    case MaType::kKama:
      impl_.reset(new Impl{Kama(period)});
      break;
  }
}
Ma::Ma(Ma&&) noexcept = default;
Ma& Ma::operator=(Ma&&) noexcept = default;
Ma::~Ma() = default;

double Ma::update(double x) {
  return std::visit([x](auto& ma) { return ma.update(x); }, impl_->ma);
}

double Rsi::update(double x) {
  const std::size_t i = seen_++;
  if (i == 0) {
    prev_ = x;
    return kNaN;
  }
  const double move = x - prev_;
  prev_ = x;
  const auto p = static_cast<std::size_t>(period_);
  if (i > p) {
    loss_ *= (period_ - 1);
    gain_ *= (period_ - 1);
  }
  if (move < 0)
    loss_ -= move;
  else
    gain_ += move;
  if (i < p) return kNaN;
  loss_ /= period_;
  gain_ /= period_;
  const double total = gain_ + loss_;
  return detail::is_zero(total) ? 0.0 : 100.0 * (gain_ / total);
}

double Roc::update(double x) {
  window_.push(x);
  const auto p = static_cast<std::size_t>(period_);
  if (window_.count() <= p) return kNaN;
  const double base = window_.ago(p);
  return base != 0.0 ? ((x / base) - 1.0) * 100.0 : 0.0;
}

double Atr::update(double high, double low, double close) {
  const std::size_t i = seen_++;
  const double prev_close = prev_close_;
  prev_close_ = close;
  if (i == 0) return kNaN;
  const double range = true_range(high, low, prev_close);
  if (period_ == 1) return range;  // TA-Lib returns the true range itself
  const auto p = static_cast<std::size_t>(period_);
  if (i < p) {
    total_ += range;
    return kNaN;
  }
  if (i == p) {  // the SMA of the first `period` true ranges, then Wilder smoothing
    total_ += range;
    prev_ = total_ / period_;
    return prev_;
  }
  prev_ *= period_ - 1;
  prev_ += range;
  prev_ /= period_;
  return prev_;
}

void Adx::step(double high, double low, double close, bool smooth) {
  const double diff_p = high - prev_high_;
  prev_high_ = high;
  const double diff_m = prev_low_ - low;
  prev_low_ = low;
  if (smooth) {
    minus_dm_ -= minus_dm_ / period_;
    plus_dm_ -= plus_dm_ / period_;
  }
  if (diff_m > 0 && diff_p < diff_m)
    minus_dm_ += diff_m;
  else if (diff_p > 0 && diff_p > diff_m)
    plus_dm_ += diff_p;
  const double range = true_range(prev_high_, prev_low_, prev_close_);
  tr_ = smooth ? tr_ - tr_ / period_ + range : tr_ + range;
  prev_close_ = close;
}

// DX of the current state, or a negative value where TA-Lib leaves the ADX unchanged.
double Adx::dx() const {
  if (detail::is_zero(tr_)) return -1.0;
  const double minus_di = 100.0 * (minus_dm_ / tr_);
  const double plus_di = 100.0 * (plus_dm_ / tr_);
  const double sum = minus_di + plus_di;
  if (detail::is_zero(sum)) return -1.0;
  return 100.0 * (std::fabs(minus_di - plus_di) / sum);
}

double Adx::update(double high, double low, double close) {
  const std::size_t i = seen_++;
  const auto p = static_cast<std::size_t>(period_);
  if (i == 0) {
    prev_high_ = high;
    prev_low_ = low;
    prev_close_ = close;
    return kNaN;
  }
  if (i < p) {  // the first period - 1 moves, summed
    step(high, low, close, false);
    return kNaN;
  }
  step(high, low, close, true);
  const double v = dx();
  if (i < 2 * p - 1) {
    if (v >= 0) sum_dx_ += v;
    return kNaN;
  }
  if (i == 2 * p - 1) {
    if (v >= 0) sum_dx_ += v;
    adx_ = sum_dx_ / period_;
    return adx_;
  }
  if (v >= 0) adx_ = (adx_ * (period_ - 1) + v) / period_;
  return adx_;
}

double Obv::update(double close, double volume) {
  if (!started_) {  // TA-Lib starts the running total at the first bar's volume, not at zero
    started_ = true;
    total_ = volume;
  } else if (close > prev_) {
    total_ += volume;
  } else if (close < prev_) {
    total_ -= volume;
  }
  prev_ = close;
  return total_;
}

// Both EMAs start where the slow one does, the fast one seeded with the SMA of the `fast` values
// ending there (TA-Lib's MACD, not a standalone EMA of the whole series).
MacdState::MacdState(int fast, int slow, int signal)
    : fast_(std::min(fast, slow), static_cast<std::size_t>(std::max(fast, slow) - 1)),
      slow_(std::max(fast, slow)),
      signal_(signal) {}

MacdValue MacdState::update(double x) {
  const double fast = fast_.update(x), slow = slow_.update(x);
  const double line = std::isnan(slow) ? kNaN : fast - slow;
  const double signal = signal_.update(line);
  if (std::isnan(signal)) return {kNaN, kNaN, kNaN};
  return {line, signal, line - signal};
}

BbandsState::BbandsState(int period, double nbdev_up, double nbdev_down)
    : period_(period), up_(nbdev_up), down_(nbdev_down), middle_(period), window_(static_cast<std::size_t>(period)) {}

// Population deviation as TA-Lib computes it: mean of squares minus the squared SMA, from a
// running sum of squares, floored to zero below 1e-8.
BandsValue BbandsState::update(double x) {
  const double mid = middle_.update(x);
  window_.push(x);
  const auto p = static_cast<std::size_t>(period_);
  total2_ += x * x;
  if (window_.count() < p) return {kNaN, kNaN, kNaN};
  double variance = total2_ / period_;
  const double oldest = window_.ago(p - 1);
  total2_ -= oldest * oldest;
  variance -= mid * mid;
  const double dev = detail::is_zero_or_neg(variance) ? 0.0 : std::sqrt(variance);
  if (up_ == down_) {
    const double width = dev * up_;
    return {mid + width, mid, mid - width};
  }
  return {mid + dev * up_, mid, mid - dev * down_};
}

double Extreme::update(double x) {
  const std::size_t t = t_++;
  if (std::isnan(x)) {
    last_undefined_ = static_cast<std::int64_t>(t);
    window_.clear();
    return kNaN;
  }
  while (!window_.empty() && (highest_ ? window_.back().second <= x : window_.back().second >= x)) window_.pop_back();
  window_.emplace_back(t, x);
  while (window_.front().first + period_ <= t) window_.pop_front();
  if (t + 1 >= period_ && static_cast<std::int64_t>(t + 1 - period_) > last_undefined_) return window_.front().second;
  return kNaN;
}

StochState::StochState(int fastk, int slowk, int slowd)
    : highest_(fastk, true), lowest_(fastk, false), k_(slowk), d_(slowd) {}

// Raw %K from the window's extremes with TA-Lib's (range / 100) divisor, then its two SMAs.
StochValue StochState::update(double high, double low, double close) {
  const double highest = highest_.update(high), lowest = lowest_.update(low);
  double raw = kNaN;
  if (!std::isnan(highest)) {
    const double diff = (highest - lowest) / 100.0;
    raw = diff != 0.0 ? (close - lowest) / diff : 0.0;
  }
  const double k = k_.update(raw);
  const double d = d_.update(k);
  if (std::isnan(d)) return {kNaN, kNaN};
  return {k, d};
}

}  // namespace gt::ind::incremental
