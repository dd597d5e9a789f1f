// Rules as expressions (include/gt/rules.hpp; docs/SEMANTICS.md "Rules"): a parser with positions
// for messages, a type check, and an evaluator over every bar. Series and conditions are both kept
// as doubles per bar: a number, or 1 (true), 0 (false), NaN (undefined).
#include "gt/rules.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "functions.hpp"
#include "gt/backtest.hpp"
#include "gt/error.hpp"
#include "gt/signal_rules.hpp"
#include "program.hpp"

namespace gt::rules {
namespace {

// ---- Parsing ------------------------------------------------------------------------------------

// Where an expression came from, for messages that point at its fault.
struct Source {
  std::string_view text;
  std::string name;
  std::size_t line = 0;  // the expression's line in its file; 0: not from a file
  std::string what;      // "entry", "constraint 2"

  [[noreturn]] void fail(std::size_t column, const std::string& message) const {
    const std::string where = line ? fmt::format("{}:{}:{}", name, line, column) : name;
    throw ParamError(fmt::format("{}: {}: {}\n  {}\n  {}^", where, what, message, text,
                                 std::string(column > 0 ? column - 1 : 0, ' ')));
  }
};

class Parser {
 public:
  explicit Parser(const Source& source) : src_(source), text_(source.text) {}

  Node parse() {
    skip_space();
    if (at_ >= text_.size()) src_.fail(1, "the rule is empty");
    Node n = parse_or();
    skip_space();
    if (at_ < text_.size()) src_.fail(at_ + 1, fmt::format("unexpected '{}'", text_.substr(at_, 1)));
    return n;
  }

 private:
  void skip_space() {
    while (at_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[at_]))) ++at_;
  }
  bool take(std::string_view token) {
    skip_space();
    if (text_.substr(at_, token.size()) != token) return false;
    // A keyword ends at a word boundary ("order" is not "or" followed by "der").
    if (std::isalpha(static_cast<unsigned char>(token[0])) && at_ + token.size() < text_.size() &&
        (std::isalnum(static_cast<unsigned char>(text_[at_ + token.size()])) || text_[at_ + token.size()] == '_'))
      return false;
    at_ += token.size();
    return true;
  }
  Node make(Node::Kind kind, std::size_t at) const {
    Node n;
    n.kind = kind;
    n.line = 1;
    n.column = at + 1;
    return n;
  }
  Node parse_or() {
    Node left = parse_and();
    for (skip_space(); take("or"); skip_space()) left = join(Node::kOr, "or", std::move(left), parse_and());
    return left;
  }
  Node parse_and() {
    Node left = parse_not();
    for (skip_space(); take("and"); skip_space()) left = join(Node::kAnd, "and", std::move(left), parse_not());
    return left;
  }
  // A prefix operator (`not`, `-`) applied to its own level, else the level `next`.
  Node parse_prefix(const char* op, Node::Kind kind, Node (Parser::*self)(), Node (Parser::*next)()) {
    skip_space();
    const std::size_t at = at_;
    if (!take(op)) return (this->*next)();
    Node n = make(kind, at);
    n.args.push_back((this->*self)());
    return n;
  }
  Node parse_not() { return parse_prefix("not", Node::kNot, &Parser::parse_not, &Parser::parse_comparison); }
  Node parse_comparison() {
    Node left = parse_sum();
    skip_space();
    for (const char* op : {"<=", ">=", "==", "!=", "<", ">"}) {
      const std::size_t at = at_;
      if (take(op)) {
        Node n = make(Node::kBinary, at);
        n.text = op;
        n.args.push_back(std::move(left));
        n.args.push_back(parse_sum());
        skip_space();
        for (const char* again : {"<", ">", "==", "!="})
          if (text_.substr(at_, std::string_view(again).size()) == again)
            src_.fail(at_ + 1, "comparisons do not chain: join them with `and`");
        return n;
      }
    }
    return left;
  }
  // One level of left-associative arithmetic operators above the level `next`.
  Node parse_level(std::initializer_list<const char*> operators, Node (Parser::*next)()) {
    Node left = (this->*next)();
    for (;;) {
      skip_space();
      const std::size_t at = at_;
      const char* matched = nullptr;
      for (const char* op : operators)
        if (!matched && take(op)) matched = op;
      if (!matched) return left;
      Node n = make(Node::kBinary, at);
      n.text = matched;
      n.args.push_back(std::move(left));
      n.args.push_back((this->*next)());
      left = std::move(n);
    }
  }
  Node parse_sum() { return parse_level({"+", "-"}, &Parser::parse_product); }
  Node parse_product() { return parse_level({"*", "/"}, &Parser::parse_unary); }
  Node parse_unary() { return parse_prefix("-", Node::kNegate, &Parser::parse_unary, &Parser::parse_postfix); }
  Node parse_postfix() {
    Node n = parse_primary();
    for (;;) {
      skip_space();
      const std::size_t at = at_;
      if (!take("[")) return n;
      Node index = make(Node::kIndex, at);
      index.args.push_back(std::move(n));
      index.args.push_back(parse_or());
      if (!take("]")) src_.fail(at_ + 1, "expected ']'");
      n = std::move(index);
    }
  }
  Node parse_primary() {
    skip_space();
    const std::size_t at = at_;
    if (at_ >= text_.size()) src_.fail(at_ + 1, "the expression ends early");
    const char c = text_[at_];
    if (take("(")) {
      Node n = parse_or();
      if (!take(")")) src_.fail(at_ + 1, "expected ')'");
      return n;
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '.') {
      std::size_t end = at_;
      while (end < text_.size() && (std::isdigit(static_cast<unsigned char>(text_[end])) || text_[end] == '.' ||
                                    text_[end] == 'e' || text_[end] == 'E' ||
                                    ((text_[end] == '-' || text_[end] == '+') && end > at_ &&
                                     (text_[end - 1] == 'e' || text_[end - 1] == 'E'))))
        ++end;
      const std::string digits(text_.substr(at_, end - at_));
      Node n = make(Node::kNumber, at);
      char* stop = nullptr;
      n.number = std::strtod(digits.c_str(), &stop);
      if (stop != digits.c_str() + digits.size() || !std::isfinite(n.number))
        src_.fail(at + 1, fmt::format("'{}' is not a number", digits));
      n.text = digits;
      at_ = end;
      return n;
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      std::size_t end = at_;
      while (end < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[end])) || text_[end] == '_')) ++end;
      const std::string name(text_.substr(at_, end - at_));
      at_ = end;
      if (name == "true" || name == "false") {
        Node n = make(Node::kBool, at);
        n.number = name == "true";
        n.text = name;
        return n;
      }
      if (name == "and" || name == "or" || name == "not") src_.fail(at + 1, fmt::format("'{}' needs operands", name));
      skip_space();
      if (take("(")) {
        Node n = make(Node::kCall, at);
        n.text = name;
        skip_space();
        if (!take(")")) {
          for (;;) {
            n.args.push_back(parse_or());
            if (take(")")) break;
            if (!take(",")) src_.fail(at_ + 1, "expected ',' or ')'");
          }
        }
        return n;
      }
      Node n = make(Node::kName, at);
      n.text = name;
      return n;
    }
    src_.fail(at + 1, fmt::format("unexpected '{}'", text_.substr(at_, 1)));
  }
  Node join(Node::Kind kind, const char* op, Node left, Node right) const {
    Node n = make(kind, 0);
    n.text = op;
    n.column = left.column;
    n.args.push_back(std::move(left));
    n.args.push_back(std::move(right));
    return n;
  }

  const Source& src_;
  std::string_view text_;
  std::size_t at_ = 0;
};

