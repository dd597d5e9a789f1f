// Errors a user can act on: every message names the file and line, or the parameter and its
// allowed values.
//
// Library messages name parameters as the library calls them (`cache`, `device`, `skip_bad_rows`),
// never a front end's spelling; an error that names some lists them in parameters(), so that each
// front end can phrase them for its users (the CLI as --cache, --skip-bad-rows).
#pragma once

#include <cctype>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace gt {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
  Error(std::vector<std::string> parameters, const std::string& message)
      : std::runtime_error(message), parameters_(std::move(parameters)) {}
  // The library's parameter names the message mentions as words of its own.
  const std::vector<std::string>& parameters() const { return parameters_; }

 private:
  std::vector<std::string> parameters_;
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

// The message with the first mention of each parameter it names (its subject) rewritten by `spell`,
// a front end's phrasing. Whole words only, so that a parameter `x` leaves "x" inside other words
// alone.
template <class Spell>
std::string phrase_error(const Error& e, Spell spell) {
  std::string text = e.what();
  for (const auto& name : e.parameters()) {
    const std::string replacement = spell(name);
    const auto is_word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'; };
    std::string out;
    std::size_t from = 0;
    for (std::size_t at = text.find(name); at != std::string::npos; at = text.find(name, at + name.size())) {
      const bool starts = at == 0 || !is_word(text[at - 1]);
      const bool ends = at + name.size() == text.size() || !is_word(text[at + name.size()]);
      if (!starts || !ends) continue;
      out += text.substr(from, at - from) + replacement;
      from = at + name.size();
      break;
    }
    text = out + text.substr(from);
  }
  return text;
}

}  // namespace gt
