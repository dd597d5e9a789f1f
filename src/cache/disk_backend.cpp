// The embedded store: one file for every namespace, <dir>/results.log, of append-only batches
// (one or more per put): a 32-byte header (magic "GTC3", u32 count, u32 value size, u32 zero, the
// 128-bit XXH3 hash of the namespace's name), count u64 keys, count values. One file rather than
// one per namespace, because creating a file is the dearest thing a cold run would otherwise do:
// an inode costs ~0.19 ms of kernel time on this machine's ext4 (the median of 300 creations), a
// tenth of computing the seed's whole grid. Every process and thread appends its batches with one
// O_APPEND write, which a local file system never interleaves with another.
//
// Readers take the file as it is when the store is opened: they walk the batch headers once,
// stepping over other namespaces' batches whole, and index a namespace's entries when it is first
// asked for (a later entry wins for a key written twice). A header that does not make sense (a
// damaged sector) is skipped up to the next batch marker, and so is the rest of a batch that does
// not end where the next one starts (torn by a writer killed mid-write, with the batches of later
// writers after it). Values carry their own checksum (result_cache.cpp), so an entry that fits but
// was damaged, or mixed with another writer's bytes (a short write, or a file system without
// atomic appends such as NFS), is still never used.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "gt/cache.hpp"

