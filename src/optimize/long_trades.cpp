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

// The first set bit at or after `from`; words * 64 when there is none.
inline std::size_t next_set_bit(const std::uint64_t* mask, std::size_t from, std::size_t words) {
  std::size_t w = from / 64;
  if (w >= words) return words * 64;
  std::uint64_t bits = mask[w] & (~std::uint64_t{0} << (from % 64));
  while (bits == 0) {
    if (++w == words) return words * 64;
    bits = mask[w];
  }
  return w * 64 + static_cast<std::size_t>(std::countr_zero(bits));
}

}  // namespace

// The price path after each entry of one combination's signals, searched once per entry and shared
// by every exit level that combinations with these signals try (docs/SEMANTICS.md "Exits by price
// and time"). A path is kept as its records: the bars whose Low is below every Low before it since
// the entry (the only bars where a stop can first be reached), likewise the Highs for a target, and
// the Lows furthest under the best price so far for a trailing stop. A level is then found among a
// handful of records instead of over the bars, whatever the number of levels tried.
struct PricePaths {
  enum Kind { kLows, kHighs, kTrail, kKinds };
  struct Record {
    std::uint32_t bar;
    double value;  // Low, High, or Low / best price so far
    double best;   // kTrail: the best price before this bar since the entry
  };
  struct Path {
    std::size_t rule_exit;  // the bar whose exit rule takes the position out; n: none
    std::size_t last;       // the last bar whose range can take it out before that
    std::size_t exposed;    // the first bar whose range it is exposed to
    double entry;           // the entry fill price, slippage included
    std::size_t first[kKinds], count[kKinds];
    bool built[kKinds];
  };

  std::vector<std::uint64_t> entries, exits;  // the signals these paths belong to
  std::vector<std::int32_t> path_of;          // per entry signal bar: its path, or -1
  std::vector<std::uint32_t> touched;         // the bars with a path, to clear
  std::vector<Path> paths;
  std::vector<Record> records[kKinds];

  // Takes these signals; the paths found so far stay when they are the same.
  void use(const std::uint64_t* entry_words, const std::uint64_t* filter, const std::uint64_t* exit_words,
           std::size_t words, std::size_t bars) {
    bool same = entries.size() == words;
    for (std::size_t w = 0; same && w < words; ++w)
      same = entries[w] == (filter ? entry_words[w] & filter[w] : entry_words[w]) && exits[w] == exit_words[w];
    if (same) return;
    entries.resize(words);
    exits.assign(exit_words, exit_words + words);
    for (std::size_t w = 0; w < words; ++w) entries[w] = filter ? entry_words[w] & filter[w] : entry_words[w];
    if (path_of.size() != bars) path_of.assign(bars, -1);
    for (const std::uint32_t s : touched) path_of[s] = -1;
    touched.clear();
    paths.clear();
    for (auto& r : records) r.clear();
  }
};

LongTradeBook::~LongTradeBook() = default;
LongTradeBook::Batch::~Batch() = default;

LongTradeBook::LongTradeBook(const Bars& bars, const ExecutionOptions& options)
    : n_(bars.size()),
      words_((bars.size() + 63) / 64),
      padded_(words_ * 64),
      lag_(options.fill == Fill::kNextOpen ? 1 : 0),
      cash_(options.cash),
      periods_per_year_(resolve_periods_per_year(bars, options)),
      facts_(ma_cross_bar_facts(bars, options)),
      ranges_(build_range_table(bars.close)),
      bars_(bars),
      options_(options),
      prefix_(close_return_prefix(bars.close)) {}

double LongTradeBook::entry_return(std::size_t e) const {
  return bars_.close[e] / facts_[e].entry_cost - 1.0;  // as ma_cross_bar_facts computes it
}

void LongTradeBook::add_held_returns(const BlockReturns& blocks, std::size_t e, std::size_t last,
                                     bool entry_joined) const {
  if (!entry_joined) blocks.add(e, entry_return(e));
  if (e + 1 <= last) view_of(blocks).add_held(prefix_.data(), e + 1, last);
}

