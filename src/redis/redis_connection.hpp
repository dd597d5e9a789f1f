// One authenticated connection to Redis (hiredis), shared by the result cache and the live
// engine: the URL redis://[[user]:password@]host[:port][/db], the messages a user can act on.
#pragma once

#include <hiredis/hiredis.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gt/error.hpp"

namespace gt {

// The connection failed or the server refused a command: the message names the server (never
// the password).
class RedisUnavailable : public Error {
 public:
  using Error::Error;
};

using RedisReply = std::unique_ptr<redisReply, decltype(&freeReplyObject)>;

class RedisConnection {
 public:
  // Connects, authenticates, selects the database and pings; `role` is the option the URL came
  // from ("cache", "redis"), named in the messages. Throws Error (the user's to fix).
  RedisConnection(std::string_view url, std::string role);
  // Sends one command; throws RedisUnavailable when the connection fails or Redis answers an error.
  RedisReply checked(const std::vector<std::string>& args);
  // The same, an error reply returned rather than thrown (for replies a caller expects).
  RedisReply command(const std::vector<std::string>& args);
  // Several commands in one round trip; every reply, in order (errors returned, not thrown).
  std::vector<RedisReply> pipeline(const std::vector<std::vector<std::string>>& commands);
  const std::string& describe() const { return shown_; }

 private:
  std::string connection_problem() const;
  std::string role_, shown_;
  std::unique_ptr<redisContext, decltype(&redisFree)> context_{nullptr, redisFree};
};

}  // namespace gt
