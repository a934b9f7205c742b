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

/// `bytes` with every byte outside printable ASCII written as \xNN, for messages.
inline std::string escaped(const std::string& bytes) {
  std::string out;
  const char* digits = "0123456789abcdef";
  for (const char c : bytes) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7F && byte != '\\') {
      out += c;
    } else {
      out += "\\x";
      out += digits[byte >> 4];
      out += digits[byte & 15];
    }
  }
  return out;
}

/// Aborts unless decode(encode(text)) gave `text` back, naming both.
inline void require_round_trip(const char* what, const std::string& text, const std::string& decoded) {
  if (decoded != text)
    broken_promise(std::string(what) + ": decode(encode(text)) != text\n  text:    \"" +
                   escaped(text) + "\"\n  decoded: \"" + escaped(decoded) + "\"");
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
