// One authenticated connection to Redis (src/redis/redis_connection.hpp).
#include "redis_connection.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstring>

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
      throw ParamError(fmt::format("{}: a bad %-escape in the credentials", redact_url(url)));
    out += static_cast<char>(value);
    i += 2;
  }
  return out;
}

int parse_number(std::string_view text, std::string_view what, std::string_view url, int max) {
  int value = -1;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value < 0 || value > max)
    throw ParamError(fmt::format("{}: {} must be a number from 0 to {}, got '{}'", redact_url(url), what, max, text));
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

}  // namespace

RedisConnection::RedisConnection(std::string_view url, std::string role) : role_(std::move(role)) {
  const RedisUrl parsed = [&] {
    try {
      return parse_url(url);
    } catch (const ParamError& e) {
      throw ParamError({role_}, fmt::format("{} {}", role_, e.what()));
    }
  }();
  shown_ = parsed.shown;
  // A server that dies mid-run must not take this process with it: hiredis writes to the
  // socket without MSG_NOSIGNAL, so a broken connection would raise SIGPIPE.
  struct sigaction current {};
  if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) std::signal(SIGPIPE, SIG_IGN);
  const timeval timeout{5, 0};
  context_.reset(redisConnectWithTimeout(parsed.host.c_str(), parsed.port, timeout));
  if (!context_ || context_->err)
    throw Error({role_}, fmt::format("{} {}: cannot connect ({}); is redis-server running there?", role_, shown_,
                                     context_ ? context_->errstr : "out of memory"));
  redisSetTimeout(context_.get(), timeout);
  const auto expect_ok = [&](const RedisReply& reply, std::string_view what) {
    if (reply->type == REDIS_REPLY_ERROR)
      throw Error({role_}, fmt::format("{} {}: {} ({})", role_, shown_, what, reply->str));
  };
  if (!parsed.password.empty()) {
    std::vector<std::string> auth = {"AUTH"};
    if (!parsed.user.empty()) auth.push_back(parsed.user);
    auth.push_back(parsed.password);
    expect_ok(command(auth), "authentication failed: check the user and password in the URL");
  }
  if (parsed.db != 0) expect_ok(command({"SELECT", std::to_string(parsed.db)}), "cannot select the database");
  const RedisReply pong = command({"PING"});
  if (pong->type == REDIS_REPLY_ERROR) {
    const std::string why = pong->str;
    throw Error({role_}, fmt::format("{} {}: {}{}", role_, shown_, why,
                                     why.rfind("NOAUTH", 0) == 0
                                         ? "; give the password in the URL: redis://:PASSWORD@host:port/db"
                                         : ""));
  }
}

RedisReply RedisConnection::command(const std::vector<std::string>& args) {
  if (context_->err) throw RedisUnavailable(fmt::format("{}: {}", shown_, connection_problem()));
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lengths.push_back(a.size());
  }
  auto* raw = static_cast<redisReply*>(
      redisCommandArgv(context_.get(), static_cast<int>(argv.size()), argv.data(), lengths.data()));
  if (!raw) throw RedisUnavailable(fmt::format("{}: {}", shown_, connection_problem()));
  return RedisReply(raw, freeReplyObject);
}

RedisReply RedisConnection::checked(const std::vector<std::string>& args) {
  RedisReply reply = command(args);
  if (reply->type == REDIS_REPLY_ERROR) throw RedisUnavailable(fmt::format("{}: {}", shown_, reply->str));
  return reply;
}

std::vector<RedisReply> RedisConnection::pipeline(const std::vector<std::vector<std::string>>& commands) {
  if (context_->err) throw RedisUnavailable(fmt::format("{}: {}", shown_, connection_problem()));
  for (const auto& args : commands) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lengths.push_back(a.size());
    }
    if (redisAppendCommandArgv(context_.get(), static_cast<int>(argv.size()), argv.data(), lengths.data()) != REDIS_OK)
      throw RedisUnavailable(fmt::format("{}: {}", shown_, connection_problem()));
  }
  std::vector<RedisReply> replies;
  for (std::size_t i = 0; i < commands.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(context_.get(), &raw) != REDIS_OK || !raw)
      throw RedisUnavailable(fmt::format("{}: {}", shown_, connection_problem()));
    replies.emplace_back(static_cast<redisReply*>(raw), freeReplyObject);
  }
  return replies;
}

// hiredis's words for a port that is not Redis's, said so that a user knows what to check.
std::string RedisConnection::connection_problem() const {
  if (context_->err == REDIS_ERR_PROTOCOL)
    return fmt::format("the server there does not speak Redis's protocol ({}): is this a Redis port?",
                       context_->errstr);
  // Debian's hiredis reports a read timeout as EAGAIN's text.
  if (context_->err == REDIS_ERR_IO && std::strcmp(context_->errstr, std::strerror(EAGAIN)) == 0)
    return "no answer within 5 s: is redis-server listening on this port (and not another service)?";
  return context_->errstr;
}

}  // namespace gt
