// The float pass and why it is exact: kCoarseTieBand in signal_rules.hpp.
#include "cross_masks.hpp"

#include <immintrin.h>

#include <bit>
#include <cstring>

#include "gt/signal_rules.hpp"

namespace gt::detail {
namespace {

// Turns per-word above/below bits into crossing events; the carries hold bit 63 of the previous
// word's at-or-below / at-or-above masks.
struct EventWords {
  std::uint64_t carry_le = 0, carry_ge = 0;

  void emit(std::size_t w, std::uint64_t above, std::uint64_t below, std::size_t defined_from, std::uint64_t* up,
            std::uint64_t* down) {
    std::uint64_t defined = ~std::uint64_t{0};
    if (defined_from >= (w + 1) * 64)
      defined = 0;
    else if (defined_from > w * 64)
      defined = ~std::uint64_t{0} << (defined_from - w * 64);
    const std::uint64_t le = defined & ~above;
    const std::uint64_t ge = defined & ~below;
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

void portable(CrossSeries f, CrossSeries s, std::size_t words, std::size_t defined_from, std::uint64_t* up,
              std::uint64_t* down) {
  EventWords events;
  for (std::size_t w = 0; w < words; ++w) {
    std::uint64_t above = 0, below = 0;
    for (std::size_t j = 0; j < 64; ++j) {
      const std::size_t i = w * 64 + j;
      above |= static_cast<std::uint64_t>(is_above(f.exact[i], s.exact[i])) << j;
      below |= static_cast<std::uint64_t>(is_below(f.exact[i], s.exact[i])) << j;
    }
    events.emit(w, above, below, defined_from, up, down);
  }
}

__attribute__((target("avx2"))) void avx2(CrossSeries f, CrossSeries s, std::size_t words, std::size_t defined_from,
                                          std::uint64_t* up, std::uint64_t* down) {
  const __m256 band_scale = _mm256_set1_ps(kCoarseTieBand);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  EventWords events;
  for (std::size_t w = 0; w < words; ++w) {
    std::uint64_t above = 0, below = 0, unsure = 0;
    for (int j = 0; j < 8; ++j) {
      const std::size_t i = w * 64 + static_cast<std::size_t>(j) * 8;
      const __m256 fv = _mm256_loadu_ps(f.coarse + i);
      const __m256 sv = _mm256_loadu_ps(s.coarse + i);
      const __m256 band = _mm256_mul_ps(band_scale, _mm256_andnot_ps(sign, sv));
      const auto a =
          static_cast<std::uint64_t>(_mm256_movemask_ps(_mm256_cmp_ps(_mm256_sub_ps(fv, sv), band, _CMP_GT_OQ)));
      const auto b =
          static_cast<std::uint64_t>(_mm256_movemask_ps(_mm256_cmp_ps(_mm256_sub_ps(sv, fv), band, _CMP_GT_OQ)));
      const auto nan = static_cast<std::uint64_t>(_mm256_movemask_ps(_mm256_cmp_ps(fv, sv, _CMP_UNORD_Q)));
      above |= a << (j * 8);
      below |= b << (j * 8);
      unsure |= (~(a | b | nan) & 0xffu) << (j * 8);
    }
    settle(f.exact, s.exact, w * 64, unsure, above, below);
    events.emit(w, above, below, defined_from, up, down);
  }
}

__attribute__((target("avx512f"))) void avx512(CrossSeries f, CrossSeries s, std::size_t words,
                                               std::size_t defined_from, std::uint64_t* up, std::uint64_t* down) {
  const __m512 band_scale = _mm512_set1_ps(kCoarseTieBand);
  EventWords events;
  for (std::size_t w = 0; w < words; ++w) {
    std::uint64_t above = 0, below = 0, unsure = 0;
    for (int j = 0; j < 4; ++j) {
      const std::size_t i = w * 64 + static_cast<std::size_t>(j) * 16;
      const __m512 fv = _mm512_loadu_ps(f.coarse + i);
      const __m512 sv = _mm512_loadu_ps(s.coarse + i);
      const __m512 band = _mm512_mul_ps(band_scale, _mm512_abs_ps(sv));
      const __mmask16 a = _mm512_cmp_ps_mask(_mm512_sub_ps(fv, sv), band, _CMP_GT_OQ);
      const __mmask16 b = _mm512_cmp_ps_mask(_mm512_sub_ps(sv, fv), band, _CMP_GT_OQ);
      const __mmask16 nan = _mm512_cmp_ps_mask(fv, sv, _CMP_UNORD_Q);
      above |= static_cast<std::uint64_t>(a) << (j * 16);
      below |= static_cast<std::uint64_t>(b) << (j * 16);
      unsure |= static_cast<std::uint64_t>(static_cast<std::uint16_t>(~(a | b | nan))) << (j * 16);
    }
    settle(f.exact, s.exact, w * 64, unsure, above, below);
    events.emit(w, above, below, defined_from, up, down);
  }
}

using Impl = void (*)(CrossSeries, CrossSeries, std::size_t, std::size_t, std::uint64_t*, std::uint64_t*);

struct Choice {
  Impl impl;
  const char* name;
};

Choice detect() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return {avx512, "avx512"};
  if (__builtin_cpu_supports("avx2")) return {avx2, "avx2"};
  return {portable, "portable"};
}

Choice& chosen() {
  static Choice c = detect();
  return c;
}

}  // namespace

void cross_events(CrossSeries fast, CrossSeries slow, std::size_t words, std::size_t defined_from, std::uint64_t* up,
                  std::uint64_t* down) {
  chosen().impl(fast, slow, words, defined_from, up, down);
}

const char* cross_events_isa() {
  return chosen().name;
}

bool force_cross_events_isa(const char* isa) {
  __builtin_cpu_init();
  if (std::strcmp(isa, "avx512") == 0 && __builtin_cpu_supports("avx512f"))
    chosen() = {avx512, "avx512"};
  else if (std::strcmp(isa, "avx2") == 0 && __builtin_cpu_supports("avx2"))
    chosen() = {avx2, "avx2"};
  else if (std::strcmp(isa, "portable") == 0)
    chosen() = {portable, "portable"};
  else
    return false;
  return true;
}

}  // namespace gt::detail
