// gtrader: the command-line front of the GPT-Trader engine. Each subcommand lives in its own file.
#include <fmt/format.h>

#include <cstdio>

#include "commands.hpp"
#include "gt/error.hpp"

int main(int argc, char** argv) {
  CLI::App app{"gtrader: fast, exact backtests and parameter searches for trading strategies"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "gtrader 0.1.0");
  gtrader::add_indicator(app);
  gtrader::add_strategies(app);
  gtrader::add_backtest(app);
  gtrader::add_optimize(app);
  gtrader::add_walkforward(app);
  gtrader::add_bench(app);
  gtrader::add_train(app);
  gtrader::add_predict(app);
  gtrader::add_report(app);
  gtrader::add_live(app);
  gtrader::add_replay(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints the help, the version, or what is wrong
    return code == 0 ? 0 : 2;      // every usage error exits 2, as every other error does
  } catch (const gt::Error& e) {
    std::fflush(stdout);
    fmt::print(stderr, "gtrader: error: {}\n", gtrader::phrase_for_cli(e));
    return 2;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    fmt::print(stderr, "gtrader: internal error: {}\n", e.what());
    return 3;
  }
  return 0;
}
