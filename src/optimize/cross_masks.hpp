// Bit masks of "fast above slow" and "fast below slow" (signal_rules.hpp's tie band), 64 bars a
// word: the only O(bars) work per moving-average pair in the grid engine.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gt::detail {

// above[w] bit j: is_above(fast[64w+j], slow[64w+j]); below likewise. NaN gives 0 in both.
// Dispatches at run time to AVX-512, AVX2 or portable code, all giving identical bits.
void cross_masks(const double* fast, const double* slow, std::size_t n, std::uint64_t* above, std::uint64_t* below);

// Which implementation cross_masks uses on this machine ("avx512", "avx2", "portable").
const char* cross_masks_isa();

// Forces one implementation (tests): "avx512", "avx2", "portable"; false if this CPU lacks it.
bool force_cross_masks_isa(const char* isa);

}  // namespace gt::detail
