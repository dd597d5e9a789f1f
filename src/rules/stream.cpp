// The rules evaluated bar by bar (program.hpp `stream`; docs/SEMANTICS.md "Live signals"): each
// node of a rule a state updated once per bar, every function's state one of gt/incremental.hpp's,
// so a bar costs the same whatever the history. The evaluation over every bar (rules.cpp) is the
// reference it equals: the same per-bar arithmetic (program.hpp) and the same indicator states.
#include <fmt/format.h>

#include <functional>

#include "gt/error.hpp"
#include "gt/incremental.hpp"
#include "program.hpp"

namespace gt::rules {
namespace {

namespace inc = ind::incremental;

// A node's value at each new bar. Every node is advanced at every bar (no short cut through `and`
// or `or`): its indicator states must see each bar once.
using Next = std::function<double(const BarValues&)>;

struct Stream {
  Next next;
  bool series = false;  // varies by bar (else one value, as a number or a parameter is)
};

// The indicator `State` applied from its input's first defined value on, as the evaluation over
// every bar applies each function to its input's defined tail.
template <class State, class... Args>
Next from_first_defined(Next x, Args... args) {
  auto state = std::make_shared<inc::FromDefined<State>>(args...);
  return [x = std::move(x), state](const BarValues& b) { return state->update(x(b)); };
}

class Builder {
 public:
  Builder(const Program& program, const ParamValues& values) : program_(program), values_(values) {}

  Stream build(const Node& n) {
    switch (n.kind) {
      case Node::kNumber:
      case Node::kBool:
        return constant(n.number);
      case Node::kName:
        for (std::size_t i = 0; i < program_.params.size(); ++i)
          if (program_.params[i].name == n.text) return constant(values_[i]);
        return {field(n.text), true};
      case Node::kNegate:
        return map1(n, [](double a) { return -a; });
      case Node::kNot:
        return map1(n, [](double a) { return not_value(a); });
      case Node::kAnd:
        return map2(n, [](double a, double b) { return and_value(a, b); });
      case Node::kOr:
        return map2(n, [](double a, double b) { return or_value(a, b); });
      case Node::kBinary:
        return with_op(binary_op(n.text), [&](auto o) {
          return map2(n, [](double x, double y) { return binary_value<decltype(o)::value>(x, y); });
        });
      case Node::kIndex: {
        Stream x = build(n.args[0]);
        const auto back = static_cast<std::size_t>(evaluate_scalar(program_, n.args[1], values_));
        if (!x.series || back == 0) return x;
        auto window = std::make_shared<inc::Window>(back + 1);
        return {[x = std::move(x.next), window, back](const BarValues& b) {
                  window->push(x(b));
                  return window->count() > back ? window->ago(back) : kUndefined;
                },
                true};
      }
      case Node::kCall:
        return {call(n), true};
    }
    throw Error("internal: unknown rule node");
  }