// The expression reprinted from its parse, fully parenthesized; `name_text` may print names
// otherwise (parameters by their values, for cache keys).
std::string canonical(const Node& n, const std::function<std::string(const std::string&)>& name_text = nullptr) {
  const auto c = [&](const Node& a) { return canonical(a, name_text); };
  switch (n.kind) {
    case Node::kNumber:
      return fmt::format("{}", n.number);
    case Node::kBool:
      return n.text;
    case Node::kName:
      return name_text ? name_text(n.text) : n.text;
    case Node::kNegate:
      return "(-" + c(n.args[0]) + ")";
    case Node::kNot:
      return "(not " + c(n.args[0]) + ")";
    case Node::kBinary:
    case Node::kAnd:
    case Node::kOr:
      return "(" + c(n.args[0]) + " " + n.text + " " + c(n.args[1]) + ")";
    case Node::kIndex:
      return c(n.args[0]) + "[" + c(n.args[1]) + "]";
    case Node::kCall: {
      std::vector<std::string> args;
      for (const auto& a : n.args) args.push_back(c(a));
      return fmt::format("{}({})", n.text, fmt::join(args, ", "));
    }
  }
  return {};
}

// The canonical text with each parameter written as its value.
std::string with_values(const Node& n, const std::vector<ParamSpec>& params, std::span<const double> values) {
  return canonical(n, [&](const std::string& name) {
    for (std::size_t i = 0; i < params.size(); ++i)
      if (params[i].name == name) return fmt::format("{}", values[i]);
    return name;
  });
}

// ---- Types and functions ------------------------------------------------------------------------

struct Type {
  bool condition = false;  // a truth value (else a number)
  bool series = false;     // one value per bar (else one value)
};

const std::vector<std::string> kSeries = {"open", "high", "low", "close", "volume"};

// Checks a parsed rule against the parameters and the function table, returning its type.
class Checker {
 public:
  Checker(const Source& source, const std::vector<ParamSpec>& params, const std::vector<std::string>& user_series,
          std::set<std::string>& used, bool params_only)
      : src_(source), params_(params), user_series_(user_series), used_(used), params_only_(params_only) {}

