// Position flips from bit masks and their trades booked (long_trades.hpp).
#include "long_trades.hpp"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <bit>

#include "trade_lanes.hpp"

namespace gt::detail {
namespace {

// The flips of one word where some bar has both an entry and an exit, bar by bar: a flat position
// takes the entry, a long one the exit (docs/SEMANTICS.md "Fills and costs"). `state` is the
// position at the previous word's last bar, and becomes this word's.
inline std::uint64_t flips_of_mixed_word(std::uint64_t entries, std::uint64_t exits, unsigned char& state) {
  std::uint64_t flip = 0;
  for (unsigned b = 0; b < 64; ++b) {
    const bool next = state ? !((exits >> b) & 1) : ((entries >> b) & 1);
    if (next != static_cast<bool>(state)) flip |= std::uint64_t{1} << b;
    state = next;
  }
  return flip;
}

// Where the position changes, for entries S and exits R given as bit masks: the position is a
// set-reset latch, state_t = S_t | (state_{t-1} & ~R_t) wherever S_t and R_t are not both set, which is exactly the
// carry chain of the addition (S | ~R) + S (generate S, propagate ~R & ~S). One add per 64 bars yields every state;
// `store_flips(flip, base, out)` writes the bars where it flips and returns their count. The flips
// alternate entry, exit, entry, ...; an odd count leaves the last position open. `flips` needs
// room for words*64 + 4 values. With `filter`, only entries whose bar has a filter bit count.
template <class StoreFlips>
inline std::size_t find_position_flips(const std::uint64_t* entries, const std::uint64_t* filter,
                                       const std::uint64_t* exits, std::size_t words, std::uint32_t* flips,
                                       StoreFlips store_flips) {
  std::size_t count = 0;
  unsigned char carry = 0;  // the state at the previous word's last bar
  for (std::size_t w = 0; w < words; ++w) {
    const std::uint64_t set = filter ? entries[w] & filter[w] : entries[w];
    if (set & exits[w]) [[unlikely]] {  // an entry and an exit at one bar: the latch below would not do
      count +=
          store_flips(flips_of_mixed_word(set, exits[w], carry), static_cast<std::uint32_t>(w * 64), flips + count);
      continue;
    }
    const std::uint64_t propagate = set | ~exits[w];
    unsigned long long sum;
    carry = _addcarry_u64(carry, propagate, set, &sum);
    const std::uint64_t before = sum ^ propagate ^ set;  // bit t: the state at bar t-1
    const std::uint64_t flip = (set | (~exits[w] & before)) ^ before;
    count += store_flips(flip, static_cast<std::uint32_t>(w * 64), flips + count);
  }
  return count;
}

// The set bits of `flip` as base + index, without a data-dependent branch per bit (the unrolled
// store of simdjson's flatten_bits: most words hold at most four flips).
inline std::size_t store_set_bits(std::uint64_t flip, std::uint32_t base, std::uint32_t* out) {
  const auto n = static_cast<std::size_t>(std::popcount(flip));
  for (std::size_t j = 0; j < 4; ++j) {
    out[j] = base + static_cast<std::uint32_t>(std::countr_zero(flip));
    flip &= flip - 1;
    // Hides that `flip` may now be 0: GCC otherwise branches to a copy of the remaining stores for
    // that case, a branch that mispredicts on most words.
    asm("" : "+r"(flip));
  }
  for (std::size_t j = 4; j < n; ++j) {  // rare: five or more flips in 64 bars
    out[j] = base + static_cast<std::uint32_t>(std::countr_zero(flip));
    flip &= flip - 1;
  }
  return n;
}

__attribute__((target_clones("popcnt", "default"))) std::size_t position_flips(const std::uint64_t* entries,
                                                                               const std::uint64_t* filter,
                                                                               const std::uint64_t* exits,
                                                                               std::size_t words,
                                                                               std::uint32_t* flips) {
  return find_position_flips(entries, filter, exits, words, flips, store_set_bits);
}

// The same with BMI's tzcnt and blsr, which every CPU with the AVX-512 trade lanes has
// (target_clones ranks a "popcnt" clone above an "arch=haswell" one, so it cannot choose this).
__attribute__((target("popcnt,bmi"))) std::size_t position_flips_bmi(const std::uint64_t* entries,
                                                                     const std::uint64_t* filter,
                                                                     const std::uint64_t* exits, std::size_t words,
                                                                     std::uint32_t* flips) {
  return find_position_flips(entries, filter, exits, words, flips, store_set_bits);
}

// The same with AVX-512 VBMI2: the set bits' indices compressed out of 0..63 in one instruction,
// widened and stored eight at a time (a word's stores stay within the words*64 values).
#define GT_VBMI2_TARGET __attribute__((target("popcnt,avx512f,avx512bw,avx512vbmi2")))
// GCC 12 flags the deliberately undefined source operand inside its own AVX-512 intrinsics (GCC
// bug 105593, fixed in GCC 13).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// Eight indices (the low bytes of `indices`) plus the word's first bar, as one 32-byte store: most
// words hold fewer than eight flips, and at a flip's position a 64-byte store crosses a cache line
// fifteen times in sixteen, a 32-byte one seven.
GT_VBMI2_TARGET inline void store_eight(std::uint32_t* out, __m128i indices, __m256i base) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_add_epi32(_mm256_cvtepu8_epi32(indices), base));
}
GT_VBMI2_TARGET inline std::size_t store_set_bits_compressed(std::uint64_t flip, std::uint32_t base,
                                                             std::uint32_t* out) {
  alignas(64) static constexpr std::array<std::uint8_t, 64> kIndices = [] {
    std::array<std::uint8_t, 64> indices{};
    for (std::size_t i = 0; i < indices.size(); ++i) indices[i] = static_cast<std::uint8_t>(i);
    return indices;
  }();
  const __m512i set = _mm512_maskz_compress_epi8(flip, _mm512_load_si512(kIndices.data()));
  const __m256i offset = _mm256_set1_epi32(static_cast<int>(base));
  store_eight(out, _mm512_castsi512_si128(set), offset);
  const auto n = static_cast<std::size_t>(std::popcount(flip));
  if (n > 8) {  // rare: more than eight flips in 64 bars
    alignas(64) std::uint8_t indices[64];
    _mm512_store_si512(indices, set);
    for (std::size_t k = 8; k < n; k += 8)
      store_eight(out + k, _mm_loadl_epi64(reinterpret_cast<const __m128i*>(indices + k)), offset);
  }
  return n;
}

