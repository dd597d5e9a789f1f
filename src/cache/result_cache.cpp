#include <fmt/format.h>
// Inlined: the keys and checksums hash 32 to 96 bytes per combination, where a call into the
// shared library costs as much as the hashing.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <type_traits>

#include "gt/cache.hpp"

namespace gt {
namespace {

// An entry (little-endian, as written by this machine) is the Metrics struct's bytes (its twelve
// 8-byte fields in declaration order, trades an int64) and a checksum of them seeded with the
// namespace and both halves of the combination's CacheKey, so that an entry moved to another
// namespace, or stored under another combination whose key collides, fails it. The namespace's
// "v3" fixes this layout.
static_assert(std::is_trivially_copyable_v<Metrics> && sizeof(Metrics) == kMetricCount * sizeof(std::uint64_t));
std::uint64_t namespace_seed(std::string_view ns) {
  return XXH3_64bits(ns.data(), ns.size());
}
std::uint64_t entry_seed(std::uint64_t ns_seed, CacheKey k) {
  return ns_seed ^ k.key ^ std::rotl(k.identity, 29);
}

std::vector<std::uint64_t> backend_keys(std::span<const CacheKey> keys) {
  std::vector<std::uint64_t> out(keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) out[i] = keys[i].key;
  return out;
}

constexpr std::size_t kMetricBytes = kMetricCount * sizeof(double);
constexpr std::size_t kEntryBytes = ResultCache::kEntryBytes;
static_assert(kEntryBytes == kMetricBytes + sizeof(std::uint64_t));

// Hashes the struct where the engine left it, long since in the cache, rather than a copy just
// made: the hash reads 16 bytes at a time, which would wait on the copy's 8-byte stores.
void encode_entry(std::uint64_t seed, const Metrics& m, char* at) {
  const std::uint64_t sum = XXH3_64bits_withSeed(&m, sizeof m, seed);
  std::memcpy(at, &m, sizeof m);
  std::memcpy(at + kMetricBytes, &sum, sizeof sum);
}

// False for anything but an intact entry of this very combination and namespace.
bool decode_entry(std::uint64_t seed, const char* v, Metrics& m) {
  std::uint64_t sum;
  std::memcpy(&sum, v + kMetricBytes, sizeof sum);
  if (sum != XXH3_64bits_withSeed(v, kMetricBytes, seed)) return false;
  std::memcpy(&m, v, sizeof m);
  return true;
}

template <class T>
void hash_column(XXH3_state_t& state, const std::vector<T>& column) {
  const std::uint64_t n = column.size();
  XXH3_128bits_update(&state, &n, sizeof n);
  XXH3_128bits_update(&state, column.data(), column.size() * sizeof(T));
}

void hash_text(XXH3_state_t& state, std::string_view text) {
  const std::uint64_t n = text.size();
  XXH3_128bits_update(&state, &n, sizeof n);
  XXH3_128bits_update(&state, text.data(), text.size());
}

}  // namespace

std::string cache_namespace(const Bars& bars, const Strategy& strategy, const ExecutionOptions& options) {
  XXH3_state_t state;
  XXH3_128bits_reset(&state);
  hash_text(state,
            fmt::format("engine={} strategy={} code_version={}", kEngineVersion, strategy.name, strategy.code_version));
  if (!strategy.signal_identity.empty()) hash_text(state, strategy.signal_identity);
  // Every field of docs/SEMANTICS.md "Fills and costs" by value, periods per year as the engine will use it.
  hash_text(state,
            fmt::format("fill={} allow_short={} commission={} slippage_bps={} size={} cash={} periods_per_year={}",
                        static_cast<int>(options.fill), options.allow_short, options.commission, options.slippage_bps,
                        options.size, options.cash, resolve_periods_per_year(bars, options)));
  if (options.first_bar > 0 || options.close_at_end)  // a window's results are its own
    hash_text(state, fmt::format("window from bar {}, closed at the end: {}", options.first_bar, options.close_at_end));
  hash_column(state, bars.time);
  hash_column(state, bars.open);
  hash_column(state, bars.high);
  hash_column(state, bars.low);
  hash_column(state, bars.close);
  hash_column(state, bars.volume);
  for (const auto& series : bars.series) {  // the user's own series, which rules may read
    hash_text(state, series.name);
    hash_column(state, series.values);
  }
  const XXH128_hash_t h = XXH3_128bits_digest(&state);
  return fmt::format("gt-v3-{:016x}{:016x}", h.high64, h.low64);
}

std::string combined_namespace(std::span<const std::string> namespaces, std::string_view extra) {
  XXH3_state_t state;
  XXH3_128bits_reset(&state);
  for (const auto& ns : namespaces) hash_text(state, ns);
  hash_text(state, extra);
  const XXH128_hash_t h = XXH3_128bits_digest(&state);
  return fmt::format("gt-v3-{:016x}{:016x}", h.high64, h.low64);
}

std::string run_journal_name(std::span<const std::string> namespaces, const Grid& grid) {
  XXH3_state_t state;
  XXH3_128bits_reset(&state);
  for (const auto& ns : namespaces) hash_text(state, ns);
  hash_column(state, grid.base());
  for (const auto& axis : grid.axes()) {
    const std::uint64_t param = axis.param;
    XXH3_128bits_update(&state, &param, sizeof param);
    hash_column(state, axis.values);
  }
  const XXH128_hash_t h = XXH3_128bits_digest(&state);
  return fmt::format("run-{:016x}{:016x}", h.high64, h.low64);
}

std::filesystem::path default_cache_dir() {
  if (const char* dir = std::getenv("GT_CACHE_DIR"); dir && *dir) return dir;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return std::filesystem::path(xdg) / "gpt-trader";
  if (const char* home = std::getenv("HOME"); home && *home)
    return std::filesystem::path(home) / ".cache" / "gpt-trader";
  return std::filesystem::temp_directory_path() / "gpt-trader-cache";
}

ResultCache::ResultCache(std::unique_ptr<CacheBackend> backend, std::function<void(std::string_view)> warn)
    : backend_(std::move(backend)), warn_(std::move(warn)) {
  if (!warn_) warn_ = [](std::string_view text) { fmt::print(stderr, "warning: {}\n", text); };
}

void ResultCache::give_up(const CacheUnavailable& e) {
  available_ = false;
  std::call_once(warned_, [&] {
    warn_(fmt::format("result cache {} unavailable ({}); the run goes on without it", backend_->describe(), e.what()));
  });
}

CacheKey cache_key(std::span<const double> params) {
  const XXH128_hash_t h = XXH3_128bits(params.data(), params.size_bytes());
  return {h.low64, h.high64};
}

std::size_t ResultCache::lookup(std::string_view ns, std::span<const CacheKey> keys, std::span<Metrics> out,
                                std::span<std::uint8_t> hit) {
  std::fill(hit.begin(), hit.end(), std::uint8_t{0});
  if (!available() || out.empty()) return 0;
  try {
    if (!backend_->may_hold(ns)) return 0;
  } catch (const CacheUnavailable& e) {
    give_up(e);
    return 0;
  }
  const auto values = std::make_unique_for_overwrite<char[]>(out.size() * kEntryBytes);  // all copied over
  std::vector<std::uint8_t> found(out.size());
  try {
    backend_->get(ns, backend_keys(keys), kEntryBytes, {values.get(), out.size() * kEntryBytes}, found);
  } catch (const CacheUnavailable& e) {
    give_up(e);
    return 0;
  }
  const std::uint64_t seed = namespace_seed(ns);
  std::size_t hits = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (found[i] == CacheBackend::kMissing) continue;
    if (found[i] == CacheBackend::kFound &&
        decode_entry(entry_seed(seed, keys[i]), values.get() + i * kEntryBytes, out[i]))
      hits += hit[i] = 1;
    else
      rejected_.fetch_add(1, std::memory_order_relaxed);
  }
  return hits;
}