  Type check(const Node& n) {
    switch (n.kind) {
      case Node::kNumber:
        return {};
      case Node::kBool:
        return {true, false};
      case Node::kName: {
        if (std::find(kSeries.begin(), kSeries.end(), n.text) != kSeries.end() ||
            std::find(user_series_.begin(), user_series_.end(), n.text) != user_series_.end()) {
          if (params_only_) src_.fail(n.column, fmt::format("constraints read parameters only, not '{}'", n.text));
          return {false, true};
        }
        for (const auto& p : params_)
          if (p.name == n.text) {
            used_.insert(p.name);
            return {p.type == ParamType::kBool, false};
          }
        std::vector<std::string> params, series = kSeries;
        for (const auto& p : params_) params.push_back(p.name);
        series.insert(series.end(), user_series_.begin(), user_series_.end());
        src_.fail(n.column, fmt::format("unknown series or parameter '{}' (series: {}; parameters: {}); a series "
                                        "of one's own is named in the strategy's series list",
                                        n.text, fmt::join(series, ", "),
                                        params.empty() ? "none" : fmt::format("{}", fmt::join(params, ", "))));
      }
      case Node::kNegate: {
        const Type t = number(n.args[0], "'-'");
        return t;
      }
      case Node::kNot:
        return condition(n.args[0], "'not'");
      case Node::kAnd:
      case Node::kOr: {
        const Type a = condition(n.args[0], "'" + n.text + "'"), b = condition(n.args[1], "'" + n.text + "'");
        return {true, a.series || b.series};
      }
      case Node::kBinary: {
        const bool comparison = n.text != "+" && n.text != "-" && n.text != "*" && n.text != "/";
        const Type a = number(n.args[0], "'" + n.text + "'"), b = number(n.args[1], "'" + n.text + "'");
        return {comparison, a.series || b.series};
      }
      case Node::kIndex: {
        const Type x = check(n.args[0]);
        const Node& k = n.args[1];
        const Type kt = check(k);
        const bool int_param =
            k.kind == Node::kName && std::any_of(params_.begin(), params_.end(), [&](const ParamSpec& p) {
              return p.name == k.text && p.type == ParamType::kInt;
            });
        if (k.kind == Node::kNegate && k.args[0].kind == Node::kNumber)
          src_.fail(k.column, fmt::format("x[k] takes k >= 0, a whole number, not -{}", k.args[0].text));
        if (kt.series || kt.condition || !(k.kind == Node::kNumber || int_param))
          src_.fail(k.column, "x[k] takes k as a whole number or an integer parameter");
        if (k.kind == Node::kNumber && (k.number < 0 || k.number != std::floor(k.number)))
          src_.fail(k.column, fmt::format("x[k] takes k >= 0, a whole number, not {}", k.text));
        if (params_only_) src_.fail(n.column, "constraints read parameters only, not bars ago");
        return {x.condition, true};
      }
      case Node::kCall: {
        const auto& table = functions();
        const auto f = std::find_if(table.begin(), table.end(), [&](const Function& g) { return g.name == n.text; });
        if (f == table.end()) {
          std::vector<std::string_view> names;
          for (const auto& g : table) names.push_back(g.name);
          src_.fail(n.column, fmt::format("unknown function '{}' (known: {})", n.text, fmt::join(names, ", ")));
        }
        if (params_only_) src_.fail(n.column, "constraints read parameters only, not functions of the bars");
        if (n.args.size() != f->args.size())
          src_.fail(n.column, fmt::format("{} takes {} argument{} ({}), not {}", f->name, f->args.size(),
                                          f->args.size() == 1 ? "" : "s", f->arg_names, n.args.size()));
        for (std::size_t i = 0; i < n.args.size(); ++i) {
          const Type t = check(n.args[i]);
          const std::string which = fmt::format("argument {} of {}", i + 1, f->name);
          if (t.condition) src_.fail(n.args[i].column, which + " must be a number, not a condition");
          if (f->args[i] != 'x' && t.series)
            src_.fail(n.args[i].column, which + " must be one value (a number or a parameter), not a series");
        }
        return {f->returns_condition, true};
      }
    }
    return {};
  }

 private:
  Type number(const Node& n, const std::string& what) {
    const Type t = check(n);
    if (t.condition) src_.fail(n.column, what + " takes numbers, not a condition");
    return t;
  }
  Type condition(const Node& n, const std::string& what) {
    const Type t = check(n);
    if (!t.condition) src_.fail(n.column, what + " takes conditions, not a number");
    return t;
  }

  const Source& src_;
  const std::vector<ParamSpec>& params_;
  const std::vector<std::string>& user_series_;
  std::set<std::string>& used_;
  bool params_only_;
};

// ---- Evaluation ---------------------------------------------------------------------------------

using Column = std::shared_ptr<const std::vector<double>>;

struct Value {
  bool series = false;
  double scalar = 0;
  Column values;
  double at(std::size_t t) const { return series ? (*values)[t] : scalar; }
};

class Evaluator {
 public:
  Evaluator(const Bars& bars, const std::vector<ParamSpec>& params, std::span<const double> values, SeriesCache* cache)
      : bars_(bars), params_(params), values_(values), cache_(cache) {}

