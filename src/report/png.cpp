// PNG snapshots of reports through headless chromium, a fresh profile each time and no network.
#include <fcntl.h>
#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "gt/atomic_file.hpp"
#include "gt/error.hpp"
#include "gt/report.hpp"

extern char** environ;

namespace gt::report {
std::string chromium_path() {
  if (const char* env = std::getenv("GT_CHROMIUM"); env && *env) return env;
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    const std::size_t colon = std::min(dirs.find(':', start), dirs.size());
    for (const char* name : {"chromium", "chromium-browser", "google-chrome"}) {
      const auto candidate = std::filesystem::path(dirs.substr(start, colon - start)) / name;
      if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    }
    start = colon + 1;
  }
  throw Error({"png"}, "png needs chromium (Debian's `chromium` package; or set GT_CHROMIUM to a Chrome binary)");
}

void render_png(const std::filesystem::path& html, const std::filesystem::path& png, int width, int height) {
  const std::string chromium = chromium_path();
  AtomicFile out(png);  // the folder and the name are checked before the browser starts
  std::string profile_template = (std::filesystem::temp_directory_path() / "gtrader-chromium-XXXXXX").string();
  if (!::mkdtemp(profile_template.data())) throw Error({"png"}, "png: cannot create a temporary browser profile");
  const std::filesystem::path profile = profile_template;
  const std::filesystem::path shot = profile / "screenshot.png";
  std::vector<std::string> args = {chromium,
                                   "--headless",
                                   "--no-sandbox",
                                   "--disable-gpu",
                                   "--disable-background-networking",
                                   "--hide-scrollbars",
                                   "--user-data-dir=" + (profile / "browser").string(),
                                   fmt::format("--window-size={},{}", width, height),
                                   "--virtual-time-budget=10000",
                                   "--screenshot=" + shot.string(),
                                   "file://" + std::filesystem::absolute(html).string()};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, chromium.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  int status = 0;
  if (spawned == 0) ::waitpid(pid, &status, 0);
  std::string bytes;
  if (std::ifstream in{shot, std::ios::binary}) bytes.assign(std::istreambuf_iterator<char>(in), {});
  std::error_code ignored;
  std::filesystem::remove_all(profile, ignored);
  if (spawned != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || bytes.empty())
    throw Error({"png"},
                fmt::format("png: {} drew no picture of {} ({})", chromium, html.string(),
                            spawned != 0          ? fmt::format("it could not start: {}", std::strerror(spawned))
                            : !WIFEXITED(status)  ? fmt::format("it was stopped by signal {}", WTERMSIG(status))
                            : WEXITSTATUS(status) ? fmt::format("it exited with status {}", WEXITSTATUS(status))
                                                  : "it wrote no screenshot"));
  out.write(bytes);
  out.commit();
}

}  // namespace gt::report
