// The shared cache: one Redis hash per namespace, a field per combination key (16 hex digits),
// the checksummed entry as its value. One connection, one round trip per batch (HMGET / HSET).
#include <fmt/format.h>

#include <cstring>
#include <mutex>

#include "../redis/redis_connection.hpp"
#include "gt/cache.hpp"

namespace gt {
namespace {

class RedisBackend final : public CacheBackend {
 public:
  explicit RedisBackend(std::string_view url) : connection_(url, "cache") {}

  void get(std::string_view ns, std::span<const std::uint64_t> keys, std::size_t value_size, std::span<char> values,
           std::span<std::uint8_t> found) override {
    std::vector<std::string> args = {"HMGET", std::string(ns)};
    for (const auto key : keys) args.push_back(fmt::format("{:016x}", key));
    std::lock_guard lock(mutex_);
    const RedisReply reply = checked(args);
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != keys.size())
      throw CacheUnavailable(fmt::format("{}: unexpected reply to HMGET", connection_.describe()));
    for (std::size_t i = 0; i < keys.size(); ++i) {
      const redisReply* e = reply->element[i];
      found[i] = kMissing;
      if (e->type != REDIS_REPLY_STRING) continue;
      if (e->len != value_size) {
        found[i] = kWrongSize;
        continue;
      }
      std::memcpy(values.data() + i * value_size, e->str, value_size);
      found[i] = kFound;
    }
  }

  void put(std::string_view ns, std::size_t value_size, std::span<const Batch> batches) override {
    std::vector<std::string> args = {"HSET", std::string(ns)};
    for (const Batch& b : batches)
      for (std::size_t i = 0; i < b.keys.size(); ++i) {
        args.push_back(fmt::format("{:016x}", b.keys[i]));
        args.emplace_back(b.values.substr(i * value_size, value_size));
      }
    std::lock_guard lock(mutex_);
    checked(args);
  }

  std::string describe() const override { return connection_.describe(); }

 private:
  RedisReply checked(const std::vector<std::string>& args) {
    try {
      return connection_.checked(args);
    } catch (const RedisUnavailable& e) {
      throw CacheUnavailable(e.what());
    }
  }

  RedisConnection connection_;
  std::mutex mutex_;
};

}  // namespace

std::unique_ptr<CacheBackend> make_redis_backend(std::string_view url) {
  return std::make_unique<RedisBackend>(url);
}

}  // namespace gt
