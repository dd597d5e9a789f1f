// The float pass and why it is exact: kCoarseTieBand in signal_rules.hpp.
#include "cross_masks.hpp"

#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <iterator>

#include "gt/signal_rules.hpp"

// GCC 12 flags the deliberately undefined source operand inside its own AVX-512 intrinsics (GCC
// bug 105593, fixed in GCC 13).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace gt::detail {
namespace {

// Turns per-word above/below bits into crossing events; the carries hold bit 63 of the previous
// word's at-or-below / at-or-above masks.
struct EventWords {
  std::uint64_t carry_le = 0, carry_ge = 0;

  void emit(std::size_t w, std::uint64_t above, std::uint64_t below, std::uint64_t live, std::uint64_t* up,
            std::uint64_t* down) {
    const std::uint64_t le = live & ~above;
    const std::uint64_t ge = live & ~below;
    up[w] = cross_event_bits(above, le, carry_le);
    down[w] = cross_event_bits(below, ge, carry_ge);
    carry_le = le >> 63;
    carry_ge = ge >> 63;
  }
};

// Decides the bars of `unsure` (bit j = bar 64w + j) of word w in double precision.
inline void settle(const CrossSeries& f, const CrossSeries& s, std::size_t w, std::uint64_t unsure,
                   std::uint64_t& above, std::uint64_t& below) {
  if (unsure == 0) return;
  const auto count = static_cast<std::size_t>(64 - std::countl_zero(unsure));  // through the last unsure bar
  double fast_scratch[64], slow_scratch[64];
  const double* fast = f.word(w, count, fast_scratch);
  const double* slow = s.word(w, count, slow_scratch);
  while (unsure) {
    const int j = std::countr_zero(unsure);
    unsure &= unsure - 1;
    above |= static_cast<std::uint64_t>(is_above(fast[j], slow[j])) << j;
    below |= static_cast<std::uint64_t>(is_below(fast[j], slow[j])) << j;
  }
}

// The float pass: a slow value under lo[i] = fast - kCoarseTieBand * |fast| (in float) has the
// fast series surely above it, one over hi[i] = fast + kCoarseTieBand * |fast| surely below; the
// bounds of a NaN are NaN, which no value passes. The bars that are neither (near a tie or a
// crossing: about one word of 64 bars in a thousand on daily prices) are settled in double precision.
// With FastBounds::kOnce there is no storage: the bounds live in registers only.
struct Bounds {
  float* lo;
  float* hi;
  Bounds(float* fast_bounds, std::size_t bars)
      : lo(fast_bounds), hi(fast_bounds == nullptr ? nullptr : fast_bounds + (bars + 63) / 64 * 64) {}
};

// Fetches line `i` (in floats) of each upcoming row toward L2.
inline void fetch_upcoming(const UpcomingRows& upcoming, std::size_t i) {
  for (const float* row : upcoming.rows)
    if (row != nullptr) _mm_prefetch(reinterpret_cast<const char*>(row + i), _MM_HINT_T1);
}

// The float pass a bar at a time, for CPUs without AVX2.
template <FastBounds kBounds>
void portable(CrossSeries f, CrossSeries s, float* fast_bounds, std::size_t bars, std::size_t defined_from,
              std::uint64_t* up, std::uint64_t* down, UpcomingRows) {
  const Bounds b(fast_bounds, bars);
  EventWords events;
  for (std::size_t w = 0; w < (bars + 63) / 64; ++w) {
    std::uint64_t above = 0, below = 0;
    for (std::size_t j = 0; j < 64; ++j) {
      const std::size_t i = w * 64 + j;
      float lo, hi;
      if constexpr (kBounds == FastBounds::kReady) {
        lo = b.lo[i];
        hi = b.hi[i];
      } else {
        const float band = kCoarseTieBand * std::fabs(f.coarse[i]);
        lo = f.coarse[i] - band;
        hi = f.coarse[i] + band;
        if constexpr (kBounds == FastBounds::kKeep) {
          b.lo[i] = lo;
          b.hi[i] = hi;
        }
      }
      above |= static_cast<std::uint64_t>(s.coarse[i] < lo) << j;
      below |= static_cast<std::uint64_t>(s.coarse[i] > hi) << j;
    }
    const std::uint64_t live = live_bits(w, bars, defined_from);
    settle(f, s, w, live & ~(above | below), above, below);
    events.emit(w, above, below, live, up, down);
  }
}

template <FastBounds kBounds>
__attribute__((target("avx2"))) void avx2(CrossSeries f, CrossSeries s, float* fast_bounds, std::size_t bars,
                                          std::size_t defined_from, std::uint64_t* up, std::uint64_t* down,
                                          UpcomingRows upcoming) {
  const Bounds b(fast_bounds, bars);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 band_scale = _mm256_set1_ps(kCoarseTieBand);
  EventWords events;
  for (std::size_t w = 0; w < (bars + 63) / 64; ++w) {
    std::uint64_t above = 0, below = 0;
    for (int j = 0; j < 8; ++j) {
      const std::size_t i = w * 64 + static_cast<std::size_t>(j) * 8;
      if (j % 2 == 0) fetch_upcoming(upcoming, i);
      __m256 lo, hi;
      if constexpr (kBounds == FastBounds::kReady) {
        lo = _mm256_loadu_ps(b.lo + i);
        hi = _mm256_loadu_ps(b.hi + i);
      } else {
        const __m256 fast = _mm256_loadu_ps(f.coarse + i);
        const __m256 band = _mm256_mul_ps(band_scale, _mm256_andnot_ps(sign, fast));
        lo = _mm256_sub_ps(fast, band);
        hi = _mm256_add_ps(fast, band);
        if constexpr (kBounds == FastBounds::kKeep) {
          _mm256_storeu_ps(b.lo + i, lo);
          _mm256_storeu_ps(b.hi + i, hi);
        }
      }
      const __m256 slow = _mm256_loadu_ps(s.coarse + i);
      above |= static_cast<std::uint64_t>(_mm256_movemask_ps(_mm256_cmp_ps(slow, lo, _CMP_LT_OQ))) << (j * 8);
      below |= static_cast<std::uint64_t>(_mm256_movemask_ps(_mm256_cmp_ps(slow, hi, _CMP_GT_OQ))) << (j * 8);
    }
    const std::uint64_t live = live_bits(w, bars, defined_from);
    settle(f, s, w, live & ~(above | below), above, below);
    events.emit(w, above, below, live, up, down);
  }
}

#define GT_AVX512_TARGET __attribute__((target("avx512f,avx512dq,avx512bw")))

// Two passes: the float comparisons, 16 bars at a time, store their masks straight into up and
// down (a mask register's 16 bits to memory: no trip through general registers, and no joining
// of masks on the port that the comparisons need); then eight words at a time, the bars the
// floats left open are settled and the masks become events, the carries between words taken
// from the neighbouring lane.
template <FastBounds kBounds>
GT_AVX512_TARGET void avx512(CrossSeries f, CrossSeries s, float* fast_bounds, std::size_t bars,
                             std::size_t defined_from, std::uint64_t* up, std::uint64_t* down, UpcomingRows upcoming) {
  const Bounds b(fast_bounds, bars);
  const std::size_t words = (bars + 63) / 64;
  const __m512 band_scale = _mm512_set1_ps(kCoarseTieBand);
  auto* above16 = reinterpret_cast<char*>(up);
  auto* below16 = reinterpret_cast<char*>(down);
  for (std::size_t i = 0; i < words * 64; i += 16) {
    fetch_upcoming(upcoming, i);
    __m512 lo, hi;
    if constexpr (kBounds == FastBounds::kReady) {
      lo = _mm512_loadu_ps(b.lo + i);
      hi = _mm512_loadu_ps(b.hi + i);
    } else {
      const __m512 fast = _mm512_loadu_ps(f.coarse + i);
      const __m512 band = _mm512_mul_ps(band_scale, _mm512_abs_ps(fast));
      lo = _mm512_sub_ps(fast, band);
      hi = _mm512_add_ps(fast, band);
      if constexpr (kBounds == FastBounds::kKeep) {
        _mm512_storeu_ps(b.lo + i, lo);
        _mm512_storeu_ps(b.hi + i, hi);
      }
    }
    const __m512 slow = _mm512_loadu_ps(s.coarse + i);
    const __mmask16 above = _mm512_cmp_ps_mask(slow, lo, _CMP_LT_OQ);
    const __mmask16 below = _mm512_cmp_ps_mask(slow, hi, _CMP_GT_OQ);
    std::memcpy(above16 + i / 8, &above, sizeof above);
    std::memcpy(below16 + i / 8, &below, sizeof below);
  }

  const __m512i ones = _mm512_set1_epi64(-1), zero = _mm512_setzero_si512();
  const __m512i lane_first_bar = _mm512_set_epi64(448, 384, 320, 256, 192, 128, 64, 0);
  const __m512i defined = _mm512_set1_epi64(static_cast<long long>(defined_from));
  const __m512i last = _mm512_set1_epi64(static_cast<long long>(bars) - 64);
  __m512i previous_le = zero, previous_ge = zero;
  for (std::size_t w = 0; w < words; w += 8) {
    const __mmask8 lanes = words - w >= 8 ? 0xFF : static_cast<__mmask8>((1u << (words - w)) - 1);
    __m512i above = _mm512_maskz_loadu_epi64(lanes, up + w);
    __m512i below = _mm512_maskz_loadu_epi64(lanes, down + w);
    // live_bits for eight words: no bar before defined_from, none from bars on (a shift of 64 or
    // more leaves 0).
    const __m512i first = _mm512_add_epi64(lane_first_bar, _mm512_set1_epi64(static_cast<long long>(w * 64)));
    const __m512i live =
        _mm512_and_si512(_mm512_sllv_epi64(ones, _mm512_max_epi64(_mm512_sub_epi64(defined, first), zero)),
                         _mm512_srlv_epi64(ones, _mm512_max_epi64(_mm512_sub_epi64(first, last), zero)));
    const __m512i unsure = _mm512_andnot_si512(_mm512_or_si512(above, below), live);
    if (const __mmask8 open = _mm512_test_epi64_mask(unsure, unsure)) {  // rare: near ties and crossings
      alignas(64) std::uint64_t a[8], z[8], u[8];
      _mm512_store_si512(a, above);
      _mm512_store_si512(z, below);
      _mm512_store_si512(u, unsure);
      for (unsigned j = 0; j < 8; ++j)
        if (open >> j & 1) settle(f, s, w + j, u[j], a[j], z[j]);
      above = _mm512_load_si512(a);
      below = _mm512_load_si512(z);
    }
    // EventWords::emit: up = above & ((le << 1) | carry), the carry being bit 63 of the previous
    // word's le (lane 7 of the previous eight for lane 0).
    const __m512i le = _mm512_andnot_si512(above, live), ge = _mm512_andnot_si512(below, live);
    const __m512i le_before = _mm512_alignr_epi64(le, previous_le, 7);
    const __m512i ge_before = _mm512_alignr_epi64(ge, previous_ge, 7);
    _mm512_mask_storeu_epi64(
        up + w, lanes,
        _mm512_and_si512(above, _mm512_or_si512(_mm512_slli_epi64(le, 1), _mm512_srli_epi64(le_before, 63))));
    _mm512_mask_storeu_epi64(
        down + w, lanes,
        _mm512_and_si512(below, _mm512_or_si512(_mm512_slli_epi64(ge, 1), _mm512_srli_epi64(ge_before, 63))));
    previous_le = le;
    previous_ge = ge;
  }
}

using Impl = void (*)(CrossSeries, CrossSeries, float*, std::size_t, std::size_t, std::uint64_t*, std::uint64_t*,
                      UpcomingRows);

// One implementation in each FastBounds form, in the enum's order.
struct Choice {
  Impl by_bounds[3];
  const char* name;
};
// In order of preference.
const Choice kChoices[] = {
    {{avx512<FastBounds::kReady>, avx512<FastBounds::kKeep>, avx512<FastBounds::kOnce>}, "avx512"},
    {{avx2<FastBounds::kReady>, avx2<FastBounds::kKeep>, avx2<FastBounds::kOnce>}, "avx2"},
    {{portable<FastBounds::kReady>, portable<FastBounds::kKeep>, portable<FastBounds::kOnce>}, "portable"}};

bool cpu_runs(const Choice& c) {
  __builtin_cpu_init();
  if (std::strcmp(c.name, "avx512") == 0)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw");
  if (std::strcmp(c.name, "avx2") == 0) return __builtin_cpu_supports("avx2");
  return true;
}

Choice& chosen() {
  static Choice c = *std::find_if(std::begin(kChoices), std::end(kChoices), cpu_runs);
  return c;
}

}  // namespace