  Value eval(const Node& n) {
    switch (n.kind) {
      case Node::kNumber:
      case Node::kBool:
        return {false, n.number, nullptr};
      case Node::kName:
        for (std::size_t i = 0; i < params_.size(); ++i)
          if (params_[i].name == n.text) return {false, values_[i], nullptr};
        return {true, 0, column_of(n.text)};
      case Node::kNegate:
        return map1(eval(n.args[0]), [](double a) { return -a; });
      case Node::kNot:
        return map1(eval(n.args[0]), [](double a) { return not_value(a); });
      case Node::kAnd:
        return map2(eval(n.args[0]), eval(n.args[1]), [](double a, double b) { return and_value(a, b); });
      case Node::kOr:
        return map2(eval(n.args[0]), eval(n.args[1]), [](double a, double b) { return or_value(a, b); });
      case Node::kBinary:
        return binary(n.text, eval(n.args[0]), eval(n.args[1]));
      case Node::kIndex: {
        const Value x = eval(n.args[0]);
        const auto k = static_cast<std::size_t>(eval(n.args[1]).scalar);
        if (!x.series) return x;
        auto out = std::make_shared<std::vector<double>>(bars_.size(), kUndefined);
        for (std::size_t t = k; t < bars_.size(); ++t) (*out)[t] = (*x.values)[t - k];
        return {true, 0, out};
      }
      case Node::kCall:
        return call(n);
    }
    return {};
  }

 private:
  Column column_of(const std::string& name) {
    if (std::find(kSeries.begin(), kSeries.end(), name) == kSeries.end()) {  // a series of the user's own
      const UserSeries* user = bars_.find_series(name);
      if (!user) {
        std::vector<std::string> given;
        for (const auto& s : bars_.series) given.push_back(s.name);
        throw DataError(fmt::format("{}: the rules read series '{}', which these bars lack (their own series: {})",
                                    bars_.symbol, name,
                                    given.empty() ? "none" : fmt::format("{}", fmt::join(given, ", "))));
      }
      return Column(std::shared_ptr<const std::vector<double>>(), &user->values);
    }
    const std::vector<double>& c = name == "open"    ? bars_.open
                                   : name == "high"  ? bars_.high
                                   : name == "low"   ? bars_.low
                                   : name == "close" ? bars_.close
                                                     : bars_.volume;
    return Column(std::shared_ptr<const std::vector<double>>(), &c);  // the bars outlive the evaluation
  }
  template <class F>
  Value map1(const Value& a, F f) {
    if (!a.series) return {false, f(a.scalar), nullptr};
    auto out = std::make_shared<std::vector<double>>(bars_.size());
    for (std::size_t t = 0; t < out->size(); ++t) (*out)[t] = f((*a.values)[t]);
    return {true, 0, out};
  }
  template <class F>
  Value map2(const Value& a, const Value& b, F f) {
    if (!a.series && !b.series) return {false, f(a.scalar, b.scalar), nullptr};
    auto out = std::make_shared<std::vector<double>>(bars_.size());
    for (std::size_t t = 0; t < out->size(); ++t) (*out)[t] = f(a.at(t), b.at(t));
    return {true, 0, out};
  }
  Value binary(const std::string& op, const Value& a, const Value& b) {
    return with_op(binary_op(op), [&](auto o) {
      return map2(a, b, [](double x, double y) { return binary_value<decltype(o)::value>(x, y); });
    });
  }
  std::vector<double> as_series(const Value& v) {
    if (v.series) return *v.values;
    return std::vector<double>(bars_.size(), v.scalar);
  }
  Value call(const Node& n) {
    const Function& function = function_named(n.text);
    // Keyed by the call with its parameters' values, so that every combination sharing them shares
    // it; its arguments are evaluated only when it is not there yet.
    const CallOutput& output = function.output;
    const std::string key = std::string(output.family) + with_values(n, params_, values_).substr(n.text.size());
    const auto compute = [&]() -> SeriesCache::Group {
      std::vector<Value> args;
      for (const auto& a : n.args) args.push_back(eval(a));
      return compute_call(n, function, args);
    };
    if (!cache_) {
      auto group = std::make_shared<const SeriesCache::Group>(compute());
      return {true, 0, Column(group, &(*group)[output.index])};
    }
    const auto group = cache_->get("rules:" + key, compute);
    return {true, 0, Column(group, &(*group)[output.index])};
  }
  // Every output of the call (one, but for the functions whose outputs share a family).
  SeriesCache::Group compute_call(const Node& n, const Function& function, const std::vector<Value>& args) {
    CallOverBars call;
    call.bars = &bars_;
    call.whole = [&](std::size_t i, int minimum) { return whole_argument(n.args[i], args[i].scalar, n.text, minimum); };
    call.scalar = [&](std::size_t i) { return args[i].scalar; };
    for (const Value& a : args) call.args.push_back({a.series ? a.values->data() : nullptr, a.scalar});
    // The series x of the functions that take one first (a number there is a constant series).
    const bool takes_x = function.args.starts_with('x');
    const std::vector<double> constant = takes_x && !args[0].series ? as_series(args[0]) : std::vector<double>();
    if (takes_x) call.x = args[0].series ? std::span<const double>(*args[0].values) : std::span<const double>(constant);
    return function.over_bars(call);
  }

