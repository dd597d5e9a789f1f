// Crossing events of a fast over a slow series as bit masks, 64 bars a word: the only O(bars)
// work per moving-average pair in the grid engine.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gt::detail {

// Where a series' doubles come from when its row is not kept: computed again, 64 bars at a time.
class ExactSource {
 public:
  // Bars 64w .. 64w + count - 1 (count <= 64) of the series into `out`.
  virtual void word(std::size_t w, std::size_t count, double* out) const = 0;

 protected:
  ~ExactSource() = default;
};

// A series in the two precisions the crossing test reads: float copies decide every bar whose
// gap is far outside the tie band; the doubles decide the few bars near a tie (on daily prices,
// about one word in a thousand), from the row itself or, without one (exact null), from `source`. The
// floats and a kept row hold words*64 values, padded with NaN.
struct CrossSeries {
  const double* exact;
  const float* coarse;
  const ExactSource* source = nullptr;

  // Bars 64w .. 64w + count - 1 in double precision: in the row, or computed into `scratch`.
  const double* word(std::size_t w, std::size_t count, double* scratch) const {
    if (exact != nullptr) return exact + 64 * w;
    source->word(w, count, scratch);
    return scratch;
  }
};

// The float rows (words*64 each) a caller crosses after this pair, or null: fetched toward L2 a
// line at a time beside the lines being compared, so that a pair whose rows are far apart in a
// table (a search's scattered combinations) or out of cache does not wait on memory at each row.
struct UpcomingRows {
  const float* rows[2] = {nullptr, nullptr};
};

// Bit t of up: fast is above slow at t (signal_rules.hpp's tie band) and at or below it at t-1,
// both defined at t-1 (t-1 >= defined_from) and t < bars; down is the mirror image (docs/SEMANTICS.md "ma_cross").
// `fast_bounds` holds 2 * words*64 floats: the fast series' float bounds (the tie band around
// each fast value), read there, computed and kept there for the slow series crossed with the same
// fast one next, or computed and used once (null `fast_bounds`): `FastBounds`. Dispatches at run
// time to AVX-512, AVX2 or portable code; all give the bits of the double-precision rule.
enum class FastBounds { kReady, kKeep, kOnce };
void cross_events(CrossSeries fast, CrossSeries slow, float* fast_bounds, FastBounds bounds, std::size_t bars,
                  std::size_t defined_from, std::uint64_t* up, std::uint64_t* down, UpcomingRows upcoming = {});

// The bits of word w for the bars from `defined_from` to the last (bars - 1).
std::uint64_t live_bits(std::size_t w, std::size_t bars, std::size_t defined_from);

// The float copy CrossSeries::coarse holds of `count` doubles.
void round_to_float(const double* in, float* out, std::size_t count);

// Which implementation cross_events uses on this machine ("avx512", "avx2", "portable").
const char* cross_events_isa();

// Forces one implementation (tests): false if this CPU lacks it.
bool force_cross_events_isa(const char* isa);

}  // namespace gt::detail
