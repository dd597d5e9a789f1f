// The embedded store: one file per namespace, <dir>/<namespace>.log, of append-only batches (one
// per put, a chunk's results): magic "GTC2", u32 count, u32 value size, u32 zero, count u64 keys,
// count values. Every process and thread appends each batch with one O_APPEND write, which a local
// file system never interleaves with another; one file rather than one per process, because
// creating a file is the dearest thing a cold run does (an inode: 0.1 to 0.3 ms of kernel time on
// this machine's ext4, as much as computing a few hundred combinations). Readers index every
// entry whose key and value lie wholly in the file (a later one wins for a key written twice),
// and skip to the next batch marker past a header that does not make sense: a torn batch after a
// crash, or a damaged sector. Values carry their own checksum (result_cache.cpp), so an entry that
// fits but was damaged, or mixed with another writer's bytes (a short write, or a file system
// without atomic appends such as NFS), is still never used.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "gt/cache.hpp"

namespace gt {
namespace {

constexpr std::uint32_t kBatchMagic = 0x32435447;  // "GTC2"
constexpr std::size_t kBatchHeader = 16;
constexpr std::uint32_t kMaxValueBytes = 1 << 20;
constexpr auto kSyncEvery = std::chrono::seconds(2);

class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      missing_ = errno == ENOENT;
      return;  // nothing to index (and, unless missing, the first write says why)
    }
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
  bool missing() const { return missing_; }

 private:
  const char* data_ = nullptr;
  std::size_t size_ = 0;
  bool missing_ = false;
};

// Where each key's value lies in the file: an open-addressing table keyed by the key itself
// (already a hash), so that a lookup costs about one cache miss instead of a binary search's
// twenty, filled in file order so that a later entry for a key replaces an earlier one.
class Index {
 public:
  struct Entry {
    std::uint64_t key = 0;
    std::uint64_t offset = 0;  // of the value
    std::uint32_t length = 0;  // 0: an empty slot (no value is empty)
  };

  explicit Index(std::size_t entries) {
    std::size_t capacity = 16;
    while (capacity * 7 < entries * 10) capacity *= 2;  // load factor at most 0.7
    slots_.resize(capacity);
    mask_ = capacity - 1;
  }
  Index() = default;

  void put(const Entry& e) { slots_[slot(e.key)] = e; }
  // The entry for `key`, or nullptr.
  const Entry* find(std::uint64_t key) const {
    if (slots_.empty()) return nullptr;
    const Entry& e = slots_[slot(key)];
    return e.length ? &e : nullptr;
  }

 private:
  std::size_t slot(std::uint64_t key) const {
    for (std::size_t i = key & mask_;; i = (i + 1) & mask_)
      if (slots_[i].length == 0 || slots_[i].key == key) return i;
  }
  std::vector<Entry> slots_;
  std::size_t mask_ = 0;
};

class Namespace {
 public:
  explicit Namespace(std::filesystem::path path) : path_(std::move(path)), file_(path_) {
    if (file_.missing()) {
      // A namespace this store has never seen: the run will store every result. Create its file
      // while the first chunks compute instead of when the first results are ready.
      creating_ = std::thread([this] { open_for_append(); });
      return;
    }
    std::size_t entries = 0;
    for_each_entry([&](const Index::Entry&) { ++entries; });
    index_ = Index(entries);
    for_each_entry([&](const Index::Entry& e) { index_.put(e); });
  }
  ~Namespace() {
    if (creating_.joinable()) creating_.join();
    if (fd_ >= 0) ::close(fd_);
  }

  CacheBackend::Found find(std::uint64_t key, std::span<char> value) const {
    const Index::Entry* e = index_.find(key);
    if (!e) return CacheBackend::kMissing;
    if (e->length != value.size()) return CacheBackend::kWrongSize;
    std::memcpy(value.data(), file_.bytes().data() + e->offset, e->length);
    return CacheBackend::kFound;
  }

