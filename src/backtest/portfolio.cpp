// The portfolio engine (include/gt/portfolio.hpp): every symbol's position an Account of the
// reference engine paying from one cash, stepped through the union of the symbols' timestamps.
#include "gt/portfolio.hpp"

#include <fmt/format.h>
#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <deque>
#include <iterator>

#include "account.hpp"
#include "gt/error.hpp"

namespace gt {

void check_portfolio(const std::vector<Bars>& symbols, const PortfolioOptions& portfolio) {
  const auto names = [&] {
    std::vector<std::string> out;
    for (const Bars& b : symbols) out.push_back(b.source.empty() ? b.symbol : b.source);
    return fmt::format("{}", fmt::join(out, ", "));
  };
  if (symbols.size() < 2)
    throw ParamError({"portfolio"},
                     fmt::format("portfolio needs at least two symbols, and {} gives {}: give more data, or "
                                 "test it alone without portfolio",
                                 symbols.empty() ? "this study" : names(), symbols.size()));
  for (const Bars& b : symbols)
    if (b.size() == 0) throw ParamError({"portfolio"}, fmt::format("{}: no bars", b.source));
  for (const Bars& b : symbols)
    if (b.intraday != symbols.front().intraday)
      throw ParamError(
          {"portfolio"},
          fmt::format("portfolio: daily and intraday files mixed: {} is {}, {} is {}", symbols.front().source,
                      symbols.front().intraday ? "intraday" : "daily", b.source, b.intraday ? "intraday" : "daily"));
  for (std::size_t i = 0; i < symbols.size(); ++i)
    for (std::size_t j = i + 1; j < symbols.size(); ++j) {
      const Bars &a = symbols[i], &b = symbols[j];
      if (a.time.back() < b.time.front() || b.time.back() < a.time.front())
        throw ParamError(
            {"portfolio"},
            fmt::format("portfolio: the bars of {} ({} to {}) and {} ({} to {}) do not overlap at all", a.source,
                        format_time(a.time.front(), a.intraday), format_time(a.time.back(), a.intraday), b.source,
                        format_time(b.time.front(), b.intraday), format_time(b.time.back(), b.intraday)));
    }
  const auto& w = portfolio.weights;
  if (!w.empty()) {
    if (w.size() != symbols.size())
      throw ParamError({"weights"},
                       fmt::format("weights gives {} value(s) for {} symbols ({}): one per symbol, in their order",
                                   w.size(), symbols.size(), names()));
    double sum = 0;
    for (std::size_t i = 0; i < w.size(); ++i) {
      if (!(w[i] >= 0) || !std::isfinite(w[i]))
        throw ParamError({"weights"},
                         fmt::format("weights: the value for {} is {}; each is 0 or more", symbols[i].source, w[i]));
      sum += w[i];
    }
    if (sum > 1 + 1e-12) throw ParamError({"weights"}, fmt::format("weights sum to {}: at most 1 (no leverage)", sum));
  }
}

std::vector<std::int64_t> portfolio_timeline(const std::vector<Bars>& symbols) {
  // Each symbol's times ascend: merged one symbol at a time, duplicates dropped as they meet.
  std::vector<std::int64_t> time, merged;
  for (const Bars& b : symbols) {
    merged.clear();
    merged.reserve(time.size() + b.time.size());
    std::set_union(time.begin(), time.end(), b.time.begin(), b.time.end(), std::back_inserter(merged));
    time.swap(merged);
  }
  return time;
}

namespace {

// One symbol of the portfolio: its bars, position and orders.
struct Book {
  Book(const Bars& b, const ExecutionOptions& o, double& cash, const std::vector<std::int64_t>& at)
      : bars(b), bar_at(at), account(o, trades, cash), exits(o.exits) {}
  const Bars& bars;
  const std::vector<std::int64_t>& bar_at;  // per timestamp: its bar there, -1 for none
  std::vector<Trade> trades;
  detail::Account account;
  detail::PriceExits exits;
  int pending = 0;  // the target decided at its last close, filled at its next open
  bool has_pending = false;
  double pending_equity = 0;  // the portfolio's equity at that close
  double rebalance = 0;       // value to add (< 0: take off) at its next open
  bool has_rebalance = false;
  double last_close = 0;
  std::size_t last_bar = 0;
};

// Bit i: whether signals[i] holds an event, for 64 bars: the scan turns once an event rather than
// once a few bars (whether a few bars hold one is a coin toss to the branch predictor).
std::uint64_t eventful_bars(const std::uint8_t* signals) {
  const __m128i none = _mm_setzero_si128();
  std::uint64_t mask = 0;
  for (int j = 0; j < 4; ++j) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(signals + 16 * j));
    const auto quiet = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(bytes, none)));
    mask |= static_cast<std::uint64_t>(~quiet & 0xFFFFu) << (16 * j);
  }
  return mask;
}

