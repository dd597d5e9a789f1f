// SMA, EMA and WMA for many periods at once: eight periods run side by side in SIMD lanes, each
// lane doing exactly the operations of the one-period recurrence (detail.hpp) in the same order,
// so that the values are bit-identical to it. Each lane first runs alone, with that recurrence,
// up to the latest seed bar of its group; from there the lanes advance together.
#include <fmt/format.h>
#include <immintrin.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <array>
#include <cmath>
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
  std::array<MaResume*, kLanes> resume{};  // each lane's row of resume points, or all null
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

struct EmaState {
  alignas(64) std::array<double, kLanes> prev, k;
};

struct WmaState {
  alignas(64) std::array<double, kLanes> sum, sub, trailing_value, period, divider;
  alignas(64) std::array<std::int64_t, kLanes> trailing;
};

// The kernels advance eight bars at a time: each lane's eight inputs leaving the window are one
// load from its own place in the input, turned into eight per-bar vectors, and the eight per-bar
// results are turned back into one store per lane (a scalar load and store per lane and bar cost
// more than the arithmetic).
using LaneIndex = std::int64_t __attribute__((vector_size(kLanes * sizeof(std::int64_t))));

// Rows become columns: afterwards r[j][l] holds what r[l][j] held.
inline void transpose(Lanes (&r)[kLanes]) {
  Lanes t[kLanes], u[kLanes];
  for (std::size_t q = 0; q < kLanes; q += 2) {
    t[q] = __builtin_shuffle(r[q], r[q + 1], LaneIndex{0, 8, 2, 10, 4, 12, 6, 14});
    t[q + 1] = __builtin_shuffle(r[q], r[q + 1], LaneIndex{1, 9, 3, 11, 5, 13, 7, 15});
  }
  for (std::size_t q = 0; q < kLanes; q += 4) {
    u[q] = __builtin_shuffle(t[q], t[q + 2], LaneIndex{0, 1, 8, 9, 4, 5, 12, 13});
    u[q + 1] = __builtin_shuffle(t[q + 1], t[q + 3], LaneIndex{0, 1, 8, 9, 4, 5, 12, 13});
    u[q + 2] = __builtin_shuffle(t[q], t[q + 2], LaneIndex{2, 3, 10, 11, 6, 7, 14, 15});
    u[q + 3] = __builtin_shuffle(t[q + 1], t[q + 3], LaneIndex{2, 3, 10, 11, 6, 7, 14, 15});
  }
  for (std::size_t k = 0; k < kLanes / 2; ++k) {
    r[k] = __builtin_shuffle(u[k], u[k + 4], LaneIndex{0, 1, 2, 3, 8, 9, 10, 11});
    r[k + 4] = __builtin_shuffle(u[k], u[k + 4], LaneIndex{4, 5, 6, 7, 12, 13, 14, 15});
  }
}

// Eight consecutive values from each lane's own offset into `in`, as per-bar vectors.
inline void load_columns(const double* in, std::size_t i, const std::array<std::int64_t, kLanes>& back,
                         Lanes (&columns)[kLanes]) {
  for (std::size_t l = 0; l < kLanes; ++l)
    std::memcpy(&columns[l], in + (static_cast<std::int64_t>(i) - back[l]), sizeof(Lanes));
  transpose(columns);
}

// Eight per-bar vectors stored as eight consecutive values of each lane's row, from bar i.
inline void store_rows(Lanes (&values)[kLanes], double* const* out, std::size_t i) {
  transpose(values);
  for (std::size_t l = 0; l < kLanes; ++l) std::memcpy(out[l] + i, &values[l], sizeof(Lanes));
}

inline void store_one(const Lanes& value, double* const* out, std::size_t i) {
  for (std::size_t l = 0; l < kLanes; ++l) out[l][i] = value[l];
}

}  // namespace

// The kernels (many_periods_kernels.inc) are compiled twice, differing only in how a lane's value
// is divided by its period or divider. Both give the correctly rounded quotient, as the one-period
// recurrence's division does, so the values are the same in every bit.
namespace fused_division {
namespace {
#define GT_LANES_KERNEL __attribute__((target("avx512f,fma")))
#define GT_LANES_INLINE __attribute__((target("avx512f,fma"), always_inline)) inline
// The division unit takes 16 cycles a vector of eight; a product with the rounded reciprocal,
// corrected once by fused multiply-adds, takes three operations and is the correctly rounded
// quotient (Markstein's theorem: y = RN(1/b), q within an ulp of a/b, then r = a - b*q is exact
// and RN(q + r*y) = RN(a/b)), wherever q is normal and finite. Zeros, infinities, NaN and the
// subnormal range take the division.
GT_LANES_INLINE void quotient(const Lanes& a, const Lanes& b, const Lanes& inverse, Lanes& out) {
  const __m512d q = _mm512_mul_pd(__m512d(a), __m512d(inverse));
  const __m512d magnitude = _mm512_abs_pd(q);
  const __mmask8 normal = _mm512_cmp_pd_mask(magnitude, _mm512_set1_pd(0x1p-960), _CMP_GE_OQ) &
                          _mm512_cmp_pd_mask(magnitude, _mm512_set1_pd(HUGE_VAL), _CMP_LT_OQ);
  if (normal != 0xFF) {
    out = a / b;
    return;
  }
  const __m512d r = _mm512_fnmadd_pd(q, __m512d(b), __m512d(a));
  out = Lanes(_mm512_fmadd_pd(r, __m512d(inverse), q));
}
#include "many_periods_kernels.inc"
#undef GT_LANES_KERNEL
#undef GT_LANES_INLINE
}  // namespace
}  // namespace fused_division

