// The embedded store: <dir>/<namespace>/seg-<nanoseconds>-<pid>.log, append-only batches (one per
// put; several gathered into one write): magic "GTC2", u32 count, u32 value size, u32 zero, count
// u64 keys, count values. Readers index every entry of every segment (a later segment wins for a
// key written twice) whose key and value lie wholly in the file, and skip to the next batch marker
// past a header that does not make sense: a torn tail after a crash, or a damaged sector. Values
// carry their own checksum (result_cache.cpp), so an entry that fits but was damaged is still
// never used.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>

#include "gt/cache.hpp"

namespace gt {
namespace {

constexpr std::uint32_t kBatchMagic = 0x32435447;  // "GTC2"
constexpr std::size_t kBatchHeader = 16;
constexpr std::uint32_t kMaxValueBytes = 1 << 20;
constexpr auto kSyncEvery = std::chrono::seconds(2);
constexpr std::size_t kGatherBytes = 256 << 10;
constexpr auto kGatherTime = std::chrono::milliseconds(100);

class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;  // removed meanwhile: nothing to index
    struct stat st {};
    if (::fstat(fd, &st) == 0 && st.st_size > 0) {
      void* p = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
      if (p != MAP_FAILED) {
        data_ = static_cast<const char*>(p);
        size_ = static_cast<std::size_t>(st.st_size);
      }
    }
    ::close(fd);
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<char*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  std::string_view bytes() const { return {data_, size_}; }

 private:
  const char* data_ = nullptr;
  std::size_t size_ = 0;
};

struct IndexEntry {
  std::uint64_t key;
  std::uint32_t segment;
  std::uint32_t length;
  std::uint64_t offset;  // of the value
};

class Namespace {
 public:
  explicit Namespace(std::filesystem::path dir) : dir_(std::move(dir)) {
    std::error_code ec;
    std::vector<std::filesystem::path> names;
    for (const auto& e : std::filesystem::directory_iterator(dir_, ec))
      if (e.path().extension() == ".log") names.push_back(e.path());
    std::sort(names.begin(), names.end());  // zero-padded creation times: oldest first
    for (const auto& name : names) index_segment(std::make_unique<MappedFile>(name));
    // Newest last for each key after a stable sort; lookups take the last.
    std::stable_sort(index_.begin(), index_.end(), [](const auto& a, const auto& b) { return a.key < b.key; });
  }
  ~Namespace() {
    try {
      flush();
    } catch (const CacheUnavailable&) {  // not cached after all: recomputed by the next run, never wrong
    }
    if (fd_ >= 0) ::close(fd_);
  }

  CacheBackend::Found find(std::uint64_t key, std::span<char> value) const {
    auto it =
        std::upper_bound(index_.begin(), index_.end(), key, [](std::uint64_t k, const auto& e) { return k < e.key; });
    if (it == index_.begin() || std::prev(it)->key != key) return CacheBackend::kMissing;
    const auto& e = *std::prev(it);
    if (e.length != value.size()) return CacheBackend::kWrongSize;
    std::memcpy(value.data(), segments_[e.segment]->bytes().data() + e.offset, e.length);
    return CacheBackend::kFound;
  }

  void append(std::span<const std::uint64_t> keys, std::size_t value_size, std::string_view values) {
    const std::uint32_t header[4] = {kBatchMagic, static_cast<std::uint32_t>(keys.size()),
                                     static_cast<std::uint32_t>(value_size), 0};
    const auto now = std::chrono::steady_clock::now();
    std::string full;
    {
      std::lock_guard lock(gather_mutex_);
      if (gathered_.empty()) gathered_since_ = now;
      gathered_.append(reinterpret_cast<const char*>(header), sizeof header);
      gathered_.append(reinterpret_cast<const char*>(keys.data()), keys.size_bytes());
      gathered_.append(values);
      if (gathered_.size() < kGatherBytes && now - gathered_since_ < kGatherTime) return;
      full.swap(gathered_);
      gathered_.swap(spare_);  // a buffer that already has its capacity: no page faults
    }
    write_out(full);
  }

  void flush() {
    std::string full;
    {
      std::lock_guard lock(gather_mutex_);
      full.swap(gathered_);
    }
    write_out(full);
  }

 private:
  void index_segment(std::unique_ptr<MappedFile> file) {
    const std::string_view bytes = file->bytes();
    const auto segment = static_cast<std::uint32_t>(segments_.size());
    const std::string_view marker(reinterpret_cast<const char*>(&kBatchMagic), 4);
    std::size_t at = 0;
    while (at + kBatchHeader <= bytes.size()) {
      std::uint32_t header[4];
      std::memcpy(header, bytes.data() + at, sizeof header);
      const std::size_t count = header[1], value_size = header[2];
      if (header[0] != kBatchMagic || value_size == 0 || value_size > kMaxValueBytes || header[3] != 0) {
        const auto next = bytes.find(marker, at + 1);
        if (next == std::string_view::npos) break;
        at = next;
        continue;
      }
      const std::size_t keys_at = at + kBatchHeader, values_at = keys_at + count * sizeof(std::uint64_t);
      for (std::size_t i = 0; i < count && values_at + (i + 1) * value_size <= bytes.size(); ++i) {
        std::uint64_t key;
        std::memcpy(&key, bytes.data() + keys_at + i * sizeof key, sizeof key);
        index_.push_back({key, segment, static_cast<std::uint32_t>(value_size), values_at + i * value_size});
      }
      at = values_at + count * value_size;
    }
    segments_.push_back(std::move(file));
  }