// A position held, for marking it at any timestamp.
struct Holding {
  std::size_t symbol;
  double units;
  const double* close;  // the symbol's last close at each timestamp
};

// The equity at timestamp u: the cash and every position held, marked at its symbol's last close
// (in symbol order).
double marked(double cash, std::span<const Holding> holding, std::size_t u) {
  double equity = cash;
  for (const Holding& h : holding) equity += h.units * h.close[u];
  return equity;
}

}  // namespace

void symbol_events(std::span<const std::uint8_t> signals, SymbolEvents& out) {
  out.clear();
  const std::size_t bars = signals.size();
  std::size_t t = 0;
  for (; t + 64 <= bars; t += 64)
    for (std::uint64_t mask = eventful_bars(signals.data() + t); mask; mask &= mask - 1) {
      const std::size_t i = t + static_cast<std::size_t>(std::countr_zero(mask));
      out.add(i, signals[i]);
    }
  for (; t < bars; ++t)
    if (signals[t] != 0) out.add(t, signals[t]);
}

std::vector<double> entry_shares(const ExecutionOptions& options, const PortfolioOptions& portfolio,
                                 std::size_t symbols) {
  std::vector<double> share(symbols);
  for (std::size_t s = 0; s < symbols; ++s)
    share[s] = options.size * (portfolio.weights.empty() ? 1.0 / static_cast<double>(symbols) : portfolio.weights[s]);
  return share;
}

PortfolioLayout portfolio_layout(const std::vector<Bars>& symbols, const ExecutionOptions& options) {
  PortfolioLayout layout;
  layout.time = portfolio_timeline(symbols);
  const std::size_t n = layout.time.size();
  for (const Bars& b : symbols) {
    std::vector<std::int64_t>& at = layout.bar_at.emplace_back(n, -1);
    std::size_t u = 0;
    for (std::size_t t = 0; t < b.size(); ++t) {
      while (layout.time[u] < b.time[t]) ++u;
      at[u] = static_cast<std::int64_t>(t);
    }
    std::vector<std::size_t>& timestamp = layout.timestamp_of.emplace_back(b.size());
    for (std::size_t v = 0; v < n; ++v)
      if (at[v] >= 0) timestamp[static_cast<std::size_t>(at[v])] = v;
    std::vector<double>& open = layout.open_at.emplace_back(n, 0.0);
    for (u = 0; u < n; ++u)
      if (at[u] >= 0) open[u] = b.open[static_cast<std::size_t>(at[u])];
    std::vector<double>& close = layout.close_at.emplace_back(n, 0.0);
    std::vector<std::size_t>& last = layout.last_bar_at.emplace_back(n, 0);
    for (u = 0; u < n; ++u) {
      close[u] = at[u] >= 0 ? b.close[static_cast<std::size_t>(at[u])] : (u > 0 ? close[u - 1] : 0.0);
      last[u] = at[u] >= 0 ? static_cast<std::size_t>(at[u]) : (u > 0 ? last[u - 1] : 0);
    }
  }
  layout.trading.assign(n, 0);
  for (std::size_t s = 0; s < std::min<std::size_t>(symbols.size(), 64); ++s)
    for (std::size_t u = 0; u < n; ++u)
      if (layout.bar_at[s][u] >= 0) layout.trading[u] |= std::uint64_t{1} << s;
  Bars timeline;
  timeline.time = layout.time;
  timeline.intraday = symbols.front().intraday;
  timeline.close.resize(n);
  layout.periods_per_year = resolve_periods_per_year(timeline, options);
  return layout;
}

