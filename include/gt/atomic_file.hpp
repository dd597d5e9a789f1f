// A results file that appears whole or not at all: written to a temporary file beside the
// target, flushed to disk, then renamed over it.
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
  void commit();  // fsync, rename over the target, fsync the folder

 private:
  std::filesystem::path target_, temp_;
  std::FILE* file_ = nullptr;
};

void write_file_atomically(const std::filesystem::path& path, std::string_view text);

}  // namespace gt
