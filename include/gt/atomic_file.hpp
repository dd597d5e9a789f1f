// A results file that appears whole or not at all: written to a temporary file beside the
// target, flushed to disk, then renamed over it.
//
// The target is what the path names after following symbolic links: the link stays and its
// target is replaced. A device or FIFO (/dev/stdout, a named pipe) is written directly, never
// replaced; a folder is refused. Temporary files are removed when the process is stopped by
// SIGINT or SIGTERM, and those left by processes that died (SIGKILL) are removed by the next
// write beside them.
#pragma once

#include <cstdio>
#include <filesystem>
#include <string_view>

namespace gt {

class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path target);
  ~AtomicFile();  // without commit(): the temporary file is removed and the target left as it was
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(std::string_view text);
  void commit();  // fsync, rename over the target, fsync the folder (a device: flush)

 private:
  std::filesystem::path target_;  // as given, for messages
  std::filesystem::path resolved_, temp_;
  bool direct_ = false;  // a device or FIFO, written in place
  std::FILE* file_ = nullptr;
  int registration_ = -1;  // slot of temp_ in the signal handler's list
};

void write_file_atomically(const std::filesystem::path& path, std::string_view text);

// Throws what AtomicFile would for `path` (empty, a folder, a folder that does not exist) without
// writing anything: for checking every output of a command before its first write.
void check_output_path(const std::filesystem::path& path);

// The path a write to `path` lands on: symbolic links followed (relative ones from their folder).
std::filesystem::path resolve_output_path(const std::filesystem::path& path);

}  // namespace gt