  const Bars& bars_;
  const std::vector<ParamSpec>& params_;
  std::span<const double> values_;
  SeriesCache* cache_;
};

Node parse_checked(const std::string& text, const RuleTexts& r, std::size_t line, const std::string& what,
                   std::set<std::string>& used, bool condition_required, bool params_only) {
  const Source source{text, r.source, line, what};
  Node n = Parser(source).parse();
  const Type t = Checker(source, r.params, r.series, used, params_only).check(n);
  if (condition_required && !t.condition)
    source.fail(n.column, "a rule must be a condition (true or false), not a number");
  return n;
}

std::shared_ptr<const Program> build(const RuleTexts& r) {
  if (r.entry.empty() || r.exit.empty())
    throw ParamError(fmt::format("{}: a strategy needs an entry and an exit rule", r.source));
  auto p = std::make_shared<Program>();
  p->params = r.params;
  for (const auto& name : r.series)
    if (std::find(kSeries.begin(), kSeries.end(), name) != kSeries.end() || name.empty())
      throw ParamError(
          fmt::format("{}: series '{}' is a bar field or empty: name the user's own series", r.source, name));
  p->user_series = r.series;
  std::set<std::string> used;
  p->entry = parse_checked(r.entry, r, r.entry_line, "entry", used, true, false);
  p->exit = parse_checked(r.exit, r, r.exit_line, "exit", used, true, false);
  if (!r.short_entry.empty())
    p->short_entry = parse_checked(r.short_entry, r, r.short_entry_line, "short_entry", used, true, false);
  if (!r.short_exit.empty())
    p->short_exit = parse_checked(r.short_exit, r, r.short_exit_line, "short_exit", used, true, false);
  if (p->short_entry.has_value() != p->short_exit.has_value())
    throw ParamError(fmt::format("{}: short_entry and short_exit go together: give both or neither", r.source));
  for (std::size_t i = 0; i < r.constraints.size(); ++i) {
    p->constraints.push_back(parse_checked(r.constraints[i], r,
                                           i < r.constraint_lines.size() ? r.constraint_lines[i] : 0,
                                           fmt::format("constraint {}", i + 1), used, true, true));
    p->constraint_texts.push_back(r.constraints[i]);
  }
  for (const auto& param : r.params)
    if (!used.count(param.name))
      throw ParamError(fmt::format("{}: parameter '{}' is declared but no rule uses it", r.source, param.name));
  return p;
}

// Per-bar events from the rules (docs/SEMANTICS.md "Rules"): without short rules the strategy is
// stop-and-reverse as ma_cross is (exit also opens a short, entry also closes it).
void signals(const Program& p, const Bars& bars, const ParamValues& values, std::span<std::uint8_t> out,
             SeriesCache& cache) {
  Evaluator e(bars, p.params, values, &cache);
  const Value entry = e.eval(p.entry), exit = e.eval(p.exit);
  const bool shorts = p.short_entry.has_value();
  const Value short_entry = shorts ? e.eval(*p.short_entry) : Value{},
              short_exit = shorts ? e.eval(*p.short_exit) : Value{};
  const auto is_true = [](double v) { return !std::isnan(v) && v != 0; };
  for (std::size_t t = 0; t < out.size(); ++t)
    out[t] = rule_events(is_true(entry.at(t)), is_true(exit.at(t)), shorts, shorts && is_true(short_entry.at(t)),
                         shorts && is_true(short_exit.at(t)));
}

ParamType param_type(const std::string& text, const std::string& where) {
  if (text == "int") return ParamType::kInt;
  if (text == "float") return ParamType::kFloat;
  if (text == "bool") return ParamType::kBool;
  throw ParamError(fmt::format("{}: type '{}' (allowed: int, float, bool)", where, text));
}

// The first constraint that does not hold for these parameter values (an undefined one does not).
std::optional<std::size_t> broken_constraint(const Program& p, std::span<const double> values) {
  for (std::size_t i = 0; i < p.constraints.size(); ++i) {
    const double x = evaluate_scalar(p, p.constraints[i], values);
    if (std::isnan(x) || x == 0) return i;
  }
  return std::nullopt;
}

std::string canonical_text(const Program& p) {
  std::string out = "entry: " + canonical(p.entry) + "\nexit: " + canonical(p.exit) + "\n";
  if (p.short_entry) out += "short_entry: " + canonical(*p.short_entry) + "\n";
  if (p.short_exit) out += "short_exit: " + canonical(*p.short_exit) + "\n";
  for (const auto& c : p.constraints) out += "constraint: " + canonical(c) + "\n";
  for (const auto& name : p.user_series) out += "series: " + name + "\n";
  for (const auto& param : p.params)
    out += fmt::format("param: {} {} {} {} {}\n", param.name, param_type_name(param.type), param.min, param.max,
                       param.default_value);
  return out;
}

