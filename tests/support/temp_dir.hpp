// A temporary folder for tests that write files, removed with its contents.
#pragma once

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace llamablocks::test {

class TempDir {
 public:
  /// \param prefix start of the folder's name, e.g. "llamablocks_gguf_".
  explicit TempDir(const std::string& prefix) {
    namespace fs = std::filesystem;
    std::random_device seed;
    for (int attempt = 0; attempt < 100; ++attempt) {
      path_ = fs::temp_directory_path() / (prefix + std::to_string(seed()));
      if (fs::create_directory(path_)) return;
    }
    FAIL("cannot create a temporary folder in " << fs::temp_directory_path());
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

/// Writes `bytes` to `path`, replacing the file.
inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

}  // namespace llamablocks::test
