// Long-only, whole-equity trades from entry and exit bit masks (64 bars a word): the bars where
// the position flips, then every trade booked in O(1) by MaCrossAccount, eight combinations at a
// time in AVX-512 lanes where the CPU has them. The ma_cross engine and the rules' grid engine
// both book their combinations here, so both fill exactly as the reference engine does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <span>
#include <vector>

#include "cache_line_array.hpp"
#include "ma_cross_evaluator.hpp"

namespace gt::detail {

struct PricePaths;  // long_trades.cpp

class LongTradeBook {
 public:
  // The options the book simulates exactly: long-only, each entry committing the whole equity.
  static bool serves(const ExecutionOptions& options) { return !options.allow_short && options.size == 1.0; }

  LongTradeBook(const Bars& bars, const ExecutionOptions& options);
  ~LongTradeBook();

  std::size_t bars() const { return n_; }
  std::size_t words() const { return words_; }

  // The combinations of one evaluate() call: add each one's masks, then finish() writes every
  // result. Not shared between threads.
  class Batch {
   public:
    Batch(const LongTradeBook& book, std::span<Metrics> out);
    ~Batch();
    // Entries (those with a bit in `filter`, when it is given) take a flat position long; exits
    // take a long position flat. `words()` words each; result slot `slot` of `out`. `exit_rules`:
    // the combination's exits by price and time, and its risk sizing.
    // `blocks`: also each bar's return added to its block (a study's robustness).
    void add(std::uint32_t slot, const std::uint64_t* entries, const std::uint64_t* filter, const std::uint64_t* exits,
             const Exits& exit_rules = {}, const BlockReturns* blocks = nullptr);
    void finish();

   private:
    struct Stored {
      std::uint32_t slot, count;
      std::size_t first;
    };
    const LongTradeBook& book_;
    std::span<Metrics> out_;
    bool lanes_;
    std::unique_ptr<std::uint32_t[]> flips_;  // every stored combination's flips, one after another
    std::size_t capacity_ = 0, used_ = 0;
    std::vector<Stored> stored_;
    std::vector<std::uint32_t> scratch_;  // one combination's flips, without the lanes
    std::unique_ptr<PricePaths> paths_;   // for combinations with exits by price and time
  };

 private:
  Metrics simulate(std::span<const std::uint32_t> flips) const;
  // The returns of the trades simulate() books for these flips, added to their blocks.
  void add_to_blocks(std::span<const std::uint32_t> flips, const BlockReturns& blocks) const;
  Metrics simulate_with_exits(PricePaths& paths, const Exits& exits, const BlockReturns* blocks) const;
  // A trade entered at the fill of bar e, out inside bar k (or at its close) with `value` per unit;
  // `reentered`: a new trade is entered at bar k's close.
  void book_exit(MaCrossAccount& account, RangeTableView ranges, std::size_t e, std::size_t k, double value,
                 bool reentered, const BlockReturns* blocks, bool entry_joined) const;
  Metrics simulate_risk_sized(const std::uint64_t* entries, const std::uint64_t* filter, const std::uint64_t* exits,
                              const Exits& rules, const BlockReturns* blocks) const;
  // Block sums: the return of the entry bar e; and those of a trade entered at e and held through
  // the close of `last`, the entry bar's left out when the exit before it already added it.
  double entry_return(std::size_t e) const;
  void add_held_returns(const BlockReturns& blocks, std::size_t e, std::size_t last, bool entry_joined) const;

  std::size_t n_, words_, padded_, lag_;
  double cash_, periods_per_year_;
  std::vector<MaCrossBarFacts> facts_;          // one cache line per bar
  detail::CacheLineVector<RangeStats> ranges_;  // build_range_table(closes)
  const Bars& bars_;
  ExecutionOptions options_;
  // The returns of a stretch that a price or time exit ends inside a bar.
  std::vector<ReturnPrefix> prefix_;
};

}  // namespace gt::detail
