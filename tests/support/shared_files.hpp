// Helpers of the tests that read the shared data (../shared beside the checkout: data/, models/)
// or check error messages.
#pragma once

#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>
#include <string>

namespace llamablocks::test {

/// The shared folder: the compile definition LLAMABLOCKS_SHARED_DIR, else the environment
/// variable of that name, else "".
inline std::string shared_dir() {
#ifdef LLAMABLOCKS_SHARED_DIR
  if (std::strlen(LLAMABLOCKS_SHARED_DIR) > 0) return LLAMABLOCKS_SHARED_DIR;
#endif
  const char* from_environment = std::getenv("LLAMABLOCKS_SHARED_DIR");
  return from_environment != nullptr ? from_environment : "";
}

/// The message of the `Error` that `f` throws; fails the test when it throws nothing.
template <class Error, class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  FAIL("no exception was thrown");
  return {};
}

}  // namespace llamablocks::test