ResultCache::Encoded ResultCache::encode(std::string_view ns, std::span<const CacheKey> keys,
                                         std::span<const Metrics> metrics) const {
  Encoded out;
  out.keys_ = backend_keys(keys);
  out.values_ = std::make_unique_for_overwrite<char[]>(metrics.size() * kEntryBytes);
  const std::uint64_t seed = namespace_seed(ns);
  for (std::size_t i = 0; i < metrics.size(); ++i)
    encode_entry(entry_seed(seed, keys[i]), metrics[i], out.values_.get() + i * kEntryBytes);
  return out;
}

void ResultCache::store(std::string_view ns, std::span<const Encoded> batches) {
  if (!available()) return;
  std::vector<CacheBackend::Batch> pieces;
  pieces.reserve(batches.size());
  for (const Encoded& b : batches)
    if (!b.keys_.empty()) pieces.push_back({b.keys_, {b.values_.get(), b.keys_.size() * kEntryBytes}});
  if (pieces.empty()) return;
  try {
    backend_->put(ns, kEntryBytes, pieces);
  } catch (const CacheUnavailable& e) {
    give_up(e);
  }
}

void ResultCache::store(std::string_view ns, std::span<const CacheKey> keys, std::span<const Metrics> metrics) {
  if (!available()) return;
  const Encoded batch = encode(ns, keys, metrics);
  store(ns, {&batch, 1});
}

std::string redact_url(std::string_view url) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return std::string(url);
  const std::size_t start = scheme_end + 3;
  const std::size_t end = url.find_first_of("/?#", start);
  const std::string_view authority = url.substr(start, end == std::string_view::npos ? url.npos : end - start);
  const auto at = authority.rfind('@');
  if (at == std::string_view::npos) return std::string(url);
  const std::string_view credentials = authority.substr(0, at);
  const auto colon = credentials.find(':');
  const std::string shown =
      colon == std::string_view::npos ? "***" : std::string(credentials.substr(0, colon)) + ":***";
  return std::string(url.substr(0, start)) + shown + std::string(url.substr(start + at));
}

std::unique_ptr<ResultCache> open_result_cache(std::string_view location) {
  constexpr std::string_view kAllowed = "allowed: redis://[[user]:password@]host[:port][/db] or a folder";
  if (location.rfind("redis://", 0) == 0) return std::make_unique<ResultCache>(make_redis_backend(location));
  if (location.find("://") != std::string_view::npos)
    throw ParamError(
        fmt::format("cache {}: unknown scheme '{}' ({}; TLS connections are not supported, see the "
                    "README on tunnelling Redis through TLS)",
                    redact_url(location), location.substr(0, location.find("://")), kAllowed));
  // "redis:/host" or "redis:host": a URL with a slash missing, not a folder name.
  if (const auto colon = location.find(':'); colon != std::string_view::npos && colon > 1) {
    const std::string_view scheme = location.substr(0, colon);
    if (std::all_of(scheme.begin(), scheme.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)); }))
      throw ParamError(
          fmt::format("cache {}: a malformed URL (write {}://...; {})", redact_url(location), scheme, kAllowed));
  }
  return std::make_unique<ResultCache>(make_disk_backend(std::filesystem::path(location)));
}

}  // namespace gt
