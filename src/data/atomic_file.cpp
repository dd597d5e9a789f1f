#include "gt/atomic_file.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "gt/error.hpp"

namespace gt {

AtomicFile::AtomicFile(std::filesystem::path target) : target_(std::move(target)) {
  temp_ = target_;
  temp_ += fmt::format(".tmp.{}", ::getpid());
  file_ = std::fopen(temp_.c_str(), "wb");
  if (!file_) throw Error(fmt::format("{}: cannot create the file ({})", temp_.string(), std::strerror(errno)));
}

AtomicFile::~AtomicFile() {
  if (file_) {
    std::fclose(file_);
    std::error_code ec;
    std::filesystem::remove(temp_, ec);
  }
}

void AtomicFile::write(std::string_view text) {
  if (std::fwrite(text.data(), 1, text.size(), file_) != text.size())
    throw Error(fmt::format("{}: write failed ({}); {} was left unchanged", temp_.string(), std::strerror(errno),
                            target_.string()));
}

void AtomicFile::commit() {
  if (std::fflush(file_) != 0 || ::fsync(::fileno(file_)) != 0)
    throw Error(fmt::format("{}: flush failed ({}); {} was left unchanged", temp_.string(), std::strerror(errno),
                            target_.string()));
  std::fclose(file_);
  file_ = nullptr;
  std::error_code ec;
  std::filesystem::rename(temp_, target_, ec);
  if (ec) {
    std::filesystem::remove(temp_, ec);
    throw Error(fmt::format("{}: cannot replace the file ({}); it was left unchanged", target_.string(), ec.message()));
  }
  const auto dir = target_.has_parent_path() ? target_.parent_path() : std::filesystem::path(".");
  if (int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY); fd >= 0) {
    ::fsync(fd);  // the rename itself survives a power loss
    ::close(fd);
  }
}

void write_file_atomically(const std::filesystem::path& path, std::string_view text) {
  AtomicFile file(path);
  file.write(text);
  file.commit();
}

}  // namespace gt