void cross_events(CrossSeries fast, CrossSeries slow, float* fast_bounds, FastBounds bounds, std::size_t bars,
                  std::size_t defined_from, std::uint64_t* up, std::uint64_t* down, UpcomingRows upcoming) {
  chosen().by_bounds[static_cast<int>(bounds)](fast, slow, fast_bounds, bars, defined_from, up, down, upcoming);
}

// A fifth of the ma_cross engine's set-up when left to SSE2.
__attribute__((target_clones("avx512f", "avx2", "default"))) void round_to_float(const double* in, float* out,
                                                                                 std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) out[i] = static_cast<float>(in[i]);
}

std::uint64_t live_bits(std::size_t w, std::size_t bars, std::size_t defined_from) {
  const std::size_t first = w * 64;
  if (defined_from >= first + 64 || bars <= first) return 0;
  std::uint64_t live = ~std::uint64_t{0};
  if (defined_from > first) live <<= defined_from - first;
  if (bars < first + 64) live &= ~std::uint64_t{0} >> (first + 64 - bars);
  return live;
}

const char* cross_events_isa() {
  return chosen().name;
}

bool force_cross_events_isa(const char* isa) {
  for (const Choice& c : kChoices)
    if (std::strcmp(c.name, isa) == 0 && cpu_runs(c)) {
      chosen() = c;
      return true;
    }
  return false;
}

}  // namespace gt::detail
