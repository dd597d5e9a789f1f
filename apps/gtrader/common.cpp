#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>

#include "commands.hpp"
#include "gt/error.hpp"

namespace gtrader {

void DataOptions::add_to(CLI::App& cmd) {
  cmd.add_option("--data", inputs, "CSV file or folder of CSV files (repeatable)")->required();
  cmd.add_flag("--skip-bad-rows", skip_bad_rows, "Drop rows that fail validation and report how many");
}

std::vector<gt::Bars> DataOptions::load() const {
  gt::LoadOptions options;
  options.skip_bad_rows = skip_bad_rows;
  std::vector<gt::Bars> all = gt::load_many(inputs, options);
  for (const auto& bars : all)
    if (bars.skipped_rows)
      fmt::print(stderr, "gtrader: warning: {}: skipped {} bad rows\n", bars.source, bars.skipped_rows);
  return all;
}

std::string format_value(double v) {
  if (std::isnan(v)) return {};
  return fmt::format("{}", v);
}

void write_file_atomically(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path tmp = path.string() + fmt::format(".tmp.{}", ::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw gt::Error(fmt::format("{}: cannot write ({})", tmp.string(), std::strerror(errno)));
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.flush();
    if (!out) {
      std::filesystem::remove(tmp);
      throw gt::Error(fmt::format("{}: write failed; nothing was written", path.string()));
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp);
    throw gt::Error(fmt::format("{}: cannot replace the file ({}); nothing was written", path.string(), ec.message()));
  }
}

}  // namespace gtrader
