#include <fmt/format.h>

#include <algorithm>

#include "detail.hpp"
#include "gt/error.hpp"
#include "gt/incremental.hpp"

namespace gt::ind {
namespace detail {

void ema_from(std::span<const double> in, int period, double k, std::size_t first_out, double* out) {
  if (first_out >= in.size()) return;
  EmaRunning ema(in.data(), period, k, first_out);
  out[first_out] = ema.prev;
  for (std::size_t i = first_out + 1; i < in.size(); ++i) out[i] = ema.step(in[i]);
}

Series ma_of_tail(MaType type, std::span<const double> in, int period) {
  Series out = nan_series(in.size());
  const std::size_t start = first_valid(in);
  if (start >= in.size()) return out;
  const auto tail = in.subspan(start);
  if (period == 1) {  // TA_MA with period 1 is the identity
    std::copy(tail.begin(), tail.end(), out.begin() + static_cast<std::ptrdiff_t>(start));
    return out;
  }
  const Series inner = ma(type, tail, period);
  std::copy(inner.begin(), inner.end(), out.begin() + static_cast<std::ptrdiff_t>(start));
  return out;
}

}  // namespace detail

using detail::kNaN;

void check_period(std::string_view indicator, std::string_view parameter, int period, int min_period,
                  std::size_t bars) {
  if (period < min_period)
    throw ParamError(
        fmt::format("{}: {} = {} is out of range (allowed: {} to 100000)", indicator, parameter, period, min_period));
  if (static_cast<std::size_t>(period) > bars)
    throw ParamError(fmt::format("{}: {} = {} is longer than the data ({} bars)", indicator, parameter, period, bars));
}

int ma_lookback(MaType type, int period) {
  switch (type) {
    case MaType::kSma:
    case MaType::kEma:
    case MaType::kWma:
      return period - 1;
    case MaType::kDema:
      return 2 * (period - 1);
    case MaType::kTema:
      return 3 * (period - 1);
    case MaType::kKama:
      return period;
  }
  throw ParamError(
      fmt::format("unknown moving-average type {} (allowed: 0 SMA, 1 EMA, 2 WMA, 3 DEMA, "
                  "4 TEMA, 6 KAMA)",
                  static_cast<int>(type)));
}

Series sma(std::span<const double> in, int period) {
  const std::size_t n = in.size();
  Series out = detail::nan_series(n);
  const std::size_t p = static_cast<std::size_t>(period);
  if (period < 1 || n < p) return out;
  detail::SmaRunning sma(in.data(), period);
  for (std::size_t i = p - 1; i < n; ++i) out[i] = sma.step(i);
  return out;
}

Series ema(std::span<const double> in, int period) {
  Series out = detail::nan_series(in.size());
  if (period < 1 || in.size() < static_cast<std::size_t>(period)) return out;
  detail::ema_from(in, period, 2.0 / static_cast<double>(period + 1), static_cast<std::size_t>(period - 1), out.data());
  return out;
}

Series wma(std::span<const double> in, int period) {
  const std::size_t n = in.size();
  Series out = detail::nan_series(n);
  const std::size_t p = static_cast<std::size_t>(period);
  if (period < 1 || n < p) return out;
  detail::WmaRunning wma(in.data(), period);
  for (std::size_t i = p - 1; i < n; ++i) out[i] = wma.step(i);
  return out;
}

Series dema(std::span<const double> in, int period) {
  const Series e1 = ema(in, period);
  const Series e2 = detail::ma_of_tail(MaType::kEma, e1, period);
  Series out = detail::nan_series(in.size());
  for (std::size_t i = 0; i < in.size(); ++i)
    if (!std::isnan(e2[i])) out[i] = (2.0 * e1[i]) - e2[i];
  return out;
}

Series tema(std::span<const double> in, int period) {
  const Series e1 = ema(in, period);
  const Series e2 = detail::ma_of_tail(MaType::kEma, e1, period);
  const Series e3 = detail::ma_of_tail(MaType::kEma, e2, period);
  Series out = detail::nan_series(in.size());
  for (std::size_t i = 0; i < in.size(); ++i)
    if (!std::isnan(e3[i])) out[i] = e3[i] + ((3.0 * e1[i]) - (3.0 * e2[i]));
  return out;
}

Series kama(std::span<const double> in, int period) {
  const std::size_t n = in.size();
  Series out = detail::nan_series(n);
  if (period < 1 || n <= static_cast<std::size_t>(period)) return out;
  incremental::Kama state(period);
  for (std::size_t i = 0; i < n; ++i) out[i] = state.update(in[i]);
  return out;
}

Series ma(MaType type, std::span<const double> in, int period) {
  switch (type) {
    case MaType::kSma:
      return sma(in, period);
    case MaType::kEma:
      return ema(in, period);
    case MaType::kWma:
      return wma(in, period);
    case MaType::kDema:
      return dema(in, period);
    case MaType::kTema:
      return tema(in, period);
    case MaType::kKama:
      return kama(in, period);
  }
  ma_lookback(type, period);  // throws the message that lists the allowed types
  return {};
}

}  // namespace gt::ind
