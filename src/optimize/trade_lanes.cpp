// MaCrossAccount::trade, eight lanes at a time. Every lane performs the scalar account's operations
// in the scalar account's order (-ffp-contract=off: no fused multiply-adds), so its sums are the
// same doubles; where the scalar code branches, the lanes compute both sides and keep one under a
// mask, and the rare divisions run only when some lane needs them.
#include "trade_lanes.hpp"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

// GCC 12 flags the deliberately undefined source operand inside its own AVX-512 intrinsics (GCC
// bug 105593, fixed in GCC 13).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace gt::detail {
namespace {

constexpr long long kFactDoubles = sizeof(MaCrossBarFacts) / sizeof(double);
static_assert(sizeof(MaCrossBarFacts) % sizeof(double) == 0 && sizeof(RangeStats) == 3 * sizeof(double));

bool& forced_off() {
  static bool off = false;
  return off;
}

bool cpu_has_lanes() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}

#define GT_LANES_TARGET __attribute__((target("avx512f,avx512cd,avx512dq,avx512vl")))

// One field (its byte offset) of the bars whose facts start `fact_index` doubles in, for the lanes
// of `mask`; 0 elsewhere.
GT_LANES_TARGET inline __m512d fact(const MaCrossBarFacts* facts, std::size_t field_offset, __m512i fact_index,
                                    __mmask8 mask) {
  const auto* base = reinterpret_cast<const char*>(facts) + field_offset;
  return _mm512_mask_i64gather_pd(_mm512_setzero_pd(), mask, fact_index, base, 8);
}

// larger(a, b) and smaller(a, b) of ma_cross_evaluator.hpp, with the same choice on ties.
GT_LANES_TARGET inline __m512d larger(__m512d a, __m512d b) {
  return _mm512_mask_blend_pd(_mm512_cmp_pd_mask(a, b, _CMP_LT_OQ), a, b);
}
GT_LANES_TARGET inline __m512d smaller(__m512d a, __m512d b) {
  return _mm512_mask_blend_pd(_mm512_cmp_pd_mask(b, a, _CMP_LT_OQ), a, b);
}

// MaCrossAccount's state, one lane per combination, and its updates under a lane mask.
struct LaneState {
  __m512d equity, peak, floor, max_drawdown;
  __m512d sum_r, sum_r2, sum_down2, gross_profit, gross_loss, sum_trade_return;
  __m512i held_bars, trades, wins;

  GT_LANES_TARGET explicit LaneState(double cash) {
    equity = peak = floor = _mm512_set1_pd(cash);
    max_drawdown = sum_r = sum_r2 = sum_down2 = gross_profit = gross_loss = sum_trade_return = _mm512_setzero_pd();
    held_bars = trades = wins = _mm512_setzero_si512();
  }
  GT_LANES_TARGET __m512d floor_under(__m512d p) const {
    return _mm512_mul_pd(p, _mm512_sub_pd(_mm512_set1_pd(1.0), max_drawdown));
  }
  GT_LANES_TARGET void deepen(__mmask8 m, __m512d drawdown) {
    max_drawdown = _mm512_mask_mov_pd(max_drawdown, m, drawdown);
    floor = _mm512_mask_mov_pd(floor, m, floor_under(peak));
  }
  GT_LANES_TARGET void raise_peak(__mmask8 m, __m512d value) {
    peak = _mm512_mask_mov_pd(peak, m, value);
    floor = _mm512_mask_mov_pd(floor, m, floor_under(peak));
  }
};

// entry_*[in] + exit_*[held] of one return sum (the two fields' byte offsets), for the active
// lanes: MaCrossAccount::trade's order of operations.
GT_LANES_TARGET inline __m512d returns(const MaCrossBarFacts* facts, std::size_t entry_field, std::size_t exit_field,
                                       __m512i in, __m512i held, __mmask8 active) {
  return _mm512_add_pd(fact(facts, entry_field, in, active), fact(facts, exit_field, held, active));
}

// One RangeStats field (0 high, 1 low, 2 drawdown) of the entries starting `index` doubles in.
GT_LANES_TARGET inline __m512d range_field(const RangeStats* table, __m512i index, int field, __mmask8 active) {
  return _mm512_mask_i64gather_pd(_mm512_setzero_pd(), active, index, reinterpret_cast<const double*>(table) + field,
                                  8);
}