  // One write per gathered buffer, without a lock: O_APPEND places each write whole at the end
  // (the file system serializes them), so workers do not wait for each other's copies. A process
  // killed now leaves whole batches and at most one torn tail.
  void write_out(std::string& bytes) {
    if (bytes.empty()) return;
    {
      std::lock_guard lock(write_mutex_);
      if (fd_ < 0) open_segment();
    }
    for (std::size_t done = 0; done < bytes.size();) {
      const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0)
        throw CacheUnavailable(fmt::format("cannot write {}: {}", segment_path_.string(), std::strerror(errno)));
      done += static_cast<std::size_t>(n);
    }
    bytes.clear();
    {
      std::lock_guard lock(gather_mutex_);
      if (spare_.capacity() < bytes.capacity()) spare_.swap(bytes);
    }
    // What a killed process wrote is safe in the page cache; a power loss may take the last
    // couple of seconds, which are then recomputed (never misread: see the framing above).
    if (std::chrono::steady_clock::now().time_since_epoch().count() - last_sync_.load(std::memory_order_relaxed) >
        std::chrono::steady_clock::duration(kSyncEvery).count())
      sync();
  }

  void open_segment() {
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    segment_path_ = dir_ / fmt::format("seg-{:020}-{}.log",
                                       std::chrono::duration_cast<std::chrono::nanoseconds>(now).count(), ::getpid());
    fd_ = ::open(segment_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0)
      throw CacheUnavailable(fmt::format("cannot create {}: {}", segment_path_.string(), std::strerror(errno)));
    last_sync_ = std::chrono::steady_clock::now().time_since_epoch().count();
  }

  void sync() {
    std::lock_guard lock(write_mutex_);
    if (fd_ >= 0 && ::fdatasync(fd_) != 0)
      throw CacheUnavailable(fmt::format("cannot sync {}: {}", segment_path_.string(), std::strerror(errno)));
    last_sync_ = std::chrono::steady_clock::now().time_since_epoch().count();
  }

  std::filesystem::path dir_;
  std::vector<std::unique_ptr<MappedFile>> segments_;
  std::vector<IndexEntry> index_;  // sorted by key; immutable after construction

  std::mutex gather_mutex_;
  std::string gathered_, spare_;  // batches not yet written, and a spent buffer kept for reuse
  std::chrono::steady_clock::time_point gathered_since_;

  std::mutex write_mutex_;
  std::filesystem::path segment_path_;
  int fd_ = -1;
  std::atomic<std::chrono::steady_clock::rep> last_sync_{0};
};

class DiskBackend final : public CacheBackend {
 public:
  explicit DiskBackend(std::filesystem::path dir) : dir_(std::move(dir)) {
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    if (ec || !std::filesystem::is_directory(dir_))
      throw Error(
          fmt::format("cache folder {}: cannot create it ({}); choose another with --cache-dir or use --no-cache",
                      dir_.string(), ec ? ec.message() : "not a folder"));
  }

  void get(std::string_view ns, std::span<const std::uint64_t> keys, std::size_t value_size, std::span<char> values,
           std::span<std::uint8_t> found) override {
    Namespace& space = open(ns);
    for (std::size_t i = 0; i < keys.size(); ++i)
      found[i] = space.find(keys[i], values.subspan(i * value_size, value_size));
  }

  void put(std::string_view ns, std::span<const std::uint64_t> keys, std::size_t value_size,
           std::string_view values) override {
    open(ns).append(keys, value_size, values);
  }

  void flush() override {
    std::lock_guard lock(mutex_);
    for (auto& [name, space] : spaces_) space->flush();
  }

  std::string describe() const override { return dir_.string(); }

 private:
  Namespace& open(std::string_view ns) {
    std::lock_guard lock(mutex_);
    auto it = spaces_.find(ns);
    if (it == spaces_.end()) it = spaces_.emplace(std::string(ns), std::make_unique<Namespace>(dir_ / ns)).first;
    return *it->second;
  }

  std::filesystem::path dir_;
  std::mutex mutex_;
  std::map<std::string, std::unique_ptr<Namespace>, std::less<>> spaces_;
};

}  // namespace

std::unique_ptr<CacheBackend> make_disk_backend(const std::filesystem::path& dir) {
  return std::make_unique<DiskBackend>(dir);
}

}  // namespace gt
