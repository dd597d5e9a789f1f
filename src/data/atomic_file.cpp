#include "gt/atomic_file.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstring>
#include <mutex>

#include "gt/error.hpp"

namespace gt {
namespace fs = std::filesystem;

namespace {

// Temporary files in the making, for the SIGINT/SIGTERM handler: fixed buffers, since a handler
// may only call async-signal-safe functions (unlink, signal, raise).
constexpr std::size_t kSlots = 64, kPathBytes = 4096;
std::array<std::array<char, kPathBytes>, kSlots> g_temp_paths{};
std::array<std::atomic<bool>, kSlots> g_armed{};  // read by the handler
std::array<bool, kSlots> g_claimed{};             // under g_slots_mutex
std::mutex g_slots_mutex;
std::once_flag g_handlers_installed;

extern "C" void remove_temp_files_and_stop(int sig) {
  for (std::size_t i = 0; i < kSlots; ++i)
    if (g_armed[i].load()) ::unlink(g_temp_paths[i].data());
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void install_handlers() {
  for (int sig : {SIGINT, SIGTERM}) {
    struct sigaction current {};
    // Only where nobody else handles the signal (Python, for one, handles SIGINT itself).
    if (::sigaction(sig, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
      struct sigaction action {};
      action.sa_handler = remove_temp_files_and_stop;
      sigemptyset(&action.sa_mask);
      ::sigaction(sig, &action, nullptr);
    }
  }
}

int register_temp(const fs::path& path) {
  std::call_once(g_handlers_installed, install_handlers);
  const std::string& text = path.native();
  if (text.size() >= kPathBytes) return -1;
  std::lock_guard lock(g_slots_mutex);
  for (std::size_t i = 0; i < kSlots; ++i) {
    if (g_claimed[i]) continue;
    g_claimed[i] = true;
    std::memcpy(g_temp_paths[i].data(), text.c_str(), text.size() + 1);
    g_armed[i].store(true);
    return static_cast<int>(i);
  }
  return -1;  // more files in the making than slots: these are left to the stale-file sweep
}

void unregister_temp(int slot) {
  if (slot < 0) return;
  const auto i = static_cast<std::size_t>(slot);
  g_armed[i].store(false);
  std::lock_guard lock(g_slots_mutex);
  g_claimed[i] = false;
}

// `<name>.tmp.<pid>` files beside `target` whose process is gone: left by a killed run.
void remove_stale_temps(const fs::path& target) {
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  const std::string prefix = target.filename().string() + ".tmp.";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    long pid = 0;
    const char* digits = name.c_str() + prefix.size();
    const auto [end, err] = std::from_chars(digits, name.c_str() + name.size(), pid);
    if (err != std::errc() || end != name.c_str() + name.size() || pid <= 0) continue;
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) fs::remove(entry.path(), ec);
  }
}

}  // namespace

fs::path resolve_output_path(const fs::path& path) {
  fs::path p = path;
  for (int hops = 0; hops < 40; ++hops) {
    std::error_code ec;
    if (!fs::is_symlink(fs::symlink_status(p, ec))) return p;
    const fs::path to = fs::read_symlink(p, ec);
    if (ec) return p;
    p = to.is_absolute() ? to : (p.has_parent_path() ? p.parent_path() / to : to);
  }
  throw Error(fmt::format("{}: too many levels of symbolic links", path.string()));
}

void check_output_path(const fs::path& path) {
  if (path.empty()) throw ParamError("the output path is empty: give a file name");
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {  // follows links
    if (S_ISDIR(st.st_mode))
      throw ParamError(fmt::format("{}: is a folder; give a file name inside it", path.string()));
    return;
  }
  const fs::path resolved = resolve_output_path(path);
  const fs::path dir = resolved.has_parent_path() ? resolved.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw ParamError(fmt::format("{}: the folder {} does not exist", path.string(), dir.string()));
}

AtomicFile::AtomicFile(fs::path target) : target_(std::move(target)) {
  check_output_path(target_);
  struct stat st {};
  if (::stat(target_.c_str(), &st) == 0) direct_ = !S_ISREG(st.st_mode);  // a device, FIFO or socket: in place
  if (direct_) {
    resolved_ = target_;
    file_ = std::fopen(target_.c_str(), "wb");
    if (!file_) throw Error(fmt::format("{}: cannot open it for writing ({})", target_.string(), std::strerror(errno)));
    return;
  }
  resolved_ = resolve_output_path(target_);
  remove_stale_temps(resolved_);
  temp_ = resolved_;
  temp_ += fmt::format(".tmp.{}", ::getpid());
  registration_ = register_temp(temp_);
  file_ = std::fopen(temp_.c_str(), "wb");
  if (!file_) {
    const int err = errno;
    unregister_temp(registration_);
    throw Error(fmt::format("{}: cannot create the file ({})", temp_.string(), std::strerror(err)));
  }
}

AtomicFile::~AtomicFile() {
  if (file_) {
    std::fclose(file_);
    if (!direct_) {
      std::error_code ec;
      fs::remove(temp_, ec);
    }
  }
  unregister_temp(registration_);
}

void AtomicFile::write(std::string_view text) {
  if (std::fwrite(text.data(), 1, text.size(), file_) != text.size()) {
    if (direct_) throw Error(fmt::format("{}: write failed ({})", target_.string(), std::strerror(errno)));
    throw Error(fmt::format("{}: write failed ({}); {} was left unchanged", temp_.string(), std::strerror(errno),
                            target_.string()));
  }
}

void AtomicFile::commit() {
  if (direct_) {
    const bool flushed = std::fflush(file_) == 0;
    const int err = errno;
    std::fclose(file_);
    file_ = nullptr;
    if (!flushed) throw Error(fmt::format("{}: write failed ({})", target_.string(), std::strerror(err)));
    return;
  }
  if (std::fflush(file_) != 0 || ::fsync(::fileno(file_)) != 0)
    throw Error(fmt::format("{}: flush failed ({}); {} was left unchanged", temp_.string(), std::strerror(errno),
                            target_.string()));
  std::fclose(file_);
  file_ = nullptr;
  std::error_code ec;
  fs::rename(temp_, resolved_, ec);
  if (ec) {
    fs::remove(temp_, ec);
    throw Error(fmt::format("{}: cannot replace the file ({}); it was left unchanged", target_.string(), ec.message()));
  }
  unregister_temp(registration_);
  registration_ = -1;
  const auto dir = resolved_.has_parent_path() ? resolved_.parent_path() : fs::path(".");
  if (int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY); fd >= 0) {
    ::fsync(fd);  // the rename itself survives a power loss
    ::close(fd);
  }
}

void write_file_atomically(const fs::path& path, std::string_view text) {
  AtomicFile file(path);
  file.write(text);
  file.commit();
}

}  // namespace gt