#ifdef GT_LIBMVEC
// glibc's AVX-512 pow of eight doubles (x86-64 vector function ABI; libmvec).
extern "C" __m512d _ZGVeN8vv_pow(__m512d, __m512d);
#endif

}  // namespace

GT_LANES_TARGET void annual_growth_lanes(const LaneAccounts& accounts, double periods_per_year, double* out) {
  alignas(64) double growth[kTradeLanes];
  for (std::size_t l = 0; l < kTradeLanes; ++l) {
    const double g = accounts.sums[l].final_equity / accounts.sums[l].initial_equity;
    growth[l] = g > 0 ? g : 1.0;  // a power finalize_metrics does not read: 1, not NaN
  }
  const double exponent = periods_per_year / static_cast<double>(accounts.sums[0].bars);
#ifdef GT_LIBMVEC
  _mm512_storeu_pd(out, _ZGVeN8vv_pow(_mm512_load_pd(growth), _mm512_set1_pd(exponent)));
#else
  for (std::size_t l = 0; l < kTradeLanes; ++l) out[l] = std::pow(growth[l], exponent);
#endif
}

bool trade_lanes_supported() {
  static const bool cpu = cpu_has_lanes();
  return cpu && !forced_off();
}

bool force_trade_lanes(bool enabled) {
  forced_off() = !enabled;
  return trade_lanes_supported();
}

// Eight flips of eight lanes at a time: one masked load per lane (`bars` past its count), an 8x8
// transposition in registers, one store per row (a scalar store per flip cost as much as a sixth
// of the booking).
GT_LANES_TARGET void lay_out_lanes(const std::uint32_t* const* flips, const std::uint32_t* counts, std::uint32_t bars,
                                   std::size_t steps, std::uint32_t* lane_major) {
  const __m256i fill = _mm256_set1_epi32(static_cast<int>(bars));
  for (std::size_t j = 0; j < 2 * steps; j += 8) {
    __m256i r[kTradeLanes];
    for (std::size_t l = 0; l < kTradeLanes; ++l) {
      const std::size_t left = counts[l] > j ? counts[l] - j : 0;
      const auto mask = static_cast<__mmask8>(left >= 8 ? 0xFF : (1u << left) - 1);
      r[l] = _mm256_mask_loadu_epi32(fill, mask, flips[l] + std::min<std::size_t>(j, counts[l]));
    }
    // Pairs of 32-bit, then of 64-bit elements, then 128-bit halves: row k holds flip j + k of
    // every lane.
    __m256i t[kTradeLanes], u[kTradeLanes];
    for (std::size_t q = 0; q < kTradeLanes; q += 2) {
      t[q] = _mm256_unpacklo_epi32(r[q], r[q + 1]);
      t[q + 1] = _mm256_unpackhi_epi32(r[q], r[q + 1]);
    }
    for (std::size_t q = 0; q < kTradeLanes; q += 4) {
      u[q] = _mm256_unpacklo_epi64(t[q], t[q + 2]);
      u[q + 1] = _mm256_unpackhi_epi64(t[q], t[q + 2]);
      u[q + 2] = _mm256_unpacklo_epi64(t[q + 1], t[q + 3]);
      u[q + 3] = _mm256_unpackhi_epi64(t[q + 1], t[q + 3]);
    }
    auto* row = reinterpret_cast<__m256i*>(lane_major + j * kTradeLanes);
    for (std::size_t k = 0; k < 4; ++k) {
      _mm256_storeu_si256(row + k, _mm256_permute2x128_si256(u[k], u[k + 4], 0x20));
      _mm256_storeu_si256(row + k + 4, _mm256_permute2x128_si256(u[k], u[k + 4], 0x31));
    }
  }
}

