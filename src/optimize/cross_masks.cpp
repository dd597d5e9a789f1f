#include "cross_masks.hpp"

#include <immintrin.h>

#include <cstring>

#include "gt/signal_rules.hpp"

namespace gt::detail {
namespace {

void tail_bits(const double* f, const double* s, std::size_t from, std::size_t n, std::uint64_t* above,
               std::uint64_t* below) {
  for (std::size_t i = from; i < n; ++i) {
    const std::uint64_t bit = std::uint64_t{1} << (i % 64);
    if (i % 64 == 0) above[i / 64] = below[i / 64] = 0;
    if (is_above(f[i], s[i])) above[i / 64] |= bit;
    if (is_below(f[i], s[i])) below[i / 64] |= bit;
  }
}

void portable(const double* f, const double* s, std::size_t n, std::uint64_t* above, std::uint64_t* below) {
  tail_bits(f, s, 0, n, above, below);
}

__attribute__((target("avx2"))) void avx2(const double* f, const double* s, std::size_t n, std::uint64_t* above,
                                           std::uint64_t* below) {
  const __m256d tol = _mm256_set1_pd(kTieTolerance);
  const __m256d sign = _mm256_set1_pd(-0.0);
  const std::size_t words = n / 64;
  for (std::size_t w = 0; w < words; ++w) {
    std::uint64_t a = 0, b = 0;
    for (int j = 0; j < 16; ++j) {
      const std::size_t i = w * 64 + static_cast<std::size_t>(j) * 4;
      const __m256d fv = _mm256_loadu_pd(f + i);
      const __m256d sv = _mm256_loadu_pd(s + i);
      const __m256d band = _mm256_mul_pd(tol, _mm256_andnot_pd(sign, sv));
      const __m256d up = _mm256_cmp_pd(_mm256_sub_pd(fv, sv), band, _CMP_GT_OQ);
      const __m256d down = _mm256_cmp_pd(_mm256_sub_pd(sv, fv), band, _CMP_GT_OQ);
      a |= static_cast<std::uint64_t>(_mm256_movemask_pd(up)) << (j * 4);
      b |= static_cast<std::uint64_t>(_mm256_movemask_pd(down)) << (j * 4);
    }
    above[w] = a;
    below[w] = b;
  }
  tail_bits(f, s, words * 64, n, above, below);
}

__attribute__((target("avx512f"))) void avx512(const double* f, const double* s, std::size_t n, std::uint64_t* above,
                                                std::uint64_t* below) {
  const __m512d tol = _mm512_set1_pd(kTieTolerance);
  const std::size_t words = n / 64;
  for (std::size_t w = 0; w < words; ++w) {
    std::uint64_t a = 0, b = 0;
    for (int j = 0; j < 8; ++j) {
      const std::size_t i = w * 64 + static_cast<std::size_t>(j) * 8;
      const __m512d fv = _mm512_loadu_pd(f + i);
      const __m512d sv = _mm512_loadu_pd(s + i);
      const __m512d band = _mm512_mul_pd(tol, _mm512_abs_pd(sv));
      a |= static_cast<std::uint64_t>(_mm512_cmp_pd_mask(_mm512_sub_pd(fv, sv), band, _CMP_GT_OQ)) << (j * 8);
      b |= static_cast<std::uint64_t>(_mm512_cmp_pd_mask(_mm512_sub_pd(sv, fv), band, _CMP_GT_OQ)) << (j * 8);
    }
    above[w] = a;
    below[w] = b;
  }
  tail_bits(f, s, words * 64, n, above, below);
}

using Impl = void (*)(const double*, const double*, std::size_t, std::uint64_t*, std::uint64_t*);

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

void cross_masks(const double* fast, const double* slow, std::size_t n, std::uint64_t* above, std::uint64_t* below) {
  chosen().impl(fast, slow, n, above, below);
}

const char* cross_masks_isa() { return chosen().name; }

bool force_cross_masks_isa(const char* isa) {
  __builtin_cpu_init();
  if (std::strcmp(isa, "avx512") == 0 && __builtin_cpu_supports("avx512f")) chosen() = {avx512, "avx512"};
  else if (std::strcmp(isa, "avx2") == 0 && __builtin_cpu_supports("avx2")) chosen() = {avx2, "avx2"};
  else if (std::strcmp(isa, "portable") == 0) chosen() = {portable, "portable"};
  else return false;
  return true;
}

}  // namespace gt::detail
