// Errors raised by llamablocks.
//
// Every failure the library detects is thrown as an exception derived from llamablocks::error, and
// its message names the offending parameter together with the value it had and the value that was
// expected, e.g. "RMSNorm: norm_eps must be > 0 and finite, got -1e-05". A function that throws has
// not modified any of its outputs or of the objects it was called on (strong guarantee).
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace llamablocks {

/// Base class of every exception thrown by llamablocks.
class error : public std::runtime_error {
 public:
  explicit error(const std::string& message) : std::runtime_error(message) {}
};

/// A tensor argument has the wrong rank, shape or stride, or does not match another argument.
class shape_error : public error {
 public:
  using error::error;
};

/// A model hyper-parameter is invalid (e.g. n_heads not divisible by n_kv_heads, eps <= 0).
class config_error : public error {
 public:
  using error::error;
};

/// An index or position lies outside its valid range (token id, sequence position, cache capacity).
class range_error : public error {
 public:
  using error::error;
};

/// Memory for a tensor could not be had (a hostile config asking for terabytes, or a real lack);
/// the message gives the bytes asked for.
class allocation_error : public error {
 public:
  using error::error;
};

namespace detail {

/// Concatenates the streamable arguments into one message.
template <class... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream stream;
  stream.precision(9);
  (stream << ... << parts);
  return stream.str();
}

/// Throws `Error` with the concatenated message when `condition` is false.
template <class Error, class... Parts>
void require(bool condition, const Parts&... parts) {
  if (!condition) throw Error(concat(parts...));
}

}  // namespace detail
}  // namespace llamablocks
