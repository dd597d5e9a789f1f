// The portfolio engine's fast path (include/gt/portfolio.hpp portfolio_metrics_lanes): several
// combinations stepped together through the union timeline, one per vector lane, where only the
// rules move positions. This file lays the combinations' events out for the kernel
// (portfolio_lanes_kernel.inc, compiled per instruction set), runs the one the CPU can, and turns
// each lane's sums into its metrics; tests/cpp/portfolio_test.cpp checks them against the
// reference engine's, bit for bit.
#include "portfolio_lanes.hpp"

#include <algorithm>
#include <iterator>
#include <string_view>

#include "gt/error.hpp"
#include "gt/portfolio.hpp"

namespace gt {
namespace {

static_assert(kPortfolioLanes == detail::kLaneCount);
constexpr std::size_t kLanes = kPortfolioLanes;

// What a thread's groups of lanes reuse: the buffers, sized again only when the window's shape
// changes (the dense events zero between windows and groups: each takes its events out again).
struct Workspace {
  std::vector<std::uint8_t> signal;     // [timestamp in the window][symbol][lane]
  std::vector<std::uint64_t> eventful;  // [timestamp in the window]
  std::vector<const double*> close_at, open_at;
  std::vector<double> weight, state, block_sums, pnl, ret;
  std::vector<std::int64_t> sides;
  std::vector<std::size_t> trade_first, trade_count, next_event;
};

struct Kernel {
  const char* isa;
  void (*run)(detail::LanesView&);
  bool (*cpu_runs)();
};
const Kernel kKernels[] = {
    {"x86-64-v4", &detail::run_lanes_x86_64_v4,
     [] {
       return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
              __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
              __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2");
     }},
    {"x86-64-v3", &detail::run_lanes_x86_64_v3,
     [] {
       return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi") &&
              __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("movbe") && __builtin_cpu_supports("f16c") &&
              __builtin_cpu_supports("popcnt");
     }},
    {"baseline", &detail::run_lanes_baseline, [] { return true; }},
};
const Kernel*& chosen() {
  static const Kernel* kernel = [] {
    __builtin_cpu_init();
    return std::find_if(std::begin(kKernels), std::end(kKernels), [](const Kernel& k) { return k.cpu_runs(); });
  }();
  return kernel;
}

std::size_t& forced_window() {
  static std::size_t timestamps = 0;
  return timestamps;
}

}  // namespace

namespace detail {
void force_portfolio_lanes_window(std::size_t timestamps) {
  forced_window() = timestamps;
}
const char* portfolio_lanes_isa() {
  return chosen()->isa;
}
bool force_portfolio_lanes_isa(const char* isa) {
  for (const Kernel& k : kKernels)
    if (std::string_view(k.isa) == isa && k.cpu_runs()) {
      chosen() = &k;
      return true;
    }
  return false;
}
}  // namespace detail

bool portfolio_lanes_apply(const ExecutionOptions& options, const PortfolioOptions& portfolio, std::size_t symbols) {
  return portfolio.rebalance == 0 && symbols <= 64 && !options.exits.by_price_or_time() && !(options.exits.risk > 0);
}

void portfolio_metrics_lanes(const std::vector<Bars>& symbols, const PortfolioLayout& layout,
                             std::span<const SymbolEvents> events, const ExecutionOptions& options,
                             const PortfolioOptions& portfolio, std::span<const BlockReturns* const> blocks,
                             std::span<Metrics> out) {
  const std::size_t lanes = out.size(), k = symbols.size(), n = layout.time.size();
  if (lanes == 0 || lanes > kLanes || events.size() != lanes * k || !(blocks.empty() || blocks.size() == lanes) ||
      !portfolio_lanes_apply(options, portfolio, k))
    throw Error("internal: portfolio_metrics_lanes called outside what it serves");
  thread_local Workspace w;
  // The timeline in windows whose events take at most about a megabyte (the whole of a daily
  // history of ten symbols is one window), so that the memory stays bounded for long intraday ones.
  const std::size_t window =
      forced_window() ? forced_window() : std::max<std::size_t>(64, (std::size_t{1} << 20) / (k * kLanes));
  // Each buffer by its own size: windows of different symbol counts can hold the same bytes of
  // events (2 x 65,536 and 4 x 32,768 timestamps) with different counts of timestamps.
  if (w.signal.size() != window * k * kLanes) w.signal.assign(window * k * kLanes, 0);
  if (w.eventful.size() != window) w.eventful.assign(window, 0);
  w.close_at.resize(k);
  w.open_at.resize(k);
  for (std::size_t s = 0; s < k; ++s) {
    w.close_at[s] = layout.close_at[s].data();
    w.open_at[s] = layout.open_at[s].data();
  }
  w.weight = entry_shares(options, portfolio, k);
  // The events of timestamps [begin, end) into the window (the kernel takes them out again as it
  // reads them), from each lane and symbol's next event on. Through plain pointers: the bytes
  // stored may alias anything, which would have every pointer loaded again each time.
  std::uint8_t* const signal = w.signal.data();
  std::uint64_t* const eventful = w.eventful.data();
  w.next_event.assign(kLanes * k, 0);
  const auto place = [&](std::size_t begin, std::size_t end) {
    for (std::size_t c = 0; c < lanes; ++c)
      for (std::size_t s = 0; s < k; ++s) {
        const SymbolEvents& e = events[c * k + s];
        const std::size_t* const timestamp = layout.timestamp_of[s].data();
        const std::uint32_t* const bar = e.bar.data();
        const std::uint8_t* const bits = e.signal.data();
        const std::uint64_t symbol = std::uint64_t{1} << s;
        std::size_t i = w.next_event[c * k + s];
        for (const std::size_t count = e.bar.size(); i < count; ++i) {
          const std::size_t u = timestamp[bar[i]];
          if (u >= end) break;
          signal[((u - begin) * k + s) * kLanes + c] = bits[i];
          eventful[u - begin] |= symbol;
        }
        w.next_event[c * k + s] = i;
      }
  };
  detail::LanesView view;
  view.symbols = k;
  view.lanes = lanes;
  view.signal = signal;
  view.eventful = eventful;
  view.trading = layout.trading.data();
  view.close_at = w.close_at.data();
  view.open_at = w.open_at.data();
  view.weight = w.weight.data();
  view.slip = options.slippage_bps / 10000.0;
  view.commission = options.commission;
  view.at_close = options.fill == Fill::kClose;
  view.allow_short = options.allow_short;
  // Each lane's sums go on from the caller's.
  if (!blocks.empty()) {
    view.blocks = blocks[0]->sums.size();
    view.block_starts = blocks[0]->starts.data();
    w.block_sums.assign(2 * view.blocks * kLanes, 0.0);
    view.block_sum = w.block_sums.data();
    view.block_sum2 = view.block_sum + view.blocks * kLanes;
    for (std::size_t c = 0; c < lanes; ++c)
      for (std::size_t b = 0; b < view.blocks; ++b) {
        view.block_sum[b * kLanes + c] = blocks[c]->sums[b].sum;
        view.block_sum2[b * kLanes + c] = blocks[c]->sums[b].sum2;
      }
  }
  // Each trade closes on an event of its lane and symbol (at that close, or at the next open by
  // the order it placed): room for as many trades as events.
  w.trade_first.assign(kLanes * k, 0);
  w.trade_count.assign(kLanes * k, 0);
  std::size_t room = 0;
  for (std::size_t c = 0; c < lanes; ++c)
    for (std::size_t s = 0; s < k; ++s) {
      w.trade_first[c * k + s] = room;
      room += events[c * k + s].bar.size();
    }
  w.pnl.resize(room);
  w.ret.resize(room);
  view.pnl = w.pnl.data();
  view.ret = w.ret.data();
  view.trade_first = w.trade_first.data();
  view.trade_count = w.trade_count.data();
  const std::size_t per_state = k * kLanes;
  w.state.assign(5 * per_state, 0.0);
  w.sides.assign(3 * per_state, 0);
  view.units = w.state.data();
  view.entry_price = view.units + per_state;
  view.entry_fee = view.entry_price + per_state;
  view.committed = view.entry_fee + per_state;
  view.pending_equity = view.committed + per_state;
  view.pending = w.sides.data();
  view.has_pending = view.pending + per_state;
  view.target = view.has_pending + per_state;

  for (std::size_t l = 0; l < kLanes; ++l) {
    view.cash[l] = view.prev[l] = view.peak[l] = options.cash;
    view.floor[l] = drawdown_floor(options.cash, 0.0);
    view.sum_r[l] = view.sum_r2[l] = view.sum_down2[l] = view.max_drawdown[l] = 0;
    view.held[l] = view.held_bars[l] = 0;
    view.alive[l] = l < lanes ? -1 : 0;
  }
  for (std::size_t begin = 0; begin < n; begin += window) {
    view.begin = begin;
    view.end = std::min(n, begin + window);
    place(view.begin, view.end);
    chosen()->run(view);
  }

  for (std::size_t c = 0; c < lanes; ++c) {
    if (!view.alive[c]) {
      out[c] = portfolio_metrics(symbols, layout, events.subspan(c * k, k), options, portfolio,
                                 blocks.empty() ? nullptr : blocks[c]);
      continue;
    }
    for (std::size_t b = 0; b < view.blocks; ++b) {
      blocks[c]->sums[b].sum = view.block_sum[b * kLanes + c];
      blocks[c]->sums[b].sum2 = view.block_sum2[b * kLanes + c];
    }
    MetricSums sums;
    sums.bars = n;
    sums.initial_equity = options.cash;
    sums.final_equity = view.prev[c];
    sums.sum_r = view.sum_r[c];
    sums.sum_r2 = view.sum_r2[c];
    sums.sum_down2 = view.sum_down2[c];
    sums.max_drawdown = view.max_drawdown[c];
    sums.held_bars = static_cast<std::size_t>(view.held_bars[c]);
    // The closed trades symbol by symbol, as the reference engine adds them.
    for (std::size_t s = 0; s < k; ++s)
      for (std::size_t i = 0; i < w.trade_count[c * k + s]; ++i) {
        const std::size_t at = w.trade_first[c * k + s] + i;
        sums.add_trade(w.pnl[at], w.ret[at]);
      }
    out[c] = finalize_metrics(sums, layout.periods_per_year);
  }
}

}  // namespace gt
