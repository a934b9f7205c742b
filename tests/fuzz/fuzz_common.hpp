// Shared by the libFuzzer targets: the readers take a path, so each input is written to one
// temporary file per process (in /dev/shm when it exists, else $TMPDIR or /tmp), which the target
// then opens as a user's file would be opened.
#pragma once

#include "llamablocks/core/error.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>

namespace llamablocks::fuzz {

/// Stops the fuzzer with a message: a property the documentation promises does not hold.
[[noreturn]] inline void broken_promise(const std::string& what) {
  std::fprintf(stderr, "fuzz: broken promise: %s\n", what.c_str());
  std::abort();
}

/// The path of this process's input file, rewritten with `data` on each call.
inline const std::string& write_input(const std::uint8_t* data, std::size_t size) {
  static const std::string path = [] {
    const char* dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : std::getenv("TMPDIR");
    std::string pattern = std::string(dir ? dir : "/tmp") + "/llamablocks_fuzz_XXXXXX";
    const int fd = mkstemp(pattern.data());
    if (fd < 0) broken_promise("cannot create the temporary input file " + pattern);
    close(fd);
    static const std::string removed_at_exit = pattern;
    std::atexit([] { std::remove(removed_at_exit.c_str()); });
    return pattern;
  }();
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (!file) broken_promise("cannot write the temporary input file " + path);
  if (size != 0 && std::fwrite(data, 1, size, file) != size) broken_promise("short write to " + path);
  std::fclose(file);
  return path;
}

}  // namespace llamablocks::fuzz
