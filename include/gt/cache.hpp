// Durable, content-keyed results. Every finished combination is recorded as a run goes, keyed by
// everything its metrics depend on, so that a rerun, a run resumed after a crash and an
// overlapping grid compute only what no earlier run computed. Entries are plain numbers with a
// checksum; an entry that fails it, or that belongs to other data or options, is never used.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gt/backtest.hpp"
#include "gt/data.hpp"
#include "gt/error.hpp"
#include "gt/grid.hpp"
#include "gt/strategy.hpp"

namespace gt {

// Bumped whenever the engine's numbers may change for the same inputs: part of every key.
inline constexpr int kEngineVersion = 2;  // 2: ruin (SEMANTICS.md "Ruin")

// A backend that can no longer serve (server gone, disk full). The cache stops being used for the
// rest of the run and says so once; results are then computed, never lost.
class CacheUnavailable : public Error {
 public:
  using Error::Error;
};

// Opaque values under (namespace, 64-bit key). Thread-safe. The values of one call all have
// `value_size` bytes and lie back to back, so a batch costs no allocation per entry.
class CacheBackend {
 public:
  enum Found : std::uint8_t { kMissing = 0, kFound = 1, kWrongSize = 2 };
  virtual ~CacheBackend() = default;
  // found[i]: kFound with value i copied to values[i * value_size], kWrongSize for a stored value
  // of another size (never an entry of this layout), else kMissing.
  virtual void get(std::string_view ns, std::span<const std::uint64_t> keys, std::size_t value_size,
                   std::span<char> values, std::span<std::uint8_t> found) = 0;
  // Entries of one namespace: keys[i]'s value at values[i * value_size].
  struct Batch {
    std::span<const std::uint64_t> keys;
    std::string_view values;
  };
  // Stores every batch (several chunks' results: a disk store writes them with one system call).
  // Returns once the values are durable against the process dying (not against a power loss): a
  // Ray task's results are kept when it returns, a killed run's stored chunks when resumed.
  virtual void put(std::string_view ns, std::size_t value_size, std::span<const Batch> batches) = 0;
  // False when the backend knows that it holds nothing of `ns`, so that a cold run skips lookups.
  virtual bool may_hold(std::string_view /*ns*/) { return true; }
  // Entries the store holds but could not read back (a damaged or torn stretch of a file): known
  // from a batch's header where it survived, else estimated from the stretch's length.
  virtual std::uint64_t unreadable_entries() const { return 0; }
  virtual std::string describe() const = 0;  // for messages and the JSON summary; never a password
};

// An embedded store in a folder: one append-only file of framed batches for every namespace
// (<dir>/results.log), which every process and thread appends with one O_APPEND write per put, so
// that on a local file system writers never interleave. A torn batch (the process killed or the
// power lost mid-write) is skipped by readers; nothing else is lost. Each put reaches the file
// (the page cache) before it returns, so a killed process loses only the chunks not yet stored,
// which a resumed run recomputes; a power loss, at most the last two seconds (the file is synced
// that often). Readers see the file as it was when the store was opened.
std::unique_ptr<CacheBackend> make_disk_backend(const std::filesystem::path& dir);
// redis://[[user]:password@]host[:port][/db]. Connects, authenticates and selects the database
// now, throwing Error with what to fix; later failures throw CacheUnavailable.
std::unique_ptr<CacheBackend> make_redis_backend(std::string_view url);
// `url` with its password replaced by *** (user:***@host): what every message and log shows.
std::string redact_url(std::string_view url);

// $GT_CACHE_DIR, else $XDG_CACHE_HOME/gpt-trader, else ~/.cache/gpt-trader.
std::filesystem::path default_cache_dir();

// The key of everything a combination's metrics depend on except its parameters: the market data
// (every column's bytes), the strategy and its code version, the docs/SEMANTICS.md "Fills and costs" options (periods
// per year resolved) and kEngineVersion. "gt-v3-" (the entry layout) and 32 hex digits: a valid folder and Redis key
// name.
std::string cache_namespace(const Bars& bars, const Strategy& strategy, const ExecutionOptions& options);

// A name for one run's private journal (used under --no-cache so that --resume still works): the
// namespaces of its symbols and every value of its grid.
std::string run_journal_name(std::span<const std::string> namespaces, const Grid& grid);
// One namespace for results that depend on several (a portfolio's symbols) and on `extra` (its
// allocation), in cache_namespace's form.
std::string combined_namespace(std::span<const std::string> namespaces, std::string_view extra);

// A combination's name in the cache: the 128-bit XXH3 hash of its parameter values. `key` is
// what backends store it under; `identity`, the other half, seeds its entry's checksum, so that
// another combination whose key collides is told apart.
struct CacheKey {
  std::uint64_t key, identity;
};
CacheKey cache_key(std::span<const double> params);

class ResultCache {
 public:
  // An entry: the Metrics struct's bytes and their checksum (result_cache.cpp).
  static constexpr std::size_t kEntryBytes = (kMetricCount + 1) * sizeof(std::uint64_t);

  explicit ResultCache(std::unique_ptr<CacheBackend> backend,
                       std::function<void(std::string_view)> warn = nullptr);  // default: stderr

  // For each combination: hit[i] = 1 and out[i] set where a verified entry exists; returns how
  // many. Never throws for a backend failure (the cache turns itself off).
  std::size_t lookup(std::string_view ns, std::span<const CacheKey> keys, std::span<Metrics> out,
                     std::span<std::uint8_t> hit);

  // Results encoded for one namespace, checksums and all, on whatever thread computed them, to be
  // stored later together with others (one write for several chunks).
  class Encoded {
   public:
    std::size_t bytes() const { return keys_.size() * (sizeof(std::uint64_t) + kEntryBytes); }

   private:
    friend class ResultCache;
    std::vector<std::uint64_t> keys_;
    std::unique_ptr<char[]> values_;
  };
  Encoded encode(std::string_view ns, std::span<const CacheKey> keys, std::span<const Metrics> metrics) const;
  void store(std::string_view ns, std::span<const Encoded> batches);
  void store(std::string_view ns, std::span<const CacheKey> keys, std::span<const Metrics> metrics);

  bool available() const { return available_.load(std::memory_order_relaxed); }
  std::uint64_t rejected() const { return rejected_.load(); }  // corrupt or foreign entries ignored
  // Entries lost in damaged or torn stretches of the store (CacheBackend::unreadable_entries).
  std::uint64_t unreadable() const { return backend_->unreadable_entries(); }
  std::string describe() const { return backend_->describe(); }

 private:
  void give_up(const CacheUnavailable& e);

  std::unique_ptr<CacheBackend> backend_;
  std::function<void(std::string_view)> warn_;
  std::atomic<bool> available_{true};
  std::atomic<std::uint64_t> rejected_{0};
  std::once_flag warned_;
};

// The cache a location names: "redis://..." or a folder.
std::unique_ptr<ResultCache> open_result_cache(std::string_view location);

}  // namespace gt