namespace divided {
namespace {
#define GT_LANES_KERNEL __attribute__((target_clones("avx2", "default")))
#define GT_LANES_INLINE inline
GT_LANES_INLINE void quotient(const Lanes& a, const Lanes& b, const Lanes&, Lanes& out) {
  out = a / b;
}
#include "many_periods_kernels.inc"
#undef GT_LANES_KERNEL
#undef GT_LANES_INLINE
}  // namespace
}  // namespace divided

namespace {

bool& fused_division_off() {
  static bool off = false;
  return off;
}

bool fused_division_runs() {
  static const bool cpu = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
  }();
  return cpu && !fused_division_off();
}

void sma_lanes(const double* in, std::size_t from, std::size_t n, SmaState& s, double* const* out,
               MaResume* const* resume) {
  (fused_division_runs() ? fused_division::sma_lanes : divided::sma_lanes)(in, from, n, s, out, resume);
}
void ema_lanes(const double* in, std::size_t from, std::size_t n, EmaState& s, double* const* out,
               MaResume* const* resume) {
  (fused_division_runs() ? fused_division::ema_lanes : divided::ema_lanes)(in, from, n, s, out, resume);
}
void wma_lanes(const double* in, std::size_t from, std::size_t n, WmaState& s, double* const* out,
               MaResume* const* resume) {
  (fused_division_runs() ? fused_division::wma_lanes : divided::wma_lanes)(in, from, n, s, out, resume);
}

// A lane's state before bar i into its resume point, where i starts a stride or is the lane's
// first value (the point of the stride holding it).
void record_one(MaResume* resume, std::size_t i, std::size_t first, double a, double b) {
  if (resume != nullptr && (i % kResumeStride == 0 || i == first)) resume[i / kResumeStride] = {a, b};
}

// What asking for the resume points of another average throws.
ParamError no_resume_points(MaType type) {
  return ParamError(fmt::format("moving average type {}: resume points are kept for SMA (0), EMA (1) and WMA (2) only",
                                static_cast<int>(type)));
}