// The first bar at which `n` can be defined on bars without gaps, for these parameter values: each
// function's TA-Lib lookback added to its input's; `and` and comparisons need every side, `or` either.
std::size_t lookback(const Program& p, const Node& n, std::span<const double> values) {
  const auto of = [&](std::size_t i) { return lookback(p, n.args[i], values); };
  const auto scalar = [&](std::size_t i) { return evaluate_scalar(p, n.args[i], values); };
  const auto period = [&](std::size_t i) {
    const double v = scalar(i);
    return v >= 1 && v <= 1e6 ? static_cast<std::size_t>(v) : std::size_t{1};
  };
  std::size_t widest = 0;
  for (std::size_t i = 0; i < n.args.size(); ++i) widest = std::max(widest, of(i));
  if (n.kind == Node::kOr) return std::min(of(0), of(1));
  if (n.kind == Node::kIndex) return of(0) + static_cast<std::size_t>(std::max(0.0, scalar(1)));
  const Function* function = n.kind == Node::kCall ? find_function(n.text) : nullptr;
  if (!function) return widest;
  CallLookback call;
  call.of = of;
  call.period = period;
  call.scalar = scalar;
  call.widest = widest;
  return function->lookback(call);
}

std::size_t first_signal_bar(const Program& p, std::span<const double> values) {
  std::size_t first = std::min(lookback(p, p.entry, values), lookback(p, p.exit, values));
  if (p.short_entry) first = std::min({first, lookback(p, *p.short_entry, values), lookback(p, *p.short_exit, values)});
  return first;
}

// True when the rules are the crossover of two moving averages of the close that the crossover
// engines (CPU and CUDA) run: parameters (fast, slow, type, volume filter) in that order, the long
// rules of docs/SEMANTICS.md "ma_cross" and, if any, its short rules.
bool is_crossover_of_averages(const Program& p) {
  if (p.params.size() != 4 || p.params[0].type != ParamType::kInt || p.params[1].type != ParamType::kInt ||
      p.params[2].type != ParamType::kInt || p.params[3].type != ParamType::kBool || p.params[0].min < 1 ||
      p.params[1].min < 1 || p.params[2].min < 0 || p.params[2].max > 2)
    return false;
  const auto by_position = [&](const Node& n) {
    return canonical(n, [&](const std::string& name) {
      for (std::size_t i = 0; i < p.params.size(); ++i)
        if (p.params[i].name == name) return "$" + std::to_string(i);
      return name;
    });
  };
  static const std::string kAbove = "cross_above(ma(close, $0, $2), ma(close, $1, $2))",
                           kBelow = "cross_below(ma(close, $0, $2), ma(close, $1, $2))",
                           kFilter = " and ((not $3) or (volume > sma(volume, 20))))";
  return by_position(p.entry) == "(" + kAbove + kFilter && by_position(p.exit) == kBelow &&
         (!p.short_entry ||
          (by_position(*p.short_entry) == "(" + kBelow + kFilter && by_position(*p.short_exit) == kAbove));
}

// A broken constraint comparing parameters and numbers, as a user reads it: "fast = 30 must be
// below slow = 20"; nothing for any other constraint.
std::optional<std::string> comparison_of_params(const Program& p, const Node& c, std::span<const double> values) {
  static const std::map<std::string, std::string> kWords = {{"<", "must be below"}, {"<=", "must be at most"},
                                                            {">", "must be above"}, {">=", "must be at least"},
                                                            {"==", "must equal"},   {"!=", "must differ from"}};
  if (c.kind != Node::kBinary || !kWords.count(c.text)) return std::nullopt;
  std::string sides[2];
  for (std::size_t i = 0; i < 2; ++i) {
    const Node& side = c.args[i];
    if (side.kind == Node::kNumber) {
      sides[i] = side.text;
      continue;
    }
    if (side.kind != Node::kName) return std::nullopt;
    for (std::size_t k = 0; k < p.params.size(); ++k)
      if (p.params[k].name == side.text)
        sides[i] = fmt::format("{} = {}", side.text, format_param_value(p.params[k], values[k]));
    if (sides[i].empty()) return std::nullopt;
  }
  return fmt::format("{} {} {}", sides[0], kWords.at(c.text), sides[1]);
}

}  // namespace

Op binary_op(std::string_view text) {
  static const std::map<std::string, Op, std::less<>> kOps = {
      {"+", Op::kAdd},    {"-", Op::kSubtract},   {"*", Op::kMultiply}, {"/", Op::kDivide},
      {"<", Op::kLess},   {"<=", Op::kLessEqual}, {">", Op::kGreater},  {">=", Op::kGreaterEqual},
      {"==", Op::kEqual}, {"!=", Op::kNotEqual}};
  const auto it = kOps.find(text);
  if (it == kOps.end()) throw Error(fmt::format("internal: unknown operator '{}'", text));
  return it->second;
}

int whole_argument(const Node& argument, double value, std::string_view function, int minimum) {
  if (value != std::floor(value) || value < minimum || value > 1e6)
    throw ParamError(
        fmt::format("{}: {} = {} must be a whole number >= {}", function, canonical(argument), value, minimum));
  return static_cast<int>(value);
}

