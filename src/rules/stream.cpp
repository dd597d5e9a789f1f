// The rules evaluated bar by bar (program.hpp `stream`; docs/SEMANTICS.md "Live signals"): each
// node of a rule a state updated once per bar, every function's state one of gt/incremental.hpp's,
// so a bar costs the same whatever the history. The evaluation over every bar (rules.cpp) is the
// reference it equals: the same per-bar arithmetic (program.hpp) and the same indicator states.
#include <fmt/format.h>

#include <functional>

#include "functions.hpp"
#include "gt/error.hpp"
#include "gt/incremental.hpp"
#include "program.hpp"

namespace gt::rules {
namespace {

namespace inc = ind::incremental;

// Every node is advanced at every bar (no short cut through `and` or `or`): its indicator states
// must see each bar once.
struct Stream {
  Next next;
  bool series = false;  // varies by bar (else one value, as a number or a parameter is)
};

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
  // A call through its function's evaluation bar by bar (functions.cpp).
  Next call(const Node& n) {
    const Function& function = function_named(n.text);
    CallBarByBar call;
    call.whole = [&](std::size_t i, int minimum) {
      return whole_argument(n.args[i], evaluate_scalar(program_, n.args[i], values_), n.text, minimum);
    };
    call.scalar = [&](std::size_t i) { return evaluate_scalar(program_, n.args[i], values_); };
    call.series = [&](std::size_t i) { return build(n.args[i]).next; };
    call.output = function.output.index;
    return function.bar_by_bar(call);
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
