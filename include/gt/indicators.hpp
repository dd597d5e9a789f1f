// Technical indicators with TA-Lib's conventions (docs/SEMANTICS.md "Indicators"): each output has the input's length
// and its first `lookback` values are NaN. The arithmetic follows TA-Lib's own order of operations, so values agree
// with it to the last few bits.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace gt::ind {

using Series = std::vector<double>;

// TA-Lib's MAType numbering.
enum class MaType : int { kSma = 0, kEma = 1, kWma = 2, kDema = 3, kTema = 4, kKama = 6 };

int ma_lookback(MaType type, int period);

Series sma(std::span<const double> in, int period);
Series ema(std::span<const double> in, int period);
Series wma(std::span<const double> in, int period);
Series dema(std::span<const double> in, int period);
Series tema(std::span<const double> in, int period);
Series kama(std::span<const double> in, int period);
Series ma(MaType type, std::span<const double> in, int period);

Series rsi(std::span<const double> in, int period);
Series roc(std::span<const double> in, int period);
Series atr(std::span<const double> high, std::span<const double> low, std::span<const double> close, int period);
Series adx(std::span<const double> high, std::span<const double> low, std::span<const double> close, int period);
Series obv(std::span<const double> close, std::span<const double> volume);

struct Macd {
  Series macd, signal, hist;
};
Macd macd(std::span<const double> in, int fast, int slow, int signal);

struct Bands {
  Series upper, middle, lower;
};
Bands bbands(std::span<const double> in, int period, double nbdev_up, double nbdev_down);

struct Stoch {
  Series k, d;
};
Stoch stoch(std::span<const double> high, std::span<const double> low, std::span<const double> close, int fastk,
            int slowk, int slowd);

// Many periods of one moving average over one series, the optimizer's main request: rows are
// periods, each row the full series (row-major, `cols` = input length).
struct SeriesMatrix {
  std::size_t rows = 0, cols = 0;
  std::vector<double> values;
  std::span<const double> row(std::size_t r) const { return {values.data() + r * cols, cols}; }
};
SeriesMatrix ma_many(MaType type, std::span<const double> in, std::span<const int> periods);
// Where a row of ma_many can be computed again from, bit for bit, without keeping the row: the
// state of its recurrence before the first bar of each stride of kResumeStride bars that holds a
// value (SMA: the running total; EMA: the previous value; WMA: its weighted sum and the plain sum
// it subtracts). A few bytes a stride, against 8 a bar for the row.
inline constexpr std::size_t kResumeStride = 64;
struct MaResume {
  double first = 0, second = 0;
};
// The same into caller-owned rows: row r starts at out + r * row_stride (row_stride >= input
// length; the values past the input's length are left untouched). With `resume` (SMA, EMA and WMA
// only), also each row's resume points: row r's for stride s at resume[r * strides + s], strides
// being ceil(input length / kResumeStride).
void ma_many_into(MaType type, std::span<const double> in, std::span<const int> periods, double* out,
                  std::size_t row_stride, MaResume* resume = nullptr);
// The values of stride `stride` of the `period` SMA, EMA or WMA of `in` up to bar `to` (exclusive,
// within the stride), computed again from the stride's resume point as ma_many_into wrote them:
// word[j] is bar stride * kResumeStride + j, NaN before the average's first value.
void ma_resume(MaType type, std::span<const double> in, int period, const MaResume& point, std::size_t stride,
               std::size_t to, double* word);

// Throws ParamError unless min_period <= period and period <= bars (naming the indicator).
void check_period(std::string_view indicator, std::string_view parameter, int period, int min_period, std::size_t bars);

}  // namespace gt::ind

// The indicator table behind `gtrader indicator` and the Python package: one entry per name.
#include <optional>

namespace gt {
struct Bars;
}

namespace gt::ind {

struct IndicatorArgs {
  std::optional<int> period, fast, slow, signal, fastk, slowk, slowd;
  std::optional<double> nbdev;
};

struct NamedSeries {
  std::string name;
  Series values;
};

// Computes indicator `name` (case-insensitive: SMA, EMA, ..., OBV) over `bars` with TA-Lib's
// defaults for arguments not given. Throws ParamError for an unknown name, an argument the
// indicator does not take, or a period out of range.
std::vector<NamedSeries> compute(std::string_view name, const Bars& bars, const IndicatorArgs& args);
std::vector<std::string> indicator_names();

}  // namespace gt::ind