std::shared_ptr<const std::vector<double>> evaluate_over_bars(const Program& program, const Node& node,
                                                              const Bars& bars, std::span<const double> values,
                                                              SeriesCache& cache) {
  const Value v = Evaluator(bars, program.params, values, &cache).eval(node);
  return v.series ? v.values : std::make_shared<const std::vector<double>>(bars.size(), v.scalar);
}

double evaluate_scalar(const Program& program, const Node& node, std::span<const double> values) {
  static const Bars kNoBars;  // reads no series
  return Evaluator(kNoBars, program.params, values, nullptr).eval(node).scalar;
}

std::string instance_text(const Program& program, const Node& node, std::span<const double> values) {
  return with_values(node, program.params, values);
}

RuleTexts read_strategy_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  if (!in || !(text << in.rdbuf())) throw ParamError(fmt::format("{}: cannot read the strategy file", path.string()));
  return parse_strategy_text(text.str(), path.string());
}

RuleTexts parse_strategy_text(const std::string& yaml, const std::string& file) {
  YAML::Node doc;
  try {
    doc = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    throw ParamError(fmt::format("{}:{}: {}", file, e.mark.line + 1, e.msg));
  }
  if (!doc.IsMap())
    throw ParamError(fmt::format("{}: a strategy file is a map (name, params, entry, exit, ...)", file));
  static const std::vector<std::string> kKeys = {"name",        "description", "params",      "entry", "exit",
                                                 "short_entry", "short_exit",  "constraints", "series"};
  RuleTexts r;
  r.source = file;
  for (const auto& item : doc) {
    const std::string key = item.first.as<std::string>();
    const std::size_t line = static_cast<std::size_t>(item.first.Mark().line) + 1;
    const std::string where = fmt::format("{}:{}", file, line);
    if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end())
      throw ParamError(fmt::format("{}: unknown key '{}' (allowed: {})", where, key, fmt::join(kKeys, ", ")));
    const auto text = [&]() {
      if (!item.second.IsScalar()) throw ParamError(fmt::format("{}: {} must be one line of text", where, key));
      return item.second.as<std::string>();
    };
    if (key == "name") r.name = text();
    if (key == "description") r.description = text();
    if (key == "entry") r.entry = text(), r.entry_line = line;
    if (key == "exit") r.exit = text(), r.exit_line = line;
    if (key == "short_entry") r.short_entry = text(), r.short_entry_line = line;
    if (key == "short_exit") r.short_exit = text(), r.short_exit_line = line;
    if (key == "series") {
      if (!item.second.IsSequence())
        throw ParamError(fmt::format("{}: series is a list of the names of the user's own series", where));
      for (const auto& name : item.second) r.series.push_back(name.as<std::string>());
    }
    if (key == "constraints") {
      if (!item.second.IsSequence()) throw ParamError(fmt::format("{}: constraints are a list of conditions", where));
      for (const auto& c : item.second) {
        r.constraints.push_back(c.as<std::string>());
        r.constraint_lines.push_back(static_cast<std::size_t>(c.Mark().line) + 1);
      }
    }
    if (key == "params") {
      if (!item.second.IsMap())
        throw ParamError(fmt::format("{}: params is a map of name: {{type, default, ...}}", where));
      for (const auto& p : item.second) {
        const std::string name = p.first.as<std::string>();
        const std::string at = fmt::format("{}:{}: parameter '{}'", file, p.first.Mark().line + 1, name);
        if (!p.second.IsMap() || !p.second["type"] || !p.second["default"])
          throw ParamError(fmt::format("{}: needs at least type and default", at));
        ParamSpec spec{name, param_type(p.second["type"].as<std::string>(), at), 0, 0, 0, ""};
        const bool boolean = spec.type == ParamType::kBool;
        spec.min = boolean ? 0 : (p.second["min"] ? p.second["min"].as<double>() : -1e300);
        spec.max = boolean ? 1 : (p.second["max"] ? p.second["max"].as<double>() : 1e300);
        try {
          spec.default_value = parse_param_value(spec, p.second["default"].as<std::string>());
        } catch (const ParamError& e) {
          throw ParamError(fmt::format("{}: default: {}", at, e.what()));
        }
        if (spec.default_value < spec.min || spec.default_value > spec.max || spec.min > spec.max)
          throw ParamError(
              fmt::format("{}: default {} is outside min {} .. max {}", at, spec.default_value, spec.min, spec.max));
        if (p.second["doc"]) spec.help = p.second["doc"].as<std::string>();
        r.params.push_back(std::move(spec));
      }
    }
  }
  return r;
}

