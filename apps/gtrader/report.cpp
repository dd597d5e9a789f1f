#include "gt/report.hpp"

#include <fmt/format.h>

#include <memory>

#include "commands.hpp"
#include "gt/atomic_file.hpp"

namespace gtrader {
namespace {

struct ReportCommand {
  std::string results, out, png, others = "best";
  gt::report::OptimizationReportOptions options;
};

void run(ReportCommand& c) {
  c.options.others = gt::report::parse_others(c.others);
  const std::string chart_js = gt::report::chart_library();  // before any work: says how to get it
  gt::check_output_path(c.out);                              // every output before the first write
  if (!c.png.empty()) {
    (void)gt::report::chromium_path();
    gt::check_output_path(c.png);
  }
  const gt::report::ResultsTable results = gt::report::read_results(c.results);
  if (c.options.title.empty())
    c.options.title = "Optimization report: " + std::filesystem::path(c.results).filename().string();
  gt::write_file_atomically(c.out, gt::report::optimization_report_html(results, c.options, chart_js));
  fmt::print("report written to {}\n", c.out);
  if (!c.png.empty()) {
    gt::report::render_png(c.out, c.png);
    fmt::print("picture written to {}\n", c.png);
  }
}

}  // namespace

void add_report(CLI::App& app) {
  auto c = std::make_shared<ReportCommand>();
  CLI::App* cmd = app.add_subcommand("report", "An HTML report of an optimization's results file (opens offline)");
  cmd->add_option("--results", c->results, "Results CSV from `gtrader optimize --out`")->required();
  cmd->add_option("--x", c->options.x, "Heatmap x parameter (default: the first that varies)");
  cmd->add_option("--y", c->options.y, "Heatmap y parameter (default: the second that varies)");
  cmd->add_option("--metric", c->options.metric, "Metric of the heatmap and the ranking")->capture_default_str();
  cmd->add_option("--others", c->others,
                  "The other parameters: best (fixed at the best combination's values), mean or max over them")
      ->capture_default_str();
  cmd->add_option("--symbol", c->options.symbol,
                  "Symbol to report (default: every symbol in the file, a section each)");
  cmd->add_option("--top", c->options.top, "Rows of the best-combinations table")->capture_default_str();
  cmd->add_option("--title", c->options.title, "Page title");
  cmd->add_option("--out", c->out, "HTML file to write (atomically)")->required()->check(output_file());
  cmd->add_option("--png", c->png, "Also draw the report into this PNG file (needs chromium)")->check(output_file());
  cmd->callback([c] { run(*c); });
}

}  // namespace gtrader