// Runs one group: the scalar prefix of each lane up to `join` (exclusive), then the lanes.
void run_group(MaType type, std::span<const double> in, const Group& g, std::vector<double>& scratch,
               std::vector<MaResume>& resume_scratch) {
  // Lanes beyond the group's size compute lane 0 again into a scratch row.
  const std::size_t n = in.size();
  std::size_t join = 0;
  for (std::size_t l = 0; l < g.size; ++l) join = std::max(join, static_cast<std::size_t>(g.period[l]));
  // A lane whose seed lies beyond the data has no value (the one-period function writes its NaN);
  // the others then run as groups of their own.
  if (join > n) {
    for (std::size_t l = 0; l < g.size; ++l) {
      if (static_cast<std::size_t>(g.period[l]) <= n) {
        Group alone;
        alone.size = 1;
        alone.period[0] = g.period[l];
        alone.out[0] = g.out[l];
        alone.resume[0] = g.resume[l];
        run_group(type, in, alone, scratch, resume_scratch);
        continue;
      }
      const Series s = ma(type, in, g.period[l]);
      std::copy(s.begin(), s.end(), g.out[l]);
    }
    return;
  }
  // The lanes start on a multiple of their width, so that each stride starts one of their steps.
  join = std::min(n, (join + kLanes - 1) / kLanes * kLanes);
  const bool resumable = g.resume[0] != nullptr;
  if (g.size < kLanes) {
    scratch.resize(n);
    if (resumable) resume_scratch.resize((n + kResumeStride - 1) / kResumeStride);
  }
  std::array<double*, kLanes> out{};
  std::array<int, kLanes> period{};
  std::array<MaResume*, kLanes> resume{};
  for (std::size_t l = 0; l < kLanes; ++l) {
    out[l] = l < g.size ? g.out[l] : scratch.data();
    period[l] = l < g.size ? g.period[l] : g.period[0];
    resume[l] = !resumable ? nullptr : l < g.size ? g.resume[l] : resume_scratch.data();
  }
  MaResume* const* lane_resume = resumable ? resume.data() : nullptr;
  for (std::size_t l = 0; l < kLanes; ++l)
    std::fill(out[l], out[l] + std::min<std::size_t>(n, static_cast<std::size_t>(period[l] - 1)), detail::kNaN);
  // Every lane's first output is at period-1 <= join-1; the joint phase starts at `join`.
  switch (type) {
    case MaType::kSma: {
      SmaState s{};
      for (std::size_t l = 0; l < kLanes; ++l) {
        detail::SmaRunning sma(in.data(), period[l]);
        const auto first = static_cast<std::size_t>(period[l] - 1);
        for (std::size_t i = first; i < join; ++i) {
          record_one(resume[l], i, first, sma.total, sma.total);
          out[l][i] = sma.step(i);
        }
        s.total[l] = sma.total;
        s.period[l] = period[l];
        s.trailing[l] = static_cast<std::int64_t>(sma.trailing);
      }
      sma_lanes(in.data(), join, n, s, out.data(), lane_resume);
      break;
    }
    case MaType::kEma: {
      EmaState s{};
      for (std::size_t l = 0; l < kLanes; ++l) {
        const auto first = static_cast<std::size_t>(period[l] - 1);
        detail::EmaRunning ema(in.data(), period[l], 2.0 / static_cast<double>(period[l] + 1), first);
        record_one(resume[l], first, first, ema.prev, ema.prev);  // the seed, which is the first value
        out[l][first] = ema.prev;
        for (std::size_t i = first + 1; i < join; ++i) {
          record_one(resume[l], i, first, ema.prev, ema.prev);
          out[l][i] = ema.step(in[i]);
        }
        s.prev[l] = ema.prev;
        s.k[l] = ema.k;
      }
      ema_lanes(in.data(), join, n, s, out.data(), lane_resume);
      break;
    }
    case MaType::kWma: {
      WmaState s{};
      for (std::size_t l = 0; l < kLanes; ++l) {
        detail::WmaRunning wma(in.data(), period[l]);
        const auto first = static_cast<std::size_t>(period[l] - 1);
        for (std::size_t i = first; i < join; ++i) {
          record_one(resume[l], i, first, wma.sum, wma.sub);
          out[l][i] = wma.step(i);
        }
        s.sum[l] = wma.sum;
        s.sub[l] = wma.sub;
        s.trailing_value[l] = wma.trailing_value;
        s.period[l] = wma.period;
        s.divider[l] = wma.divider;
        s.trailing[l] = static_cast<std::int64_t>(wma.trailing);
      }
      wma_lanes(in.data(), join, n, s, out.data(), lane_resume);
      break;
    }
    default:
      break;
  }
}

}  // namespace

bool detail::force_fused_division(bool enabled) {
  fused_division_off() = !enabled;
  return fused_division_runs();
}

void ma_many_into(MaType type, std::span<const double> in, std::span<const int> periods, double* out,
                  std::size_t row_stride, MaResume* resume) {
  ma_lookback(type, 1);  // reject an unknown type before any thread starts
  for (int p : periods)
    if (p < 1) throw ParamError(fmt::format("moving average: period = {} is out of range (allowed: >= 1)", p));
  const bool laned = type == MaType::kSma || type == MaType::kEma || type == MaType::kWma;
  if (resume != nullptr && !laned) throw no_resume_points(type);
  const std::size_t strides = (in.size() + kResumeStride - 1) / kResumeStride;
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
      g.resume[g.size] = resume != nullptr ? resume + order[j] * strides : nullptr;
      ++g.size;
    }
    std::vector<double> scratch;
    std::vector<MaResume> resume_scratch;
    run_group(type, in, g, scratch, resume_scratch);
  });
}

void ma_resume(MaType type, std::span<const double> in, int period, const MaResume& point, std::size_t stride,
               std::size_t to, double* word) {
  const std::size_t base = stride * kResumeStride, first = static_cast<std::size_t>(period - 1);
  std::size_t i = std::max(base, first);
  std::fill(word, word + (std::min(i, to) - std::min(base, to)), detail::kNaN);
  switch (type) {
    case MaType::kSma: {
      detail::SmaCore sma{period, point.first};
      for (; i < to; ++i) word[i - base] = sma.advance(in[i], in[i - first]);
      break;
    }
    case MaType::kEma: {
      detail::EmaRunning ema(point.first, 2.0 / static_cast<double>(period + 1));
      if (i == first && i < to) word[i++ - base] = ema.prev;  // the seed
      for (; i < to; ++i) word[i - base] = ema.step(in[i]);
      break;
    }
    case MaType::kWma: {
      detail::WmaCore wma(period);
      wma.sum = point.first;
      wma.sub = point.second;
      const auto p = static_cast<std::size_t>(period);
      for (; i < to; ++i) word[i - base] = wma.advance(in[i], i >= p ? in[i - p] : 0.0);
      break;
    }
    default:
      throw no_resume_points(type);
  }
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