Metrics LongTradeBook::simulate_with_exits(PricePaths& paths, const Exits& x, const BlockReturns* blocks) const {
  using Kind = PricePaths::Kind;
  MaCrossAccount account(n_, cash_);
  const RangeTableView ranges{ranges_.data(), n_};
  const double slip = options_.slippage_bps / 10000.0, commission = options_.commission;
  const auto& fill_price = lag_ ? bars_.open : bars_.close;
  const std::size_t exposed_after = lag_ ? 0 : 1;  // with close fills, the entry bar's range came before
  const auto max_bars = static_cast<std::size_t>(x.max_bars);
  const std::size_t none = static_cast<std::size_t>(-1);
  // What a unit sold at `price` brings, after slippage and commission (the reference engine's exit).
  const auto sale_value = [&](double price) {
    const double fill = price * (1.0 - slip);
    return fill - fill * commission;
  };

  // The path of the entry signalled at bar s, found on first use.
  const auto path_at = [&](std::size_t s) -> PricePaths::Path& {
    if (paths.path_of[s] >= 0) return paths.paths[static_cast<std::size_t>(paths.path_of[s])];
    PricePaths::Path p{};
    p.rule_exit = std::min(next_set_bit(paths.exits.data(), s + 1, words_), n_);
    p.last = std::min(p.rule_exit, n_ - 1);
    p.exposed = s + lag_ + exposed_after;
    p.entry = fill_price[s + lag_] * (1.0 + slip);  // as the reference engine's fill
    paths.path_of[s] = static_cast<std::int32_t>(paths.paths.size());
    paths.touched.push_back(static_cast<std::uint32_t>(s));
    paths.paths.push_back(p);
    return paths.paths.back();
  };
  // The records of one kind over the bars from the path's exposure to its last bar.
  const auto records_of = [&](PricePaths::Path& p, Kind kind) -> std::span<const PricePaths::Record> {
    auto& out = paths.records[kind];
    if (!p.built[kind]) {
      p.first[kind] = out.size();
      double best = p.entry, record = 0;
      for (std::size_t k = p.exposed; k <= p.last && k < n_; ++k) {
        const double low = bars_.low[k], high = bars_.high[k];
        if (kind == PricePaths::kLows && (out.size() == p.first[kind] || low < record))
          out.push_back({static_cast<std::uint32_t>(k), record = low, 0});
        if (kind == PricePaths::kHighs && (out.size() == p.first[kind] || high > record))
          out.push_back({static_cast<std::uint32_t>(k), record = high, 0});
        if (kind == PricePaths::kTrail) {
          // Ratios within rounding of the lowest so far are kept too, so that the exact test
          // Low <= best * (1 - q) that decides finds its first bar among them.
          const double ratio = low / best;
          if (out.size() == p.first[kind] || ratio <= record * (1.0 + 1e-12)) {
            out.push_back({static_cast<std::uint32_t>(k), ratio, best});
            record = out.size() == p.first[kind] + 1 ? ratio : std::min(record, ratio);
          }
          best = std::max(best, high);
        }
      }
      p.count[kind] = out.size() - p.first[kind];
      p.built[kind] = true;
    }
    return {out.data() + p.first[kind], p.count[kind]};
  };

  std::size_t from = options_.first_bar;  // the rules act from the window's first close on
  std::size_t joined_bar = none;          // a close-fill re-entry's bar: its one return went in with the exit
  for (;;) {
    const std::size_t s = next_set_bit(paths.entries.data(), from, words_);
    if (s + lag_ >= n_) break;  // no entry, or its fill would come after the last bar
    if (options_.close_at_end && lag_ == 0 && s + 1 == n_) break;  // nothing new at a window's last close
    PricePaths::Path& p = path_at(s);
    const std::size_t e = s + lag_;
    // The last bar whose range counts, and whether max_bars ends the trade at its close.
    std::size_t end = p.last;
    bool timed = false;
    if (max_bars > 0 && e + max_bars - 1 + exposed_after <= p.last) {
      end = e + max_bars - 1 + exposed_after;
      timed = true;
    }
    // The first bar in range of each level (none when beyond `end`).
    const auto first_record = [&](Kind kind, auto reached) {
      for (const auto& r : records_of(p, kind)) {
        if (r.bar > end) break;
        if (reached(r)) return static_cast<std::size_t>(r.bar);
      }
      return none;
    };
    const double stop = p.entry * (1.0 - x.stop_loss), target = p.entry * (1.0 + x.take_profit);
    const std::size_t at_stop =
        x.stop_loss > 0 ? first_record(PricePaths::kLows, [&](const auto& r) { return r.value <= stop; }) : none;
    const std::size_t at_target =
        x.take_profit > 0 ? first_record(PricePaths::kHighs, [&](const auto& r) { return r.value >= target; }) : none;
    double trail = 0;
    const std::size_t at_trail = x.trailing_stop > 0 ? first_record(PricePaths::kTrail,
                                                                    [&](const auto& r) {
                                                                      trail = r.best * (1.0 - x.trailing_stop);
                                                                      return bars_.low[r.bar] <= trail;
                                                                    })
                                                     : none;
    const std::size_t k = std::min({at_stop, at_target, at_trail});
    double price = 0;
    if (k != none) {
      // Within the bar as the reference engine decides: of the stops reached, the nearer; a stop
      // before a target; a gap through the level fills at the open.
      const bool stopped = at_stop == k || at_trail == k;
      const double guard = at_stop == k && at_trail == k ? std::max(stop, trail) : (at_stop == k ? stop : trail);
      const double open = bars_.open[k];
      price = stopped ? std::min(open, guard) : std::max(open, target);
    } else if (timed) {
      price = bars_.close[end];
    }
    if (k != none || timed) {
      const std::size_t out_bar = k != none ? k : end;
      // With close fills, an entry signalled at the exit bar fills at its close, in the same bar.
      const bool reentered = lag_ == 0 && next_set_bit(paths.entries.data(), out_bar, words_) == out_bar;
      book_exit(account, ranges, e, out_bar, sale_value(price), reentered, blocks, e == joined_bar);
      joined_bar = reentered ? out_bar : none;
      from = out_bar;  // entries again from that bar's close on
      continue;
    }
    const std::size_t x_bar = std::min(p.rule_exit + lag_, n_);
    if (x_bar == n_ && options_.close_at_end) {  // held to a window's end: out at its last close
      book_exit(account, ranges, e, n_ - 1, sale_value(bars_.close[n_ - 1]), false, blocks, e == joined_bar);
      break;
    }
    account.trade(facts_.data(), ranges, e, x_bar);
    if (blocks) {
      const std::size_t last_held = x_bar < n_ ? x_bar - 1 : n_ - 1;
      add_held_returns(*blocks, e, last_held, e == joined_bar);
      if (x_bar < n_) blocks->add(x_bar, facts_[x_bar - 1].next_value / bars_.close[x_bar - 1] - 1.0);
    }
    joined_bar = none;
    if (p.rule_exit >= n_) break;  // held to the last close
    from = p.rule_exit + 1;
  }
  account.sums.bars = n_ - options_.first_bar;  // the metrics count the window's bars alone
  return account.finish(periods_per_year_);
}

