// SMA, EMA and WMA for many periods at once: eight periods run side by side in SIMD lanes, each
// lane doing exactly the operations of the one-period recurrence (detail.hpp) in the same order,
// so that the values are bit-identical to it. Each lane first runs alone, with that recurrence,
// up to the latest seed bar of its group; from there the lanes advance together.
#include <fmt/format.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <array>
#include <cstring>

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

// Lane state for the joint phase; unused lanes repeat lane 0 and write to a scratch row. The
// kernels keep the state in vector registers (GCC vector extensions) and store each lane's value
// to its own row; element-wise vector arithmetic rounds exactly as the scalar recurrence does.
using Lanes = double __attribute__((vector_size(kLanes * sizeof(double))));

// State in and out of the registers (by pointer: returning a vector by value would depend on
// each clone's ABI).
inline void load(Lanes* v, const std::array<double, kLanes>& a) {
  std::memcpy(v, a.data(), sizeof *v);
}
inline void store(const Lanes* v, std::array<double, kLanes>& a) {
  std::memcpy(a.data(), v, sizeof *v);
}

struct SmaState {
  alignas(64) std::array<double, kLanes> total, period;
  alignas(64) std::array<std::int64_t, kLanes> trailing;
};

__attribute__((target_clones("avx512f", "avx2", "default"))) void sma_lanes(const double* in, std::size_t from,
                                                                            std::size_t n, SmaState& s,
                                                                            double* const* out) {
  Lanes total, period;
  load(&total, s.total);
  load(&period, s.period);
  std::array<std::int64_t, kLanes> back{};  // i - trailing, constant per lane
  for (std::size_t l = 0; l < kLanes; ++l) back[l] = static_cast<std::int64_t>(from) - s.trailing[l];
  for (std::size_t i = from; i < n; ++i) {
    Lanes old;
    for (std::size_t l = 0; l < kLanes; ++l) old[l] = in[static_cast<std::int64_t>(i) - back[l]];
    total += in[i];
    const Lanes emitted = total;
    total -= old;
    const Lanes value = emitted / period;
    for (std::size_t l = 0; l < kLanes; ++l) out[l][i] = value[l];
  }
  store(&total, s.total);
  for (std::size_t l = 0; l < kLanes; ++l) s.trailing[l] = static_cast<std::int64_t>(n) - back[l];
}

struct EmaState {
  alignas(64) std::array<double, kLanes> prev, k;
};

__attribute__((target_clones("avx512f", "avx2", "default"))) void ema_lanes(const double* in, std::size_t from,
                                                                            std::size_t n, EmaState& s,
                                                                            double* const* out) {
  Lanes prev, k;
  load(&prev, s.prev);
  load(&k, s.k);
  for (std::size_t i = from; i < n; ++i) {
    prev = ((in[i] - prev) * k) + prev;
    for (std::size_t l = 0; l < kLanes; ++l) out[l][i] = prev[l];
  }
  store(&prev, s.prev);
}

struct WmaState {
  alignas(64) std::array<double, kLanes> sum, sub, trailing_value, period, divider;
  alignas(64) std::array<std::int64_t, kLanes> trailing;
};

__attribute__((target_clones("avx512f", "avx2", "default"))) void wma_lanes(const double* in, std::size_t from,
                                                                            std::size_t n, WmaState& s,
                                                                            double* const* out) {
  Lanes sum, sub, trailing_value, period, divider;
  load(&sum, s.sum);
  load(&sub, s.sub);
  load(&trailing_value, s.trailing_value);
  load(&period, s.period);
  load(&divider, s.divider);
  std::array<std::int64_t, kLanes> back{};
  for (std::size_t l = 0; l < kLanes; ++l) back[l] = static_cast<std::int64_t>(from) - s.trailing[l];
  for (std::size_t i = from; i < n; ++i) {
    const double v = in[i];
    sub += v;
    sub -= trailing_value;
    sum += v * period;
    for (std::size_t l = 0; l < kLanes; ++l) trailing_value[l] = in[static_cast<std::int64_t>(i) - back[l]];
    const Lanes value = sum / divider;
    for (std::size_t l = 0; l < kLanes; ++l) out[l][i] = value[l];
    sum -= sub;
  }
  store(&sum, s.sum);
  store(&sub, s.sub);
  store(&trailing_value, s.trailing_value);
  for (std::size_t l = 0; l < kLanes; ++l) s.trailing[l] = static_cast<std::int64_t>(n) - back[l];
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
