#include <fmt/format.h>
#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#include <xxhash.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "gt/cache.hpp"

namespace gt {
namespace {

// Entry layout (little-endian, as written by this machine): format, stride, metric count, five
// zero bytes, the parameters, the metrics, then a checksum of all of the above seeded with the
// namespace and the key, so that an entry moved to another namespace or key fails it.
constexpr std::uint8_t kEntryFormat = 1;
constexpr std::size_t kHeaderBytes = 8;

std::uint64_t namespace_seed(std::string_view ns) { return XXH3_64bits(ns.data(), ns.size()); }

std::uint64_t params_key(std::span<const double> params) { return XXH3_64bits(params.data(), params.size_bytes()); }

std::size_t body_size(std::size_t stride) { return kHeaderBytes + (stride + kMetricCount) * sizeof(double); }
std::size_t entry_size(std::size_t stride) { return body_size(stride) + sizeof(std::uint64_t); }

void encode(std::uint64_t seed, std::uint64_t key, std::span<const double> params, const Metrics& m, char* at) {
  constexpr std::size_t count = kMetricCount;
  char* const start = at;
  std::memset(at, 0, kHeaderBytes);
  at[0] = static_cast<char>(kEntryFormat);
  at[1] = static_cast<char>(params.size());
  at[2] = static_cast<char>(count);
  at += kHeaderBytes;
  std::memcpy(at, params.data(), params.size_bytes());
  at += params.size_bytes();
  double values[kMetricCount];
  metric_values(m, values);
  std::memcpy(at, values, sizeof values);
  at += sizeof values;
  const std::uint64_t sum = XXH3_64bits_withSeed(start, static_cast<std::size_t>(at - start), seed ^ key);
  std::memcpy(at, &sum, sizeof sum);
}

// False for anything but an intact entry of these very parameters.
bool decode(std::uint64_t seed, std::uint64_t key, const char* v, std::span<const double> params, Metrics& m) {
  constexpr std::size_t count = kMetricCount;
  const std::size_t body = body_size(params.size());
  if (static_cast<std::uint8_t>(v[0]) != kEntryFormat || static_cast<std::uint8_t>(v[1]) != params.size() ||
      static_cast<std::uint8_t>(v[2]) != count)
    return false;
  std::uint64_t sum;
  std::memcpy(&sum, v + body, sizeof sum);
  if (sum != XXH3_64bits_withSeed(v, body, seed ^ key)) return false;
  if (std::memcmp(v + kHeaderBytes, params.data(), params.size_bytes()) != 0) return false;  // a key collision
  double values[kMetricCount];
  std::memcpy(values, v + kHeaderBytes + params.size_bytes(), sizeof values);
  m = metrics_from_values(values);
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
  hash_text(state, fmt::format("engine={} strategy={} code_version={}", kEngineVersion, strategy.name,
                               strategy.code_version));
  // Every field of SPEC §3 by value, periods per year as the engine will use it.
  hash_text(state, fmt::format("fill={} allow_short={} commission={} slippage_bps={} size={} cash={} periods_per_year={}",
                               static_cast<int>(options.fill), options.allow_short, options.commission,
                               options.slippage_bps, options.size, options.cash,
                               resolve_periods_per_year(bars, options)));
  hash_column(state, bars.time);
  hash_column(state, bars.open);
  hash_column(state, bars.high);
  hash_column(state, bars.low);
  hash_column(state, bars.close);
  hash_column(state, bars.volume);
  const XXH128_hash_t h = XXH3_128bits_digest(&state);
  return fmt::format("gt-v1-{:016x}{:016x}", h.high64, h.low64);
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
  if (const char* home = std::getenv("HOME"); home && *home) return std::filesystem::path(home) / ".cache" / "gpt-trader";
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

std::size_t ResultCache::lookup(std::string_view ns, std::span<const double> params, std::size_t stride,
                                std::span<Metrics> out, std::span<std::uint8_t> hit) {
  std::fill(hit.begin(), hit.end(), std::uint8_t{0});
  if (!available() || out.empty()) return 0;
  std::vector<std::uint64_t> keys(out.size());
  for (std::size_t i = 0; i < out.size(); ++i) keys[i] = params_key(params.subspan(i * stride, stride));
  const std::size_t size = entry_size(stride);
  const auto values = std::make_unique_for_overwrite<char[]>(out.size() * size);  // no zeroing: all copied over
  std::vector<std::uint8_t> found(out.size());
  try {
    backend_->get(ns, keys, size, {values.get(), out.size() * size}, found);
  } catch (const CacheUnavailable& e) {
    give_up(e);
    return 0;
  }
  const std::uint64_t seed = namespace_seed(ns);
  std::size_t hits = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (found[i] == CacheBackend::kMissing) continue;
    if (found[i] == CacheBackend::kFound && decode(seed, keys[i], values.get() + i * size, params.subspan(i * stride, stride), out[i]))
      hits += hit[i] = 1;
    else
      rejected_.fetch_add(1, std::memory_order_relaxed);
  }
  return hits;
}

void ResultCache::store(std::string_view ns, std::span<const double> params, std::size_t stride,
                        std::span<const Metrics> metrics) {
  if (!available() || metrics.empty()) return;
  const std::uint64_t seed = namespace_seed(ns);
  const std::size_t size = entry_size(stride);
  std::vector<std::uint64_t> keys(metrics.size());
  const auto values = std::make_unique_for_overwrite<char[]>(metrics.size() * size);
  for (std::size_t i = 0; i < metrics.size(); ++i) {
    const auto combo = params.subspan(i * stride, stride);
    keys[i] = params_key(combo);
    encode(seed, keys[i], combo, metrics[i], values.get() + i * size);
  }
  try {
    backend_->put(ns, keys, size, {values.get(), metrics.size() * size});
  } catch (const CacheUnavailable& e) {
    give_up(e);
  }
}

std::unique_ptr<ResultCache> open_result_cache(std::string_view location) {
  if (location.rfind("redis://", 0) == 0) return std::make_unique<ResultCache>(make_redis_backend(location));
  if (location.find("://") != std::string_view::npos)
    throw ParamError(fmt::format("--cache {}: unknown scheme; allowed: redis://[[user]:password@]host[:port][/db] "
                                 "or a folder",
                                 location));
  return std::make_unique<ResultCache>(make_disk_backend(std::filesystem::path(location)));
}

}  // namespace gt