void LongTradeBook::book_exit(MaCrossAccount& account, RangeTableView ranges, std::size_t e, std::size_t k,
                              double value, bool reentered, const BlockReturns* blocks, bool entry_joined) const {
  const MaCrossBarFacts& in = facts_[e];
  double r = 0;
  if (k > e) {  // closes e..k-1 held, then the exit inside bar k (or at its close)
    if (blocks) {
      add_held_returns(*blocks, e, k - 1, entry_joined);
    }
    const ReturnPrefix& through = prefix_[k - 1];
    account.sums.sum_r += in.entry_r + through.r;
    account.sums.sum_r2 += in.entry_r2 + through.r2;
    account.sums.sum_down2 += in.entry_down2 + through.down2;
    account.sums.held_bars += k - e;
    account.hold(in, ranges, e, k - 1);
    r = value / bars_.close[k - 1] - 1.0;
  } else {  // out within the entry bar: its one return
    r = value / in.entry_cost - 1.0;
  }
  const double growth = value / in.entry_cost;
  const double cash = account.equity * growth;
  account.sums.add_trade(account.equity * (growth - 1.0), growth - 1.0);
  account.equity = cash;
  if (!reentered) {
    account.sums.add_return(r);
    account.dd.mark(cash);
    if (blocks) blocks->add(k, r);
    return;
  }
  // Bar k's one return is this exit's and the new entry's together; the next trade adds the entry's
  // alone (MaCrossBarFacts::entry_r), so the difference goes in here. Its close is marked by the
  // next trade, holding from it.
  const double reentry = entry_return(k);
  const double joined = (1.0 + r) * (1.0 + reentry) - 1.0;
  const auto down = [](double x) { return x < 0 ? x * x : 0.0; };
  account.sums.sum_r += joined - reentry;
  account.sums.sum_r2 += joined * joined - reentry * reentry;
  account.sums.sum_down2 += down(joined) - down(reentry);
  if (blocks) blocks->add(k, joined);
}

