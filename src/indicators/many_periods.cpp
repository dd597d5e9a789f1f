// SMA, EMA and WMA for many periods at once: eight periods run side by side in SIMD lanes, each
// lane doing exactly the operations of the one-period recurrence (detail.hpp) in the same order,
// so that the values are bit-identical to it. Each lane first runs alone, with that recurrence,
// up to the latest seed bar of its group; from there the lanes advance together.
#include <tbb/parallel_for.h>

#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "detail.hpp"
#include "gt/error.hpp"

namespace gt::ind {
namespace {

constexpr std::size_t kLanes = 8;

struct Group {
  std::size_t size = 0;
  std::array<int, kLanes> period{};
  std::array<double*, kLanes> out{};
};

// Lane state for the joint phase; unused lanes repeat lane 0 and write to a scratch row.
struct SmaState {
  alignas(64) std::array<double, kLanes> total, period;
  alignas(64) std::array<std::int64_t, kLanes> trailing;
};

__attribute__((target_clones("avx512f", "avx2", "default"))) void sma_lanes(const double* in, std::size_t from,
                                                                              std::size_t n, SmaState& s,
                                                                              double* const* out) {
  for (std::size_t i = from; i < n; ++i) {
    const double x = in[i];
    for (std::size_t l = 0; l < kLanes; ++l) {
      s.total[l] += x;
      const double emitted = s.total[l];
      s.total[l] -= in[s.trailing[l]++];
      out[l][i] = emitted / s.period[l];
    }
  }
}

struct EmaState {
  alignas(64) std::array<double, kLanes> prev, k;
};

__attribute__((target_clones("avx512f", "avx2", "default"))) void ema_lanes(const double* in, std::size_t from,
                                                                              std::size_t n, EmaState& s,
                                                                              double* const* out) {
  for (std::size_t i = from; i < n; ++i) {
    const double x = in[i];
    for (std::size_t l = 0; l < kLanes; ++l) {
      s.prev[l] = ((x - s.prev[l]) * s.k[l]) + s.prev[l];
      out[l][i] = s.prev[l];
    }
  }
}

struct WmaState {
  alignas(64) std::array<double, kLanes> sum, sub, trailing_value, period, divider;
  alignas(64) std::array<std::int64_t, kLanes> trailing;
};

__attribute__((target_clones("avx512f", "avx2", "default"))) void wma_lanes(const double* in, std::size_t from,
                                                                              std::size_t n, WmaState& s,
                                                                              double* const* out) {
  for (std::size_t i = from; i < n; ++i) {
    const double v = in[i];
    for (std::size_t l = 0; l < kLanes; ++l) {
      s.sub[l] += v;
      s.sub[l] -= s.trailing_value[l];
      s.sum[l] += v * s.period[l];
      s.trailing_value[l] = in[s.trailing[l]++];
      out[l][i] = s.sum[l] / s.divider[l];
      s.sum[l] -= s.sub[l];
    }
  }
}

// Runs one group: the scalar prefix of each lane up to `join` (exclusive), then the lanes.
void run_group(MaType type, std::span<const double> in, const Group& g, std::vector<double>& scratch) {
  // Lanes beyond the group's size compute lane 0 again into a scratch row.
  const std::size_t n = in.size();
  std::size_t join = 0;
  for (std::size_t l = 0; l < g.size; ++l) join = std::max(join, static_cast<std::size_t>(g.period[l]));
  // Lanes whose seed lies beyond the data are computed by the one-period function.
  if (join > n) {
    for (std::size_t l = 0; l < g.size; ++l) {
      const Series s = ma(type, in, g.period[l]);
      std::copy(s.begin(), s.end(), g.out[l]);
    }
    return;
  }
  if (g.size < kLanes) scratch.resize(n);
  std::array<double*, kLanes> out{};
  std::array<int, kLanes> period{};
  for (std::size_t l = 0; l < kLanes; ++l) {
    out[l] = l < g.size ? g.out[l] : scratch.data();
    period[l] = l < g.size ? g.period[l] : g.period[0];
  }
  for (std::size_t l = 0; l < kLanes; ++l)
    std::fill(out[l], out[l] + std::min<std::size_t>(n, static_cast<std::size_t>(period[l] - 1)), detail::kNaN);
  // Every lane's first output is at period-1 <= join-1; the joint phase starts at `join`.
  switch (type) {
    case MaType::kSma: {
      SmaState s{};
      for (std::size_t l = 0; l < kLanes; ++l) {
        detail::SmaRunning sma(in.data(), period[l]);
        for (std::size_t i = static_cast<std::size_t>(period[l] - 1); i < join; ++i) out[l][i] = sma.step(i);
        s.total[l] = sma.total;
        s.period[l] = period[l];
        s.trailing[l] = static_cast<std::int64_t>(sma.trailing);
      }
      sma_lanes(in.data(), join, n, s, out.data());
      break;
    }
    case MaType::kEma: {
      EmaState s{};
      for (std::size_t l = 0; l < kLanes; ++l) {
        const auto first = static_cast<std::size_t>(period[l] - 1);
        detail::EmaRunning ema(in.data(), period[l], 2.0 / static_cast<double>(period[l] + 1), first);
        out[l][first] = ema.prev;
        for (std::size_t i = first + 1; i < join; ++i) out[l][i] = ema.step(in[i]);
        s.prev[l] = ema.prev;
        s.k[l] = ema.k;
      }
      ema_lanes(in.data(), join, n, s, out.data());
      break;
    }
    case MaType::kWma: {
      WmaState s{};
      for (std::size_t l = 0; l < kLanes; ++l) {
        detail::WmaRunning wma(in.data(), period[l]);
        for (std::size_t i = static_cast<std::size_t>(period[l] - 1); i < join; ++i) out[l][i] = wma.step(i);
        s.sum[l] = wma.sum;
        s.sub[l] = wma.sub;
        s.trailing_value[l] = wma.trailing_value;
        s.period[l] = wma.period;
        s.divider[l] = wma.divider;
        s.trailing[l] = static_cast<std::int64_t>(wma.trailing);
      }
      wma_lanes(in.data(), join, n, s, out.data());
      break;
    }
    default:
      break;
  }
}

}  // namespace

void ma_many_into(MaType type, std::span<const double> in, std::span<const int> periods, double* out,
                  std::size_t row_stride) {
  ma_lookback(type, 1);  // reject an unknown type before any thread starts
  for (int p : periods)
    if (p < 1) throw ParamError(fmt::format("moving average: period = {} is out of range (allowed: >= 1)", p));
  const bool laned = type == MaType::kSma || type == MaType::kEma || type == MaType::kWma;
  if (!laned) {
    tbb::parallel_for(std::size_t{0}, periods.size(), [&](std::size_t r) {
      const Series s = ma(type, in, periods[r]);
      std::copy(s.begin(), s.end(), out + r * row_stride);
    });
    return;
  }
  // Neighbouring periods share a group, so that their lanes join early.
  std::vector<std::size_t> order(periods.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return periods[a] < periods[b]; });
  const std::size_t groups = (order.size() + kLanes - 1) / kLanes;
  tbb::parallel_for(std::size_t{0}, groups, [&](std::size_t gi) {
    Group g;
    for (std::size_t j = gi * kLanes; j < std::min(order.size(), (gi + 1) * kLanes); ++j) {
      g.period[g.size] = periods[order[j]];
      g.out[g.size] = out + order[j] * row_stride;
      ++g.size;
    }
    std::vector<double> scratch;
    run_group(type, in, g, scratch);
  });
}

SeriesMatrix ma_many(MaType type, std::span<const double> in, std::span<const int> periods) {
  SeriesMatrix m;
  m.rows = periods.size();
  m.cols = in.size();
  m.values.resize(m.rows * m.cols);
  ma_many_into(type, in, periods, m.values.data(), m.cols);
  return m;
}

}  // namespace gt::ind
