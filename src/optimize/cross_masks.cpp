// The float pass and why it is exact: kCoarseTieBand in signal_rules.hpp.
#include "cross_masks.hpp"

#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <iterator>

#include "gt/signal_rules.hpp"

namespace gt::detail {
namespace {

// The bars of word w that the events may use: defined (from defined_from on) and before the end.
inline std::uint64_t live_bits(std::size_t w, std::size_t bars, std::size_t defined_from) {
  const std::size_t first = w * 64;
  if (defined_from >= first + 64 || bars <= first) return 0;
  std::uint64_t live = ~std::uint64_t{0};
  if (defined_from > first) live <<= defined_from - first;
  if (bars < first + 64) live &= ~std::uint64_t{0} >> (first + 64 - bars);
  return live;
}

// Turns per-word above/below bits into crossing events; the carries hold bit 63 of the previous
// word's at-or-below / at-or-above masks.
struct EventWords {
  std::uint64_t carry_le = 0, carry_ge = 0;

  void emit(std::size_t w, std::uint64_t above, std::uint64_t below, std::uint64_t live, std::uint64_t* up,
            std::uint64_t* down) {
    const std::uint64_t le = live & ~above;
    const std::uint64_t ge = live & ~below;
    up[w] = above & ((le << 1) | carry_le);
    down[w] = below & ((ge << 1) | carry_ge);
    carry_le = le >> 63;
    carry_ge = ge >> 63;
  }
};

// Decides the bars of `unsure` (bit j = bar base + j) in double precision.
inline void settle(const double* f, const double* s, std::size_t base, std::uint64_t unsure, std::uint64_t& above,
                   std::uint64_t& below) {
  while (unsure) {
    const int j = std::countr_zero(unsure);
    unsure &= unsure - 1;
    const std::size_t i = base + static_cast<std::size_t>(j);
    above |= static_cast<std::uint64_t>(is_above(f[i], s[i])) << j;
    below |= static_cast<std::uint64_t>(is_below(f[i], s[i])) << j;
  }
}

// The float pass's outcome for one word, given the bars whose float gap exceeds the band (`sure`)
// and the gap's sign bits: the sure bars decided, the other live ones settled in double precision
// (NaN gaps included, which compare false there), then the events.
inline void decide_word(CrossSeries f, CrossSeries s, std::size_t w, std::uint64_t sure, std::uint64_t negative,
                        std::uint64_t live, EventWords& events, std::uint64_t* up, std::uint64_t* down) {
  std::uint64_t above = sure & ~negative, below = sure & negative;
  settle(f.exact, s.exact, w * 64, ~sure & live, above, below);
  events.emit(w, above, below, live, up, down);
}

void portable(CrossSeries f, CrossSeries s, float*, std::size_t bars, std::size_t defined_from, std::uint64_t* up,
              std::uint64_t* down) {
  EventWords events;
  for (std::size_t w = 0; w < (bars + 63) / 64; ++w) {
    std::uint64_t above = 0, below = 0;
    for (std::size_t j = 0; j < 64; ++j) {
      const std::size_t i = w * 64 + j;
      above |= static_cast<std::uint64_t>(is_above(f.exact[i], s.exact[i])) << j;
      below |= static_cast<std::uint64_t>(is_below(f.exact[i], s.exact[i])) << j;
    }
    events.emit(w, above, below, live_bits(w, bars, defined_from), up, down);
  }
}

// A bar is sure when |fast - slow| > band in float (the sign of the gap then says above or below:
// fast - slow > band, or slow - fast > band, which is the same double negated).
template <bool kBandReady>
__attribute__((target("avx2"))) void avx2(CrossSeries f, CrossSeries s, float* band, std::size_t bars,
                                          std::size_t defined_from, std::uint64_t* up, std::uint64_t* down) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 band_scale = _mm256_set1_ps(kCoarseTieBand);
  EventWords events;
  for (std::size_t w = 0; w < (bars + 63) / 64; ++w) {
    std::uint64_t sure = 0, negative = 0;
    for (int j = 0; j < 8; ++j) {
      const std::size_t i = w * 64 + static_cast<std::size_t>(j) * 8;
      const __m256 slow = _mm256_loadu_ps(s.coarse + i);
      __m256 tie;
      if constexpr (kBandReady) {
        tie = _mm256_loadu_ps(band + i);
      } else {
        tie = _mm256_mul_ps(band_scale, _mm256_andnot_ps(sign, slow));
        _mm256_storeu_ps(band + i, tie);
      }
      const __m256 gap = _mm256_sub_ps(_mm256_loadu_ps(f.coarse + i), slow);
      const __m256 outside = _mm256_cmp_ps(_mm256_andnot_ps(sign, gap), tie, _CMP_GT_OQ);
      sure |= static_cast<std::uint64_t>(_mm256_movemask_ps(outside)) << (j * 8);
      negative |= static_cast<std::uint64_t>(_mm256_movemask_ps(gap)) << (j * 8);
    }
    decide_word(f, s, w, sure, negative, live_bits(w, bars, defined_from), events, up, down);
  }
}

#define GT_AVX512_TARGET __attribute__((target("avx512f,avx512dq,avx512bw")))

// Four 16-bar masks as one 64-bar word, joined in mask registers (kunpck) rather than shifted
// together in general registers.
GT_AVX512_TARGET inline std::uint64_t join_masks(const __mmask16* m) {
  return _mm512_kunpackd(_mm512_kunpackw(m[3], m[2]), _mm512_kunpackw(m[1], m[0]));
}

template <bool kBandReady>
GT_AVX512_TARGET void avx512(CrossSeries f, CrossSeries s, float* band, std::size_t bars, std::size_t defined_from,
                             std::uint64_t* up, std::uint64_t* down) {
  const __m512 band_scale = _mm512_set1_ps(kCoarseTieBand);
  EventWords events;
  for (std::size_t w = 0; w < (bars + 63) / 64; ++w) {
    __mmask16 outside[4], negative[4];
    for (int j = 0; j < 4; ++j) {
      const std::size_t i = w * 64 + static_cast<std::size_t>(j) * 16;
      const __m512 slow = _mm512_loadu_ps(s.coarse + i);
      __m512 tie;
      if constexpr (kBandReady) {
        tie = _mm512_loadu_ps(band + i);
      } else {
        tie = _mm512_mul_ps(band_scale, _mm512_abs_ps(slow));
        _mm512_storeu_ps(band + i, tie);
      }
      const __m512 gap = _mm512_sub_ps(_mm512_loadu_ps(f.coarse + i), slow);
      outside[j] = _mm512_cmp_ps_mask(_mm512_abs_ps(gap), tie, _CMP_GT_OQ);
      negative[j] = _mm512_movepi32_mask(_mm512_castps_si512(gap));
    }
    decide_word(f, s, w, join_masks(outside), join_masks(negative), live_bits(w, bars, defined_from), events, up, down);
  }
}

using Impl = void (*)(CrossSeries, CrossSeries, float*, std::size_t, std::size_t, std::uint64_t*, std::uint64_t*);

// One implementation in both forms: computing and writing the slow series' band, or reading it.
struct Choice {
  Impl fresh_band, ready_band;
  const char* name;
};
// In order of preference.
const Choice kChoices[] = {
    {avx512<false>, avx512<true>, "avx512"}, {avx2<false>, avx2<true>, "avx2"}, {portable, portable, "portable"}};

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

void cross_events(CrossSeries fast, CrossSeries slow, float* slow_band, bool band_ready, std::size_t bars,
                  std::size_t defined_from, std::uint64_t* up, std::uint64_t* down) {
  const Choice& c = chosen();
  (band_ready ? c.ready_band : c.fresh_band)(fast, slow, slow_band, bars, defined_from, up, down);
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