GT_VBMI2_TARGET std::size_t position_flips_vbmi2(const std::uint64_t* entries, const std::uint64_t* filter,
                                                 const std::uint64_t* exits, std::size_t words, std::uint32_t* flips) {
  return find_position_flips(entries, filter, exits, words, flips, store_set_bits_compressed);
}
#pragma GCC diagnostic pop

// position_flips where the AVX-512 trade lanes run.
using PositionFlips = std::size_t (*)(const std::uint64_t*, const std::uint64_t*, const std::uint64_t*, std::size_t,
                                      std::uint32_t*);
PositionFlips position_flips_for_lanes() {
  static const PositionFlips chosen = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vbmi2") && __builtin_cpu_supports("avx512bw") ? position_flips_vbmi2
                                                                                       : position_flips_bmi;
  }();
  return chosen;
}

}  // namespace

LongTradeBook::LongTradeBook(const Bars& bars, const ExecutionOptions& options)
    : n_(bars.size()),
      words_((bars.size() + 63) / 64),
      padded_(words_ * 64),
      lag_(options.fill == Fill::kNextOpen ? 1 : 0),
      cash_(options.cash),
      periods_per_year_(resolve_periods_per_year(bars, options)),
      facts_(ma_cross_bar_facts(bars, options)),
      ranges_(build_range_table(bars.close)) {}