std::shared_ptr<const Strategy> compile(const RuleTexts& rules) {
  const std::shared_ptr<const Program> program = build(rules);
  auto s = std::make_shared<Strategy>();
  s->name = rules.name;
  s->description = rules.description.empty() ? "rules: " + rules.entry : rules.description;
  s->code_version = 1;
  s->params = rules.params;
  add_exit_params(rules.name, s->params);
  if (!program->constraints.empty()) {
    s->constraint = {[program](std::span<const double> v) { return !broken_constraint(*program, v); },
                     [program](std::span<const double> v) {
                       const auto broken = broken_constraint(*program, v);
                       if (!broken) return std::string("every constraint holds");
                       if (auto phrased = comparison_of_params(*program, program->constraints[*broken], v))
                         return *phrased;
                       std::vector<std::string> named;
                       for (std::size_t p = 0; p < program->params.size(); ++p)
                         named.push_back(fmt::format("{}={}", program->params[p].name,
                                                     format_param_value(program->params[p], v[p])));
                       return fmt::format("constraint '{}' does not hold ({})", program->constraint_texts[*broken],
                                          fmt::join(named, " "));
                     }};
  }
  s->signals = [program](const Bars& bars, const ParamValues& values, std::span<std::uint8_t> out, SeriesCache& cache) {
    signals(*program, bars, values, out, cache);
  };
  s->signal_identity = canonical_text(*program);
  s->rules_program = program;
  s->grid_engine = is_crossover_of_averages(*program) ? GridEngine::kMaCross : GridEngine::kRules;
  s->first_signal_bar = [program](const ParamValues& v) { return first_signal_bar(*program, v); };
  s->stream = [program](const ParamValues& v) { return stream(*program, v); };
  return s;
}

std::vector<double> evaluate_expression(const Bars& bars, const RuleTexts& context, const std::string& expression,
                                        const ParamValues& values) {
  Program p;
  p.params = context.params;
  p.user_series = context.series;
  std::set<std::string> used;
  const Node n = parse_checked(expression, context, 0, "expression", used, false, false);
  if (values.size() != p.params.size())
    throw ParamError(fmt::format("{} parameter values for {} parameters", values.size(), p.params.size()));
  SeriesCache cache;
  return *evaluate_over_bars(p, n, bars, values, cache);
}

std::string canonical_text(const RuleTexts& rules) {
  return canonical_text(*build(rules));
}

nlohmann::ordered_json rules_json(const RuleTexts& r) {
  nlohmann::ordered_json params = nlohmann::ordered_json::array();
  for (const auto& p : r.params)
    params.push_back({{"name", p.name},
                      {"type", param_type_name(p.type)},
                      {"min", p.min},
                      {"max", p.max},
                      {"default", p.default_value},
                      {"doc", p.help}});
  return {{"name", r.name},
          {"description", r.description},
          {"params", params},
          {"entry", r.entry},
          {"exit", r.exit},
          {"short_entry", r.short_entry},
          {"short_exit", r.short_exit},
          {"constraints", r.constraints},
          {"series", r.series},
          {"source", r.source}};
}

RuleTexts rules_from_json(const nlohmann::ordered_json& j) {
  RuleTexts r;
  try {
    r.name = j.value("name", r.name);
    r.description = j.value("description", "");
    r.entry = j.value("entry", "");
    r.exit = j.value("exit", "");
    r.short_entry = j.value("short_entry", "");
    r.short_exit = j.value("short_exit", "");
    r.source = j.value("source", r.source);
    if (j.contains("constraints")) r.constraints = j.at("constraints").get<std::vector<std::string>>();
    if (j.contains("series")) r.series = j.at("series").get<std::vector<std::string>>();
    if (j.contains("params"))
      for (const auto& p : j.at("params")) {
        const std::string name = p.at("name").get<std::string>();
        ParamSpec spec{name, param_type(p.at("type").get<std::string>(), "rules: parameter '" + name + "'"),
                       0,    0,
                       0,    p.value("doc", "")};
        const bool boolean = spec.type == ParamType::kBool;
        spec.min = boolean ? 0 : p.value("min", -1e300);
        spec.max = boolean ? 1 : p.value("max", 1e300);
        const auto& d = p.at("default");
        spec.default_value = d.is_boolean() ? (d.get<bool>() ? 1.0 : 0.0) : d.get<double>();
        r.params.push_back(std::move(spec));
      }
  } catch (const nlohmann::json::exception& e) {
    throw ParamError(std::string("rules: ") + e.what());
  }
  return r;
}

ParamSpec inferred_param(const std::string& name, const std::vector<std::string>& values) {
  const auto all = [&](auto test) { return !values.empty() && std::all_of(values.begin(), values.end(), test); };
  const auto lower = [](std::string v) {
    std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
    return v;
  };
  ParamSpec spec{name, ParamType::kFloat, -1e300, 1e300, 0, "inline rules' parameter"};
  if (all([&](const std::string& v) { return lower(v) == "true" || lower(v) == "false"; }))
    spec = {name, ParamType::kBool, 0, 1, 0, spec.help};
  else if (all([](const std::string& v) {
             char* end = nullptr;
             const double x = std::strtod(v.c_str(), &end);
             return !v.empty() && end == v.c_str() + v.size() && std::isfinite(x) && x == std::floor(x) &&
                    v.find_first_of(".eE") == std::string::npos;
           }))
    spec.type = ParamType::kInt;
  if (!values.empty()) spec.default_value = parse_param_value(spec, values.front());
  return spec;
}

std::vector<std::string> function_names() {
  std::vector<std::string> out;
  for (const auto& f : functions()) out.emplace_back(f.name);
  return out;
}

std::vector<std::string> series_names() {
  return kSeries;
}

}  // namespace gt::rules
