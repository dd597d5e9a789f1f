// The shared cache: one Redis hash per namespace, a field per combination key (16 hex digits),
// the checksummed entry as its value. One connection, one round trip per batch (HMGET / HSET).
#include <fmt/format.h>
#include <hiredis/hiredis.h>

#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstring>
#include <mutex>

#include "gt/cache.hpp"

namespace gt {
namespace {

struct RedisUrl {
  std::string user, password, host = "127.0.0.1";
  int port = 6379;
  int db = 0;
  std::string shown;  // without the password
};

std::string percent_decode(std::string_view s, std::string_view url) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    int value = 0;
    if (i + 2 >= s.size() || std::from_chars(s.data() + i + 1, s.data() + i + 3, value, 16).ptr != s.data() + i + 3)
      throw ParamError({"cache"}, fmt::format("cache {}: a bad %-escape in the credentials", redact_url(url)));
    out += static_cast<char>(value);
    i += 2;
  }
  return out;
}

int parse_number(std::string_view text, std::string_view what, std::string_view url, int max) {
  int value = -1;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value < 0 || value > max)
    throw ParamError(
        fmt::format("cache {}: {} must be a number from 0 to {}, got '{}'", redact_url(url), what, max, text));
  return value;
}

RedisUrl parse_url(std::string_view url) {
  constexpr std::string_view scheme = "redis://";
  RedisUrl r;
  std::string_view rest = url.substr(scheme.size());
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view credentials = rest.substr(0, at);
    const auto colon = credentials.find(':');
    if (colon == std::string_view::npos) {
      r.password = percent_decode(credentials, url);  // redis://password@host, as redis-cli -u reads it
    } else {
      r.user = percent_decode(credentials.substr(0, colon), url);
      r.password = percent_decode(credentials.substr(colon + 1), url);
    }
    rest = rest.substr(at + 1);
  }
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    if (slash + 1 < rest.size()) r.db = parse_number(rest.substr(slash + 1), "the database", url, 1 << 20);
    rest = rest.substr(0, slash);
  }
  if (const auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    r.port = parse_number(rest.substr(colon + 1), "the port", url, 65535);
    rest = rest.substr(0, colon);
  }
  if (!rest.empty()) r.host = std::string(rest);
  r.shown = fmt::format("redis://{}{}:{}/{}", r.user.empty() && r.password.empty() ? "" : (r.user + ":***@"), r.host,
                        r.port, r.db);
  return r;
}

using Reply = std::unique_ptr<redisReply, decltype(&freeReplyObject)>;

class RedisBackend final : public CacheBackend {
 public:
  explicit RedisBackend(std::string_view url) : url_(parse_url(url)) {
    // A server that dies mid-run must not take this process with it: hiredis writes to the
    // socket without MSG_NOSIGNAL, so a broken connection would raise SIGPIPE.
    struct sigaction current {};
    if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) std::signal(SIGPIPE, SIG_IGN);
    const timeval timeout{5, 0};
    context_.reset(redisConnectWithTimeout(url_.host.c_str(), url_.port, timeout));
    if (!context_ || context_->err)
      throw Error({"cache"}, fmt::format("cache {}: cannot connect ({}); is redis-server running there?", url_.shown,
                                         context_ ? context_->errstr : "out of memory"));
    redisSetTimeout(context_.get(), timeout);
    if (!url_.password.empty()) {
      std::vector<std::string> auth = {"AUTH"};
      if (!url_.user.empty()) auth.push_back(url_.user);
      auth.push_back(url_.password);
      expect_ok(command(auth), "authentication failed: check the user and password in the URL");
    }
    if (url_.db != 0) expect_ok(command({"SELECT", std::to_string(url_.db)}), "cannot select the database");
    const Reply pong = command({"PING"});
    if (pong->type == REDIS_REPLY_ERROR) {
      const std::string why = pong->str;
      throw Error(fmt::format(
          "cache {}: {}{}", url_.shown, why,
          why.rfind("NOAUTH", 0) == 0 ? "; give the password in the URL: redis://:PASSWORD@host:port/db" : ""));
    }
  }

  void get(std::string_view ns, std::span<const std::uint64_t> keys, std::size_t value_size, std::span<char> values,
           std::span<std::uint8_t> found) override {
    std::vector<std::string> args = {"HMGET", std::string(ns)};
    for (const auto key : keys) args.push_back(fmt::format("{:016x}", key));
    std::lock_guard lock(mutex_);
    const Reply reply = checked(args);
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != keys.size())
      throw CacheUnavailable(fmt::format("{}: unexpected reply to HMGET", url_.shown));
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

  std::string describe() const override { return url_.shown; }

 private:
  Reply command(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lengths.push_back(a.size());
    }
    auto* raw = static_cast<redisReply*>(
        redisCommandArgv(context_.get(), static_cast<int>(argv.size()), argv.data(), lengths.data()));
    if (!raw) throw CacheUnavailable(fmt::format("{}: {}", url_.shown, connection_problem()));
    return Reply(raw, freeReplyObject);
  }

  Reply checked(const std::vector<std::string>& args) {
    if (context_->err) throw CacheUnavailable(fmt::format("{}: {}", url_.shown, connection_problem()));
    Reply reply = command(args);
    if (reply->type == REDIS_REPLY_ERROR) throw CacheUnavailable(fmt::format("{}: {}", url_.shown, reply->str));
    return reply;
  }

  // hiredis's words for a port that is not Redis's, said so that a user knows what to check.
  std::string connection_problem() const {
    if (context_->err == REDIS_ERR_PROTOCOL)
      return fmt::format("the server there does not speak Redis's protocol ({}): is this a Redis port?",
                         context_->errstr);
    // Debian's hiredis reports a read timeout as EAGAIN's text.
    if (context_->err == REDIS_ERR_IO && std::strcmp(context_->errstr, std::strerror(EAGAIN)) == 0)
      return "no answer within 5 s: is redis-server listening on this port (and not another service)?";
    return context_->errstr;
  }

  void expect_ok(const Reply& reply, std::string_view what) const {
    if (reply->type == REDIS_REPLY_ERROR)
      throw Error({"cache"}, fmt::format("cache {}: {} ({})", url_.shown, what, reply->str));
  }

  RedisUrl url_;
  std::unique_ptr<redisContext, decltype(&redisFree)> context_{nullptr, redisFree};
  std::mutex mutex_;
};

}  // namespace

std::unique_ptr<CacheBackend> make_redis_backend(std::string_view url) {
  try {
    return std::make_unique<RedisBackend>(url);
  } catch (const CacheUnavailable& e) {
    throw Error({"cache"}, fmt::format("cache: {}", e.what()));  // failures while connecting are the user's to fix
  }
}

}  // namespace gt