  // One writev per batch, straight from the caller's buffers and without a lock: O_APPEND places
  // each write whole at the end (the file system serializes them), so workers do not wait for
  // each other's copies. A process killed now leaves whole batches and at most one torn batch per
  // writing thread. Not gathered into larger writes: the gathering buffer's fresh pages cost more
  // than the extra system calls (measured: a 16 KB write costs 6 us, 256 KB 68 us).
  void append(std::span<const std::uint64_t> keys, std::size_t value_size, std::string_view values) {
    std::uint32_t header[4] = {kBatchMagic, static_cast<std::uint32_t>(keys.size()),
                               static_cast<std::uint32_t>(value_size), 0};
    iovec pieces[3] = {{header, sizeof header},
                       {const_cast<std::uint64_t*>(keys.data()), keys.size_bytes()},
                       {const_cast<char*>(values.data()), values.size()}};
    {
      std::lock_guard lock(write_mutex_);
      if (creating_.joinable()) creating_.join();
      if (fd_ < 0 && open_errno_ == 0) open_for_append();
      if (fd_ < 0)
        throw CacheUnavailable(fmt::format("cannot open {}: {}", path_.string(), std::strerror(open_errno_)));
    }
    for (std::size_t first = 0; first < std::size(pieces);) {
      const ssize_t n = ::writev(fd_, pieces + first, static_cast<int>(std::size(pieces) - first));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw CacheUnavailable(fmt::format("cannot write {}: {}", path_.string(), std::strerror(errno)));
      // A short write (a full disk, a signal): go on from where it stopped.
      for (auto done = static_cast<std::size_t>(n); done > 0 && first < std::size(pieces);) {
        const std::size_t step = std::min(done, pieces[first].iov_len);
        pieces[first].iov_base = static_cast<char*>(pieces[first].iov_base) + step;
        pieces[first].iov_len -= step;
        done -= step;
        if (pieces[first].iov_len == 0) ++first;
      }
    }
    // What a killed process wrote is safe in the page cache; a power loss may take the last
    // couple of seconds, which are then recomputed (never misread: see the framing above).
    if (std::chrono::steady_clock::now().time_since_epoch().count() - last_sync_.load(std::memory_order_relaxed) >
        std::chrono::steady_clock::duration(kSyncEvery).count())
      sync();
  }

 private:
  // Calls `visit` with every entry of the file that lies wholly in it, in file order.
  template <class Visit>
  void for_each_entry(Visit visit) const {
    const std::string_view bytes = file_.bytes();
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
        Index::Entry e;
        std::memcpy(&e.key, bytes.data() + keys_at + i * sizeof e.key, sizeof e.key);
        e.offset = values_at + i * value_size;
        e.length = static_cast<std::uint32_t>(value_size);
        visit(e);
      }
      at = values_at + count * value_size;
    }
  }

  // Runs once, on the creating thread or under write_mutex_.
  void open_for_append() {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) open_errno_ = errno;
    last_sync_ = std::chrono::steady_clock::now().time_since_epoch().count();
  }

  void sync() {
    std::lock_guard lock(write_mutex_);
    if (fd_ >= 0 && ::fdatasync(fd_) != 0)
      throw CacheUnavailable(fmt::format("cannot sync {}: {}", path_.string(), std::strerror(errno)));
    last_sync_ = std::chrono::steady_clock::now().time_since_epoch().count();
  }

  std::filesystem::path path_;
  MappedFile file_;  // as it was when the namespace was opened
  Index index_;      // immutable after construction

  std::mutex write_mutex_;
  std::thread creating_;  // creates the file of a new namespace; joined before the first write
  int fd_ = -1;
  int open_errno_ = 0;
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

  std::string describe() const override { return dir_.string(); }

 private:
  Namespace& open(std::string_view ns) {
    std::lock_guard lock(mutex_);
    auto it = spaces_.find(ns);
    if (it == spaces_.end())
      it = spaces_.emplace(std::string(ns), std::make_unique<Namespace>(dir_ / fmt::format("{}.log", ns))).first;
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