namespace {

// One combination through the union timeline (docs/SEMANTICS.md "Portfolios"), `options` being the
// combination's. Its metrics; with `paths`, also the equity, the values, the trades and the rest of
// a PortfolioResult; with `blocks`, the equity's returns per block.
// A timestamp where nothing can change (no symbol trading there has an event or an order, no exit
// by price or time can apply, no rebalance) only marks the positions to market.
Metrics simulate_portfolio(const std::vector<Bars>& symbols, const PortfolioLayout& layout,
                           std::span<const SymbolEvents> events_of, const ExecutionOptions& options,
                           const PortfolioOptions& portfolio, PortfolioResult* paths, const BlockReturns* blocks) {
  const std::size_t k = symbols.size();
  const std::size_t n = layout.time.size();
  double cash = options.cash;
  std::deque<Book> books;  // stable addresses: each Account refers to its book's trades
  for (std::size_t s = 0; s < k; ++s) books.emplace_back(symbols[s], options, cash, layout.bar_at[s]);
  std::vector<Book*> book_at;  // by symbol, without the deque's indexing
  for (Book& book : books) book_at.push_back(&book);
  // The events at each timestamp, in symbol order: those of timestamp u are events[event_start[u]
  // .. event_start[u + 1]), each with its symbol's bar and signal, so that a scan of them reads
  // nothing else.
  struct Event {
    std::uint32_t symbol, bar;
    std::uint8_t signal;
  };
  std::vector<std::uint32_t> event_start(n + 1, 0);
  for (std::size_t s = 0; s < k; ++s) {
    for (const std::uint32_t t : events_of[s].bar) ++event_start[layout.timestamp_of[s][t] + 1];
    book_at[s]->trades.reserve(events_of[s].bar.size());  // each trade opens on an event
  }
  for (std::size_t u = 0; u < n; ++u) event_start[u + 1] += event_start[u];
  std::vector<Event> events(event_start[n]);
  {
    std::vector<std::uint32_t> next(event_start.begin(), event_start.end() - 1);
    for (std::size_t s = 0; s < k; ++s)
      for (std::size_t e = 0; e < events_of[s].bar.size(); ++e) {
        const std::uint32_t t = events_of[s].bar[e];
        events[next[layout.timestamp_of[s][t]]++] = {static_cast<std::uint32_t>(s), t, events_of[s].signal[e]};
      }
  }
  const std::vector<double> weight = entry_shares(options, portfolio, k);
  const double commission = options.commission;
  const Exits& x = options.exits;
  const bool watched_while_held = x.by_price_or_time();
  std::uint64_t skipped_entries = 0;
  // An entry of `side` for symbol s at `price` (bar t): its share of `equity`, in units at the fill,
  // no more than the cash pays for (none at all: skipped and counted).
  const auto enter = [&](Book& book, std::size_t s, int side, double price, std::size_t t, double equity,
                         std::size_t first_exposed) {
    const double fill = book.account.entry_fill(side, price);
    double units = detail::weighted_units(weight[s], equity, fill);
    if (x.risk > 0) units = std::min(units, x.risk * equity / (fill * x.stop_loss));
    if (!(units > 0)) return;  // a weight of 0: no entry to make
    // No cash at all (what a rounding leaves of it counts as none): skipped, and counted.
    if (cash <= detail::kNoCash * equity) {
      ++skipped_entries;
      return;
    }
    units = std::min(units, detail::affordable_units(cash, fill, commission));
    book.account.open_units(side, price, t, units);
    book.exits.start(book.account.trade().entry_price, first_exposed);
  };
  const auto max_bars = static_cast<std::size_t>(x.max_bars);
  const std::size_t held_from = options.fill == Fill::kClose ? 1 : 0;
  if (paths) {
    paths->equity.resize(n);
    paths->value.assign(k, std::vector<double>(n));
  }
  CurveAccumulator curve(options.cash);
  std::vector<int> target(k), now_of(k);  // each symbol's position after its rules at a close, and before
  bool ruined = false;
  // Books with an order for their next open; of them, with a rebalance; with a position.
  std::size_t orders = 0, rebalancing = 0, held = 0;
  std::vector<std::uint32_t> waiting;  // the symbols whose book has an order, in symbol order
  std::vector<Holding> holding;        // in symbol order: rebuilt after a full step, updated after a symbol's fills
  std::vector<int> direction(k, 0);    // each symbol's, kept with `holding`
  const auto take_stock = [&] {
    holding.clear();
    for (std::size_t s = 0; s < k; ++s) {
      direction[s] = book_at[s]->account.direction();
      if (const double units = book_at[s]->account.units(); units != 0)
        holding.push_back({s, units, layout.close_at[s].data()});
    }
    held = holding.size();
  };
  // The same after fills of symbol s alone.
  const auto restock = [&](std::size_t s) {
    direction[s] = book_at[s]->account.direction();
    const double units = book_at[s]->account.units();
    std::size_t at = 0;
    while (at < holding.size() && holding[at].symbol < s) ++at;
    if (at < holding.size() && holding[at].symbol == s) {
      if (units != 0)
        holding[at].units = units;
      else
        holding.erase(holding.begin() + static_cast<std::ptrdiff_t>(at));
    } else if (units != 0) {
      holding.insert(holding.begin() + static_cast<std::ptrdiff_t>(at), {s, units, layout.close_at[s].data()});
    }
    held = holding.size();
  };
  const auto count_orders = [&] {
    orders = rebalancing = 0;
    for (const Book* book : book_at) {
      orders += book->has_pending || book->has_rebalance;
      rebalancing += book->has_rebalance;
    }
  };
  const auto mark_at = [&](std::size_t u) { return marked(cash, holding, u); };
  // The same where fills may have changed any position since the list was last taken (a full step).
  const auto mark_afresh = [&](std::size_t u) {
    take_stock();
    return mark_at(u);
  };
  const auto rebalance_at = [&](std::size_t u) {
    return portfolio.rebalance > 0 && (u + 1) % portfolio.rebalance == 0;
  };
  const auto record = [&](std::size_t u, double equity) {
    if (paths) {
      for (std::size_t s = 0; s < k; ++s) paths->value[s][u] = book_at[s]->account.units() * layout.close_at[s][u];
      paths->equity[u] = equity;
    }
    const double r = curve.add(equity, !ruined && held > 0);
    if (blocks) blocks->add(u, r);
  };
  // At timestamp u's opens, the orders of the symbols trading there: exits before entries, entries
  // in the symbols' order (sized by the equity at the close that placed them); rebalancing after.
  const auto fill_orders = [&](std::size_t u) {
    for (const std::uint32_t s : waiting)
      if (Book& book = *book_at[s];
          book.bar_at[u] >= 0 && book.account.direction() != 0 && book.pending != book.account.direction()) {
        const auto t = static_cast<std::size_t>(book.bar_at[u]);
        book.account.close_position(book.bars.open[t], t, ExitReason::kRule);
      }
    if (rebalancing > 0)
      for (Book* book : book_at)
        if (const auto t = book->bar_at[u];
            t >= 0 && book->has_rebalance && book->rebalance < 0 && book->account.direction())
          book->account.adjust(book->account.direction() * book->rebalance / book->bars.open[t], book->bars.open[t], t);
    std::size_t still_waiting = 0;
    for (const std::uint32_t s : waiting) {
      Book& book = *book_at[s];
      if (book.bar_at[u] < 0) {  // not trading here: its order waits on
        waiting[still_waiting++] = s;
        continue;
      }
      const auto t = static_cast<std::size_t>(book.bar_at[u]);
      if (book.pending != 0 && book.account.direction() == 0)
        enter(book, s, book.pending, book.bars.open[t], t, book.pending_equity, t);
      book.has_pending = false;
      --orders;  // a book has an order or a rebalance, never both
      restock(s);
    }
    waiting.resize(still_waiting);
    if (rebalancing > 0)
      for (std::size_t s = 0; s < k; ++s) {
        Book& book = *book_at[s];
        const auto t = book.bar_at[u];
        if (t < 0 || !book.has_rebalance) continue;
        if (book.rebalance > 0 && book.account.direction()) {
          const double fill = book.account.entry_fill(book.account.direction(), book.bars.open[t]);
          const double units =
              std::min(book.rebalance / book.bars.open[t], detail::affordable_units(cash, fill, commission));
          if (units > 0) book.account.adjust(book.account.direction() * units, book.bars.open[t], t);
        }
        book.has_rebalance = false;
        --orders;
        --rebalancing;
        restock(s);
      }
  };
  // The rules at timestamp u's closes, on the symbols with an event there (no other position can
  // change): with close fills their exits, then their entries sized by `equity` (this close's,
  // before them); else orders for their next opens.
  const auto apply_rules = [&](std::size_t u, double equity) {
    const std::span<const Event> eventful(events.data() + event_start[u], events.data() + event_start[u + 1]);
    for (const Event& e : eventful) {
      const std::size_t s = e.symbol, t = e.bar;
      Book& book = *book_at[s];
      const int now = direction[s];
      now_of[s] = now;
      target[s] = detail::target_after(now, e.signal, options.allow_short);
      if (target[s] == now) continue;
      if (options.fill == Fill::kClose) {
        if (now != 0) book.account.close_position(layout.close_at[s][u], t, ExitReason::kRule);
      } else {
        book.pending = target[s];
        book.pending_equity = equity;
        book.has_pending = true;
        ++orders;
        waiting.insert(std::upper_bound(waiting.begin(), waiting.end(), static_cast<std::uint32_t>(s)),
                       static_cast<std::uint32_t>(s));
      }
    }
    if (options.fill != Fill::kClose) return;
    for (const Event& e : eventful)
      if (target[e.symbol] != 0 && book_at[e.symbol]->account.direction() == 0)
        enter(*book_at[e.symbol], e.symbol, target[e.symbol], layout.close_at[e.symbol][u], e.bar, equity, e.bar + 1);
    for (const Event& e : eventful)
      if (target[e.symbol] != now_of[e.symbol]) restock(e.symbol);
  };
  for (std::size_t u = 0; u < n; ++u) {
    if (!ruined && rebalancing == 0 && !(watched_while_held && (held > 0 || orders > 0))) {
      // Timestamps where nothing can change (no symbol trading there has an event, no order is
      // waiting, no exit by price or time applies, no rebalance): the positions marked to market.
      std::size_t end = u;
      // Events that leave their symbol's position as it is (an exit signal while flat, say) change
      // nothing either: positions stay as they are over the stretch.
      const auto changes_nothing = [&](std::size_t v) {
        for (std::uint32_t i = event_start[v]; i < event_start[v + 1]; ++i) {
          const Event& e = events[i];
          if (detail::target_after(direction[e.symbol], e.signal, options.allow_short) != direction[e.symbol])
            return false;
        }
        return true;
      };
      if (orders == 0)  // with orders waiting, their fills come first
        while (end < n && !rebalance_at(end) && changes_nothing(end)) ++end;
      for (; u < end; ++u) {
        const double equity = mark_at(u);
        if (!(equity > 0)) break;  // ruin: decided below
        record(u, equity);
      }
      if (u == n) break;
      // A timestamp where only waiting orders and the rules act.
      if (orders > 0 && !rebalance_at(u)) fill_orders(u);
      const double equity = mark_at(u);
      if (equity > 0 && !rebalance_at(u)) {
        apply_rules(u, equity);
        // Rules that fill at the next open leave the positions, hence the marks, as they are.
        record(u, options.fill == Fill::kClose ? mark_at(u) : equity);
        continue;
      }
    }
    const auto bar = [&](const Book& book) { return book.bar_at[u]; };
    for (std::size_t s = 0; s < k; ++s) {
      book_at[s]->last_close = layout.close_at[s][u];
      book_at[s]->last_bar = layout.last_bar_at[s][u];
    }
    if (!ruined) {
      if (orders > 0) fill_orders(u);  // at the opens (nothing to do there without orders)
      // Over the bars' ranges: exits by price (of positions held); then the closes.
      if (held > 0)
        for (Book& book : books)
          if (const auto t = bar(book); t >= 0)
            if (const auto hit = book.exits.check(book.bars, t, book.account.direction()))
              book.account.close_position(hit->price, t, hit->reason);
      double equity = mark_afresh(u);
      if (equity <= 0) {  // ruin: every position out at its last close, for good
        for (Book& book : books)
          if (book.account.direction()) book.account.close_position(book.last_close, book.last_bar, ExitReason::kRuin);
        ruined = true;
        if (paths) paths->ruined_at = u;
      } else {
        if (max_bars > 0) {
          for (Book& book : books) {
            const auto t = bar(book);
            if (t >= 0 && book.account.direction() &&
                static_cast<std::size_t>(t) + 1 - book.account.trade().entry_bar == max_bars + held_from)
              book.account.close_position(book.last_close, t, ExitReason::kMaxBars);
          }
          equity = mark_afresh(u);
        }
        apply_rules(u, equity);
        if (rebalance_at(u)) {
          const double now = mark_afresh(u);
          for (std::size_t s = 0; s < k; ++s) {
            Book& book = *book_at[s];
            if (!book.account.direction() || (book.has_pending && book.pending != book.account.direction())) continue;
            book.rebalance = weight[s] * now - std::fabs(book.account.units()) * book.last_close;
            book.has_rebalance = book.rebalance != 0;
          }
        }
      }
      count_orders();
      take_stock();
    }
    record(u, ruined ? 0.0 : mark_at(u));
  }
  for (std::size_t s = 0; s < k; ++s) book_at[s]->last_close = layout.close_at[s][n - 1];
  if (paths) {
    paths->contribution.assign(k, 0.0);
    paths->skipped_entries = skipped_entries;
  }
  for (std::size_t s = 0; s < k; ++s) {
    Book& book = *book_at[s];
    for (const Trade& t : book.trades)
      if (!t.open) {
        curve.sums().add_trade(t.pnl, t.ret);
        if (paths) paths->contribution[s] += t.pnl;
      }
    if (!paths) continue;
    paths->contribution[s] += book.account.open_pnl(book.last_close);
    book.account.end(book.bars.size());
    paths->trades.push_back(std::move(book.trades));
  }
  return finalize_metrics(curve.sums(), layout.periods_per_year);
}

}  // namespace