Metrics LongTradeBook::simulate_risk_sized(const std::uint64_t* entries, const std::uint64_t* filter,
                                           const std::uint64_t* exits, const Exits& rules,
                                           const BlockReturns* blocks) const {
  // Part of the equity stays in cash, so a stretch's returns are no sums of close-to-close returns:
  // the reference fills run on the signals, bar by bar.
  std::vector<std::uint8_t> events(n_);
  for (std::size_t t = 0; t < n_; ++t) {
    const std::uint64_t bit = std::uint64_t{1} << (t % 64);
    const bool entry = (entries[t / 64] & bit) && (!filter || (filter[t / 64] & bit));
    events[t] = static_cast<std::uint8_t>((entry ? kLongEntry : 0) | ((exits[t / 64] & bit) ? kLongExit : 0));
  }
  ExecutionOptions options = options_;
  options.exits = rules;
  return backtest_metrics(bars_, events, options, periods_per_year_, blocks);
}

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

void LongTradeBook::add_to_blocks(std::span<const std::uint32_t> flips, const BlockReturns& blocks) const {
  const BlockSumsView view = view_of(blocks);
  for (std::size_t j = 0; j < flips.size(); j += 2) {  // the trades simulate() books
    const std::size_t e = flips[j] + lag_;
    if (e >= n_) break;
    const std::size_t x = j + 1 < flips.size() ? std::min<std::size_t>(flips[j + 1] + lag_, n_) : n_;
    view.add_trade(bars_.close.data(), facts_.data(), prefix_.data(), e, x, n_);
  }
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
                               const std::uint64_t* exits, const Exits& exit_rules, const BlockReturns* blocks) {
  if (exit_rules.risk > 0) {
    out_[slot] = book_.simulate_risk_sized(entries, filter, exits, exit_rules, blocks);
    return;
  }
  // The walk over the entries: exits by price and time, windows.
  if (exit_rules.by_price_or_time() || book_.options_.first_bar > 0 || book_.options_.close_at_end) {
    if (!paths_) paths_ = std::make_unique<PricePaths>();
    paths_->use(entries, filter, exits, book_.words_, book_.n_);
    out_[slot] = book_.simulate_with_exits(*paths_, exit_rules, blocks);
    return;
  }
  if (!lanes_) {
    const std::size_t count = position_flips(entries, filter, exits, book_.words_, scratch_.data());
    out_[slot] = book_.simulate({scratch_.data(), count});
    if (blocks) book_.add_to_blocks({scratch_.data(), count}, *blocks);
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
  if (blocks) book_.add_to_blocks({flips_.get() + used_, count}, *blocks);
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