namespace gt {
namespace {

constexpr std::uint32_t kBatchMagic = 0x33435447;  // "GTC3"
constexpr std::uint32_t kMaxValueBytes = 1 << 20;
constexpr auto kSyncEvery = std::chrono::seconds(2);
constexpr const char* kStoreFile = "results.log";
// The bytes of one entry of today's layout (key and value), for counting the entries a damaged
// stretch of the file held.
constexpr std::size_t kEntryEstimate = sizeof(std::uint64_t) + ResultCache::kEntryBytes;

struct NamespaceId {
  std::uint64_t low = 0, high = 0;
  bool operator==(const NamespaceId&) const = default;
};
struct NamespaceIdHash {
  std::size_t operator()(const NamespaceId& id) const { return id.low; }  // already a hash
};
NamespaceId namespace_id(std::string_view ns) {
  const XXH128_hash_t h = XXH3_128bits(ns.data(), ns.size());
  return {h.low64, h.high64};
}

struct BatchHeader {
  std::uint32_t magic = kBatchMagic;
  std::uint32_t count = 0;
  std::uint32_t value_size = 0;
  std::uint32_t reserved = 0;
  NamespaceId ns;
};
static_assert(sizeof(BatchHeader) == 32);

// A file as long as it was when opened (missing: empty), mapped when first asked for: a cold run,
// whose namespace has no batch in the file, never maps it (unmapping in a threaded process costs
// every core a TLB flush).
class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    struct stat st {};
    if (fd_ >= 0 && ::fstat(fd_, &st) == 0) size_ = static_cast<std::size_t>(st.st_size);
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<char*>(data_), size_);
    if (fd_ >= 0) ::close(fd_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  std::string_view bytes() {
    if (!data_ && size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
      if (p == MAP_FAILED) throw CacheUnavailable(fmt::format("cannot map the result store: {}", std::strerror(errno)));
      data_ = static_cast<const char*>(p);
    }
    return {data_, size_};
  }
  int fd() const { return fd_; }
  std::size_t size() const { return size_; }

 private:
  int fd_;
  const char* data_ = nullptr;
  std::size_t size_ = 0;
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

  void put(const Entry& e) { slots_[slot(e.key)] = e; }
  // The entry for `key`, or nullptr.
  const Entry* find(std::uint64_t key) const {
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

// The file as it was when the store was opened: where every namespace's batches lie. Headers are
// read one by one (one pread a batch), not through a mapping: see MappedFile.
class Snapshot {
 public:
  explicit Snapshot(const std::filesystem::path& path) : file_(path) {
    const std::size_t size = file_.size();
    std::size_t at = 0;
    BatchHeader h;
    bool have = header_at(at, h);  // h: the header at `at`, already read and valid
    while (at + sizeof(BatchHeader) <= size) {
      if (!have) {
        const std::size_t next = next_marker(at + 1);
        unreadable_ += (next - at + kEntryEstimate - 1) / kEntryEstimate;
        at = next;
        have = header_at(at, h);
        continue;
      }
      const std::size_t keys_at = at + sizeof h, values_at = keys_at + std::size_t{h.count} * sizeof(std::uint64_t);
      std::size_t end = values_at + std::size_t{h.count} * h.value_size;
      // A batch is whole when the next batch or the file's end starts where it ends. A batch torn
      // by a writer killed mid-write claims bytes that the batches appended after it hold (or
      // more than the file has): it ends at the next batch marker instead, so that those are read.
      BatchHeader next;
      bool next_valid = end < size && header_at(end, next);
      if (end != size && !next_valid) {
        end = next_marker(at + 1);
        next_valid = header_at(end, next);
      }
      // Only entries whose key and value lie wholly in the batch's bytes.
      const std::size_t limit = std::min(end, size);
      const std::size_t whole =
          values_at > limit ? 0 : std::min<std::size_t>(h.count, (limit - values_at) / h.value_size);
      if (whole > 0) batches_[h.ns].push_back({keys_at, values_at, static_cast<std::uint32_t>(whole), h.value_size});
      unreadable_ += h.count - whole;  // a torn batch: its header says how many it had
      at = end;
      h = next;
      have = next_valid;
    }
  }

  bool holds(std::string_view ns) const { return batches_.contains(namespace_id(ns)); }
  std::uint64_t unreadable() const { return unreadable_; }

  // Every entry of `ns`, indexed (built on the first call; the caller serializes calls).
  const Index& index(std::string_view ns) {
    const auto it = indexes_.find(ns);
    if (it != indexes_.end()) return it->second;
    const auto found = batches_.find(namespace_id(ns));
    static const std::vector<BatchRef> kNone;
    const std::vector<BatchRef>& refs = found == batches_.end() ? kNone : found->second;
    std::size_t entries = 0;
    for (const BatchRef& b : refs) entries += b.count;
    Index index(entries);
    const char* bytes = refs.empty() ? nullptr : file_.bytes().data();
    for (const BatchRef& b : refs)
      for (std::size_t i = 0; i < b.count; ++i) {
        Index::Entry e;
        std::memcpy(&e.key, bytes + b.keys_at + i * sizeof e.key, sizeof e.key);
        e.offset = b.values_at + i * b.value_size;
        e.length = b.value_size;
        index.put(e);
      }
    return indexes_.emplace(std::string(ns), std::move(index)).first->second;
  }

  const char* bytes() { return file_.bytes().data(); }

 private:
  struct BatchRef {
    std::size_t keys_at, values_at;
    std::uint32_t count, value_size;  // count: the entries wholly in the batch's bytes
  };

  // Whether a batch header that makes sense starts at `at` (read into `h`).
  bool header_at(std::size_t at, BatchHeader& h) const {
    if (at + sizeof h > file_.size() ||
        ::pread(file_.fd(), &h, sizeof h, static_cast<off_t>(at)) != static_cast<ssize_t>(sizeof h))
      return false;
    return h.magic == kBatchMagic && h.value_size > 0 && h.value_size <= kMaxValueBytes && h.reserved == 0;
  }

  // Where the next batch marker at or after `from` starts (the file's end when none).
  std::size_t next_marker(std::size_t from) const {
    char block[64 << 10];
    const std::string_view marker(reinterpret_cast<const char*>(&kBatchMagic), sizeof kBatchMagic);
    const std::size_t size = file_.size();
    for (std::size_t at = from; at < size;) {
      const ssize_t n = ::pread(file_.fd(), block, std::min(sizeof block, size - at), static_cast<off_t>(at));
      if (n <= 0) break;
      const std::string_view text(block, static_cast<std::size_t>(n));
      if (const auto found = text.find(marker); found != std::string_view::npos) return at + found;
      if (static_cast<std::size_t>(n) < marker.size()) break;
      at += static_cast<std::size_t>(n) - (marker.size() - 1);  // a marker may straddle two blocks
    }
    return size;
  }

  MappedFile file_;
  std::unordered_map<NamespaceId, std::vector<BatchRef>, NamespaceIdHash> batches_;
  std::uint64_t unreadable_ = 0;
  std::map<std::string, Index, std::less<>> indexes_;  // nodes stay put: readers keep references
};

class DiskBackend final : public CacheBackend {
 public:
  // Takes the snapshot now, before any worker needs it: a worker that waited for another to take
  // it would sleep on a lock, and waking costs more than the snapshot here (50-100 us on this VM).
  explicit DiskBackend(std::filesystem::path dir) : dir_(std::move(dir)), path_(dir_ / kStoreFile) {
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    if (ec || !std::filesystem::is_directory(dir_))
      throw Error(
          {"cache_dir"},
          fmt::format("cache folder {}: cannot create it ({}); choose another with cache_dir, or run without a cache",
                      dir_.string(), ec ? ec.message() : "not a folder"));
    snapshot_.emplace(path_);
  }
  ~DiskBackend() override {
    if (fd_ >= 0) ::close(fd_);
  }

  bool may_hold(std::string_view ns) override { return snapshot_->holds(ns); }
  std::uint64_t unreadable_entries() const override { return snapshot_->unreadable(); }

  void get(std::string_view ns, std::span<const std::uint64_t> keys, std::size_t value_size, std::span<char> values,
           std::span<std::uint8_t> found) override {
    const Index* index = nullptr;
    const char* bytes = nullptr;
    {
      std::lock_guard lock(index_mutex_);
      index = &snapshot_->index(ns);
      bytes = snapshot_->bytes();
    }
    for (std::size_t i = 0; i < keys.size(); ++i) {
      const Index::Entry* e = index->find(keys[i]);
      found[i] = !e ? kMissing : e->length != value_size ? kWrongSize : kFound;
      if (found[i] == kFound) std::memcpy(values.data() + i * value_size, bytes + e->offset, value_size);
    }
  }

  // One writev for every batch of the call (up to IOV_MAX pieces), straight from the caller's
  // buffers and without a lock: O_APPEND places each write whole at the end (the file system
  // serializes them). A process killed now leaves whole batches and at most one torn batch per
  // writing thread.
  void put(std::string_view ns, std::size_t value_size, std::span<const Batch> batches) override {
    const NamespaceId id = namespace_id(ns);
    std::vector<BatchHeader> headers(batches.size());
    std::vector<iovec> pieces;
    pieces.reserve(3 * batches.size());
    for (std::size_t b = 0; b < batches.size(); ++b) {
      headers[b].count = static_cast<std::uint32_t>(batches[b].keys.size());
      headers[b].value_size = static_cast<std::uint32_t>(value_size);
      headers[b].ns = id;
      pieces.push_back({&headers[b], sizeof(BatchHeader)});
      pieces.push_back({const_cast<std::uint64_t*>(batches[b].keys.data()), batches[b].keys.size_bytes()});
      pieces.push_back({const_cast<char*>(batches[b].values.data()), batches[b].values.size()});
    }
    const int fd = writer();
    constexpr std::size_t kPiecesPerWrite = IOV_MAX / 3 * 3;  // whole batches in every write
    for (std::size_t first = 0; first < pieces.size(); first += kPiecesPerWrite)
      write_all(fd, std::span(pieces).subspan(first, std::min(kPiecesPerWrite, pieces.size() - first)));
    // What a killed process wrote is safe in the page cache; a power loss may take the last
    // couple of seconds, which are then recomputed (never misread: see the framing above).
    if (std::chrono::steady_clock::now().time_since_epoch().count() - last_sync_.load(std::memory_order_relaxed) >
        std::chrono::steady_clock::duration(kSyncEvery).count())
      sync(fd);
  }

  std::string describe() const override { return dir_.string(); }

 private:
  // The file opened for appending (created by the first put into a new folder).
  int writer() {
    std::lock_guard lock(write_mutex_);
    if (fd_ < 0) {
      fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (fd_ < 0) throw CacheUnavailable(fmt::format("cannot open {}: {}", path_.string(), std::strerror(errno)));
      last_sync_ = std::chrono::steady_clock::now().time_since_epoch().count();
    }
    return fd_;
  }

  void write_all(int fd, std::span<iovec> pieces) {
    for (std::size_t first = 0; first < pieces.size();) {
      const ssize_t n = ::writev(fd, pieces.data() + first, static_cast<int>(pieces.size() - first));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw CacheUnavailable(fmt::format("cannot write {}: {}", path_.string(), std::strerror(errno)));
      // A short write (a full disk, a signal): go on from where it stopped.
      for (auto done = static_cast<std::size_t>(n); done > 0 && first < pieces.size();) {
        const std::size_t step = std::min(done, pieces[first].iov_len);
        pieces[first].iov_base = static_cast<char*>(pieces[first].iov_base) + step;
        pieces[first].iov_len -= step;
        done -= step;
        if (pieces[first].iov_len == 0) ++first;
      }
    }
  }

  void sync(int fd) {
    if (::fdatasync(fd) != 0)
      throw CacheUnavailable(fmt::format("cannot sync {}: {}", path_.string(), std::strerror(errno)));
    last_sync_ = std::chrono::steady_clock::now().time_since_epoch().count();
  }

  std::filesystem::path dir_, path_;
  std::optional<Snapshot> snapshot_;  // what get finds: the file when the store was opened
  std::mutex index_mutex_;            // indexes are built on first use
  std::mutex write_mutex_;
  int fd_ = -1;
  std::atomic<std::chrono::steady_clock::rep> last_sync_{0};
};

}  // namespace

std::unique_ptr<CacheBackend> make_disk_backend(const std::filesystem::path& dir) {
  return std::make_unique<DiskBackend>(dir);
}

}  // namespace gt