 private:
  static Stream constant(double v) {
    return {[v](const BarValues&) { return v; }, false};
  }
  Next field(const std::string& name) const {
    if (name == "open") return [](const BarValues& b) { return b.open; };
    if (name == "high") return [](const BarValues& b) { return b.high; };
    if (name == "low") return [](const BarValues& b) { return b.low; };
    if (name == "close") return [](const BarValues& b) { return b.close; };
    if (name == "volume") return [](const BarValues& b) { return b.volume; };
    throw ParamError(
        fmt::format("the rules read series '{}', a series of the user's own: bars arriving one by one "
                    "carry only open, high, low, close and volume",
                    name));
  }
  template <class F>
  Stream map1(const Node& n, F f) {
    Stream a = build(n.args[0]);
    const bool series = a.series;
    return {[a = std::move(a.next), f](const BarValues& b) { return f(a(b)); }, series};
  }
  template <class F>
  Stream map2(const Node& n, F f) {
    Stream a = build(n.args[0]), c = build(n.args[1]);
    const bool series = a.series || c.series;
    return {[a = std::move(a.next), c = std::move(c.next), f](const BarValues& b) {
              const double x = a(b), y = c(b);
              return f(x, y);
            },
            series};
  }
  int whole(const Node& n, std::size_t i, int minimum = 1) const {
    return whole_argument(n.args[i], evaluate_scalar(program_, n.args[i], values_), n.text, minimum);
  }
  Next call(const Node& n) {
    const std::string& f = n.text;
    Next x = takes_series(f) ? build(n.args[0]).next : Next();
    const auto period = [&](std::size_t i, int minimum = 1) { return whole(n, i, minimum); };
    if (f == "sma") return from_first_defined<inc::Sma>(std::move(x), period(1));
    if (f == "ema") return from_first_defined<inc::Ema>(std::move(x), period(1));
    if (f == "wma") return from_first_defined<inc::Wma>(std::move(x), period(1));
    if (f == "dema") return from_first_defined<inc::Dema>(std::move(x), period(1));
    if (f == "tema") return from_first_defined<inc::Tema>(std::move(x), period(1));
    if (f == "kama") return from_first_defined<inc::Kama>(std::move(x), period(1));
    if (f == "ma") {
      const int type = period(2, 0);
      if (type > 4) throw ParamError(fmt::format("ma: type = {} (allowed: 0 SMA, 1 EMA, 2 WMA, 3 DEMA, 4 TEMA)", type));
      return from_first_defined<inc::Ma>(std::move(x), static_cast<ind::MaType>(type), period(1));
    }
    if (f == "rsi") return from_first_defined<inc::Rsi>(std::move(x), period(1));
    if (f == "roc") return from_first_defined<inc::Roc>(std::move(x), period(1));
    if (f == "atr") {
      auto s = std::make_shared<inc::Atr>(period(0));
      return [s](const BarValues& b) { return s->update(b.high, b.low, b.close); };
    }
    if (f == "adx") {
      auto s = std::make_shared<inc::Adx>(period(0));
      return [s](const BarValues& b) { return s->update(b.high, b.low, b.close); };
    }
    if (f == "obv") {
      auto s = std::make_shared<inc::Obv>();
      return [s](const BarValues& b) { return s->update(b.close, b.volume); };
    }
    const CallOutput out = output_of(f);
    if (out.family == "macd") {
      const auto pick = [i = out.index](const inc::MacdValue& v) {
        return i == 0 ? v.macd : i == 1 ? v.signal : v.hist;
      };
      return defined_tail<inc::MacdState>(std::move(x), pick, period(1), period(2), period(3));
    }
    if (out.family == "bb") {
      const double k = evaluate_scalar(program_, n.args[2], values_);
      const auto pick = [i = out.index](const inc::BandsValue& v) {
        return i == 0 ? v.upper : i == 1 ? v.middle : v.lower;
      };
      return defined_tail<inc::BbandsState>(std::move(x), pick, period(1), k, k);
    }
    if (out.family == "stoch") {
      auto s = std::make_shared<inc::StochState>(period(0), period(1), period(2));
      const bool k = out.index == 0;
      return [s, k](const BarValues& b) {
        const inc::StochValue v = s->update(b.high, b.low, b.close);
        return k ? v.k : v.d;
      };
    }
    if (f == "highest" || f == "lowest") {
      auto s = std::make_shared<inc::Extreme>(period(1), f == "highest");
      return [x = std::move(x), s](const BarValues& b) { return s->update(x(b)); };
    }
    if (f == "abs") return [x = std::move(x)](const BarValues& b) { return std::fabs(x(b)); };
    Next a = std::move(x), c = build(n.args[1]).next;  // min, max and the crossings take two series
    if (f == "min" || f == "max")
      return [a = std::move(a), c = std::move(c), minimum = f == "min"](const BarValues& b) {
        const double u = a(b), v = c(b);
        return min_max_value(minimum, u, v);
      };
    // cross_above / cross_below: the bar before's values kept (undefined before the first bar).
    struct Before {
      double a = kUndefined, b = kUndefined;
    };
    auto before = std::make_shared<Before>();
    return [a = std::move(a), c = std::move(c), before, above = f == "cross_above"](const BarValues& bar) {
      const double u = a(bar), v = c(bar);
      const double value = cross_value(above, u, v, before->a, before->b);
      *before = {u, v};
      return value;
    };
  }
  // A call with several outputs over its input's defined tail: all undefined until the input is.
  template <class State, class Pick, class... Args>
  static Next defined_tail(Next x, Pick pick, Args... args) {
    auto state = std::make_shared<State>(args...);
    auto started = std::make_shared<bool>(false);
    return [x = std::move(x), pick, state, started](const BarValues& b) {
      const double v = x(b);
      if (!*started && std::isnan(v)) return kUndefined;
      *started = true;
      return pick(state->update(v));
    };
  }

  const Program& program_;
  const ParamValues& values_;
};

class RuleStream final : public SignalStream {
 public:
  RuleStream(const Program& p, const ParamValues& values) {
    Builder builder(p, values);
    entry_ = builder.build(p.entry).next;
    exit_ = builder.build(p.exit).next;
    if (p.short_entry) {
      short_entry_ = builder.build(*p.short_entry).next;
      short_exit_ = builder.build(*p.short_exit).next;
    }
  }
  std::uint8_t next(const BarValues& bar) override {
    const auto is_true = [](double v) { return !std::isnan(v) && v != 0; };
    const bool entry = is_true(entry_(bar)), exit = is_true(exit_(bar));
    if (!short_entry_) return rule_events(entry, exit, false, false, false);
    const bool short_entry = is_true(short_entry_(bar)), short_exit = is_true(short_exit_(bar));
    return rule_events(entry, exit, true, short_entry, short_exit);
  }

 private:
  Next entry_, exit_, short_entry_, short_exit_;
};

}  // namespace

std::unique_ptr<SignalStream> stream(const Program& program, const ParamValues& values) {
  return std::make_unique<RuleStream>(program, values);
}

}  // namespace gt::rules