Metrics LongTradeBook::simulate(std::span<const std::uint32_t> flips) const {
  MaCrossAccount account(n_, cash_);
  const RangeTableView ranges{ranges_.data(), n_};
  for (std::size_t j = 0; j < flips.size(); j += 2) {
    const std::size_t e = flips[j] + lag_;
    if (e >= n_) break;  // an entry whose fill would come after the last bar
    const std::size_t x = j + 1 < flips.size() ? std::min<std::size_t>(flips[j + 1] + lag_, n_) : n_;
    account.trade(facts_.data(), ranges, e, x);
  }
  return account.finish(periods_per_year_);
}

LongTradeBook::Batch::Batch(const LongTradeBook& book, std::span<Metrics> out)
    : book_(book), out_(out), lanes_(trade_lanes_supported()) {
  if (lanes_) {
    capacity_ = out.size() * 64;  // about as many flips as most combinations have, so it seldom grows
    flips_ = std::make_unique_for_overwrite<std::uint32_t[]>(capacity_);
    stored_.reserve(out.size());
  } else {
    scratch_.resize(book.padded_ + 4);
  }
}

void LongTradeBook::Batch::add(std::uint32_t slot, const std::uint64_t* entries, const std::uint64_t* filter,
                               const std::uint64_t* exits) {
  if (!lanes_) {
    const std::size_t count = position_flips(entries, filter, exits, book_.words_, scratch_.data());
    out_[slot] = book_.simulate({scratch_.data(), count});
    return;
  }
  const std::size_t most = book_.padded_ + 4;
  if (capacity_ < used_ + most) {  // grows without zero-filling
    capacity_ = 2 * (used_ + most);
    auto grown = std::make_unique_for_overwrite<std::uint32_t[]>(capacity_);
    std::copy_n(flips_.get(), used_, grown.get());
    flips_ = std::move(grown);
  }
  const std::size_t count = position_flips_for_lanes()(entries, filter, exits, book_.words_, flips_.get() + used_);
  stored_.push_back({slot, static_cast<std::uint32_t>(count), used_});
  used_ += count;
}

// Books the stored combinations eight at a time (book_trade_lanes). A batch runs as many steps as
// its busiest lane has trades, so the combinations are batched in order of their flip counts: grid
// order left a third of the lanes' steps idle (a volume-filtered combination trades about half as
// often as its unfiltered neighbour).
void LongTradeBook::Batch::finish() {
  if (!lanes_) return;
  std::vector<std::uint64_t> counts(stored_.size());
  for (std::size_t c = 0; c < counts.size(); ++c) counts[c] = stored_[c].count;
  const std::vector<std::uint32_t> by_count = order_by_key(counts);
  std::vector<std::uint32_t> lane_major;  // flip j of lane l at [j * kTradeLanes + l] (trade_lanes.hpp)
  const std::size_t n = book_.n_;
  for (std::size_t first = 0; first < by_count.size(); first += kTradeLanes) {
    const std::size_t used = std::min(kTradeLanes, by_count.size() - first);
    const std::size_t steps = (stored_[by_count[first + used - 1]].count + 1) / 2;  // the busiest lane's
    lane_major.resize(std::max(lane_major.size(), (2 * steps + 7) / 8 * 8 * kTradeLanes));
    const std::uint32_t* lane_flips[kTradeLanes];
    std::uint32_t lane_counts[kTradeLanes];
    for (std::size_t l = 0; l < kTradeLanes; ++l) {
      lane_flips[l] = l < used ? flips_.get() + stored_[by_count[first + l]].first : nullptr;
      lane_counts[l] = l < used ? stored_[by_count[first + l]].count : 0;
    }
    lay_out_lanes(lane_flips, lane_counts, static_cast<std::uint32_t>(n), steps, lane_major.data());
    LaneAccounts accounts;
    book_trade_lanes(book_.facts_.data(), {book_.ranges_.data(), n}, n, book_.lag_, book_.cash_,
                     {lane_major.data(), steps}, accounts);
    double annual_growth[kTradeLanes];
    annual_growth_lanes(accounts, book_.periods_per_year_, annual_growth);
    for (std::size_t l = 0; l < used; ++l)
      out_[stored_[by_count[first + l]].slot] =
          finalize_metrics(accounts.sums[l], book_.periods_per_year_, annual_growth[l]);
  }
}

}  // namespace gt::detail
