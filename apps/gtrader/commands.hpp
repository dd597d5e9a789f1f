// One function per subcommand; each lives in the file of the same name.
#pragma once

#include <CLI/CLI.hpp>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gt/data.hpp"
#include "gt/error.hpp"
#include "gt/portfolio.hpp"
#include "gt/rules.hpp"

namespace gtrader {

void add_indicator(CLI::App& app);
void add_strategies(CLI::App& app);
void add_backtest(CLI::App& app);
void add_optimize(CLI::App& app);
void add_walkforward(CLI::App& app);
void add_bench(CLI::App& app);
void add_train(CLI::App& app);
void add_predict(CLI::App& app);
void add_report(CLI::App& app);
void add_live(CLI::App& app);
void add_replay(CLI::App& app);

// --data FILE|FOLDER (repeatable) and --skip-bad-rows, shared by every command that reads bars.
struct DataOptions {
  std::vector<std::filesystem::path> inputs;
  bool skip_bad_rows = false;

  void add_to(CLI::App& cmd);
  // Loads every input; reports skipped rows on stderr so that nothing is dropped silently.
  std::vector<gt::Bars> load() const;
};

// Which strategy a command runs: --strategy NAME, --strategy-file FILE (rules), inline rules
// --entry EXPR --exit EXPR [--short-entry EXPR --short-exit EXPR], or (where `signals_file`)
// --signals FILE, a file of signals per bar; exactly one of them.
struct StrategyChoice {
  std::string name, file, entry, exit, short_entry, short_exit, signals;

  void add_to(CLI::App& cmd, bool signals_file = false);
  void require_one() const;  // throws ParamError unless exactly one of them is given
  bool is_rules() const { return !file.empty() || !entry.empty(); }
  // The rules of --strategy-file or of the inline flags; inline rules take their parameters, and
  // the parameters' types, from the values given to --param and --grid (`grid`: NAME=SPEC items).
  gt::rules::RuleTexts rules(const std::vector<std::pair<std::string, std::string>>& params,
                             const std::vector<std::string>& grid) const;
  // The strategy of --strategy-file or the inline rules, or the one --strategy names (a model
  // strategy with its model file loaded, the file's parameter taken out of `params`); not
  // --signals, which the command reads itself.
  gt::Strategy strategy(std::vector<std::pair<std::string, std::string>>& params) const;
};

// --portfolio [--weights w1,w2,...] [--rebalance N], shared by backtest and optimize.
struct PortfolioFlags {
  bool portfolio = false;
  std::vector<double> weights;
  std::size_t rebalance = 0;

  void add_to(CLI::App& cmd);
  // The allocation when --portfolio is given; throws ParamError for --weights or --rebalance without it.
  std::optional<gt::PortfolioOptions> resolve() const;
};

// NAME=VALUE items of a repeatable flag (`flag` names it in the error).
std::vector<std::pair<std::string, std::string>> split_assignments(const std::vector<std::string>& items,
                                                                   std::string_view flag = "--param");

// For options naming an output file: an empty path is an error, not "no output".
CLI::Validator output_file();

// A library error in the command line's words: each parameter it names as its flag
// (skip_bad_rows -> --skip-bad-rows).
std::string phrase_for_cli(const gt::Error& e);
std::string flag_of(std::string_view parameter);

}  // namespace gtrader