GT_LANES_TARGET void book_trade_lanes(const MaCrossBarFacts* facts, RangeTableView ranges, std::size_t bars,
                                      std::size_t lag, double cash, TradeLanes lanes, LaneAccounts& out) {
  const __m512d one = _mm512_set1_pd(1.0), zero = _mm512_setzero_pd();
  const __m512i n = _mm512_set1_epi64(static_cast<long long>(bars));
  const __m512i lag_v = _mm512_set1_epi64(static_cast<long long>(lag));
  const __m512i one_i = _mm512_set1_epi64(1);
  const __m512i table_bars = _mm512_set1_epi64(static_cast<long long>(ranges.bars));
  const __m512i fact_doubles = _mm512_set1_epi64(kFactDoubles);
  LaneState a(cash);

  for (std::size_t step = 0; step < lanes.steps; ++step) {
    const std::uint32_t* pair = lanes.flips + 2 * step * kTradeLanes;
    const __m512i e =
        _mm512_add_epi64(_mm512_cvtepu32_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(pair))), lag_v);
    const __m512i x = _mm512_min_epu64(
        _mm512_add_epi64(_mm512_cvtepu32_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(pair + 8))), lag_v),
        n);
    const __mmask8 active = _mm512_cmplt_epu64_mask(e, n);
    if (!active) break;  // a lane that has run out stays out: no later step has a trade either
    const __mmask8 closed = active & _mm512_cmplt_epu64_mask(x, n);
    const __mmask8 open = active & static_cast<__mmask8>(~closed);
    const __m512i last_held = _mm512_sub_epi64(x, one_i);  // x == bars: held to the last close

    const __m512i in = _mm512_mullo_epi64(e, fact_doubles);
    const __m512i held = _mm512_mullo_epi64(last_held, fact_doubles);
    const __m512d entry_cost = fact(facts, offsetof(MaCrossBarFacts, entry_cost), in, active);
    a.sum_r = _mm512_mask_add_pd(
        a.sum_r, active, a.sum_r,
        returns(facts, offsetof(MaCrossBarFacts, entry_r), offsetof(MaCrossBarFacts, exit_r), in, held, active));
    a.sum_r2 = _mm512_mask_add_pd(
        a.sum_r2, active, a.sum_r2,
        returns(facts, offsetof(MaCrossBarFacts, entry_r2), offsetof(MaCrossBarFacts, exit_r2), in, held, active));
    a.sum_down2 = _mm512_mask_add_pd(a.sum_down2, active, a.sum_down2,
                                     returns(facts, offsetof(MaCrossBarFacts, entry_down2),
                                             offsetof(MaCrossBarFacts, exit_down2), in, held, active));
    a.held_bars = _mm512_mask_add_epi64(a.held_bars, active, a.held_bars,
                                        _mm512_add_epi64(_mm512_sub_epi64(last_held, e), one_i));

    // RangeTableView::parts: level = bit_width(e ^ last_held) - 1 (at least 0); then the entries of
    // e and last_held in that level's row, 3 doubles each.
    const __m512i width = _mm512_sub_epi64(_mm512_set1_epi64(64), _mm512_lzcnt_epi64(_mm512_xor_si512(e, last_held)));
    const __m512i level = _mm512_sub_epi64(_mm512_max_epu64(width, one_i), one_i);
    const __m512i row = _mm512_mul_epu32(level, table_bars);
    const __m512i left = _mm512_mullo_epi64(_mm512_add_epi64(row, e), _mm512_set1_epi64(3));
    const __m512i right = _mm512_mullo_epi64(_mm512_add_epi64(row, last_held), _mm512_set1_epi64(3));
    const __m512d left_high = range_field(ranges.table, left, 0, active);
    const __m512d right_low = range_field(ranges.table, right, 1, active);
    const __m512d low = smaller(range_field(ranges.table, left, 1, active), right_low);
    const __m512d high = larger(left_high, range_field(ranges.table, right, 0, active));

    // The held stretch's drawdown, as MaCrossAccount::trade tests it.
    const __m512d units = _mm512_div_pd(a.equity, entry_cost);  // equity / in.entry_cost
    const __mmask8 under_peak =
        active & _mm512_cmp_pd_mask(_mm512_mul_pd(a.equity, low), _mm512_mul_pd(a.floor, entry_cost), _CMP_LT_OQ);
    if (under_peak) a.deepen(under_peak, _mm512_sub_pd(one, _mm512_div_pd(_mm512_mul_pd(units, low), a.peak)));
    const __mmask8 own_drawdown =
        active & _mm512_cmp_pd_mask(low, _mm512_mul_pd(high, _mm512_sub_pd(one, a.max_drawdown)), _CMP_LT_OQ);
    if (own_drawdown) {
      const __m512d inner = _mm512_sub_pd(one, _mm512_div_pd(right_low, left_high));
      a.deepen(own_drawdown, larger(larger(a.max_drawdown, range_field(ranges.table, left, 2, active)),
                                    larger(range_field(ranges.table, right, 2, active), inner)));
    }
    const __mmask8 new_peak =
        active & _mm512_cmp_pd_mask(_mm512_mul_pd(a.equity, high), _mm512_mul_pd(a.peak, entry_cost), _CMP_GT_OQ);
    a.raise_peak(new_peak, _mm512_mul_pd(units, high));

    // Still held at the last close: marked to it (next_value there is the close).
    const __m512d next_value = fact(facts, offsetof(MaCrossBarFacts, next_value), held, active);
    a.equity = _mm512_mask_mov_pd(a.equity, open, _mm512_mul_pd(units, next_value));

    // Closed at the exit's fill.
    const __m512d growth = _mm512_div_pd(next_value, entry_cost);
    const __m512d cash_after = _mm512_mul_pd(a.equity, growth);
    const __mmask8 higher = closed & _mm512_cmp_pd_mask(cash_after, a.peak, _CMP_GT_OQ);
    a.raise_peak(higher, cash_after);
    const __mmask8 lower =
        closed & static_cast<__mmask8>(~higher) & _mm512_cmp_pd_mask(cash_after, a.floor, _CMP_LT_OQ);
    if (lower) a.deepen(lower, _mm512_sub_pd(one, _mm512_div_pd(cash_after, a.peak)));
    const __m512d trade_return = _mm512_sub_pd(growth, one);
    const __m512d pnl = _mm512_mul_pd(a.equity, trade_return);
    const __mmask8 won = closed & _mm512_cmp_pd_mask(pnl, zero, _CMP_GT_OQ);
    const __mmask8 lost = closed & _mm512_cmp_pd_mask(pnl, zero, _CMP_LT_OQ);
    a.trades = _mm512_mask_add_epi64(a.trades, closed, a.trades, one_i);
    a.wins = _mm512_mask_add_epi64(a.wins, won, a.wins, one_i);
    a.gross_profit = _mm512_mask_add_pd(a.gross_profit, won, a.gross_profit, pnl);
    a.gross_loss = _mm512_mask_sub_pd(a.gross_loss, lost, a.gross_loss, pnl);  // += -pnl, the same double
    a.sum_trade_return = _mm512_mask_add_pd(a.sum_trade_return, closed, a.sum_trade_return, trade_return);
    a.equity = _mm512_mask_mov_pd(a.equity, closed, cash_after);
  }

  alignas(64) double v[8][kTradeLanes];
  alignas(64) long long k[3][kTradeLanes];
  _mm512_store_pd(v[0], a.equity);
  _mm512_store_pd(v[1], a.max_drawdown);
  _mm512_store_pd(v[2], a.sum_r);
  _mm512_store_pd(v[3], a.sum_r2);
  _mm512_store_pd(v[4], a.sum_down2);
  _mm512_store_pd(v[5], a.gross_profit);
  _mm512_store_pd(v[6], a.gross_loss);
  _mm512_store_pd(v[7], a.sum_trade_return);
  _mm512_store_si512(k[0], a.held_bars);
  _mm512_store_si512(k[1], a.trades);
  _mm512_store_si512(k[2], a.wins);
  for (std::size_t l = 0; l < kTradeLanes; ++l) {
    MetricSums& s = out.sums[l];
    s = MetricSums{};
    s.bars = bars;
    s.initial_equity = cash;
    s.final_equity = v[0][l];
    s.max_drawdown = v[1][l];
    s.sum_r = v[2][l];
    s.sum_r2 = v[3][l];
    s.sum_down2 = v[4][l];
    s.gross_profit = v[5][l];
    s.gross_loss = v[6][l];
    s.sum_trade_return = v[7][l];
    s.held_bars = static_cast<std::size_t>(k[0][l]);
    s.trades = k[1][l];
    s.wins = k[2][l];
  }
}

}  // namespace gt::detail