Metrics portfolio_metrics(const std::vector<Bars>& symbols, const PortfolioLayout& layout,
                          std::span<const SymbolEvents> events, const ExecutionOptions& options,
                          const PortfolioOptions& portfolio, const BlockReturns* blocks) {
  return simulate_portfolio(symbols, layout, events, options, portfolio, nullptr, blocks);
}

PortfolioResult run_portfolio(const std::vector<Bars>& symbols, const Strategy& strategy, const ParamValues& values,
                              const ExecutionOptions& base, const PortfolioOptions& portfolio,
                              std::span<SeriesCache> series) {
  base.validate();
  check_portfolio(symbols, portfolio);
  strategy.require_signals();
  strategy.validate(values);
  const ExecutionOptions options = strategy.options_for(base, values);
  options.exits.validate();
  if (!series.empty() && series.size() != symbols.size())
    throw Error(fmt::format("run_portfolio: {} series caches for {} symbols", series.size(), symbols.size()));
  std::vector<SymbolEvents> events(symbols.size());
  for (std::size_t s = 0; s < symbols.size(); ++s) {
    SeriesCache own;
    std::vector<std::uint8_t> signals(symbols[s].size());
    strategy.signals(symbols[s], values, signals, series.empty() ? own : series[s]);
    symbol_events(signals, events[s]);
  }
  const PortfolioLayout layout = portfolio_layout(symbols, options);
  PortfolioResult out;
  out.metrics = simulate_portfolio(symbols, layout, events, options, portfolio, &out, nullptr);
  out.time = layout.time;
  out.periods_per_year = layout.periods_per_year;
  return out;
}

}  // namespace gt
