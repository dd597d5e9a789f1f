// Errors a user can act on: every message names the file and line, or the parameter and its
// allowed values.
#pragma once

#include <stdexcept>
#include <string>

namespace gt {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Bad market data: the message starts with "FILE:LINE:".
class DataError : public Error {
 public:
  using Error::Error;
};

// A parameter, option or grid the user gave that cannot be used.
class ParamError : public Error {
 public:
  using Error::Error;
};

}  // namespace gt
