// Shared pieces of the cuda tests (plain executables, no Catch2): the failure counter and EXPECT,
// exception checks, device buffers with poisoned guard regions, random values rounded to T, and
// the "no GPU: exit 77" entry point that CTest reports as skipped.
#pragma once

#include "llamablocks/cuda.cuh"

#include "tolerance_cuda.hpp"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <random>
#include <string>
#include <vector>

namespace llamablocks::test {

inline int failures = 0;

#define EXPECT(condition)                                                             \
  do {                                                                                \
    if (!(condition)) {                                                               \
      ++::llamablocks::test::failures;                                                \
      std::printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #condition);                \
    }                                                                                 \
  } while (0)

template <class Error, class Body>
bool throws_with(Body&& body, const char* needle, std::string* message = nullptr) {
  try {
    body();
  } catch (const Error& e) {
    if (message != nullptr) *message = e.what();
    return std::strstr(e.what(), needle) != nullptr;
  }
  return false;
}

inline constexpr index_t guard = 64;       // elements on each side of a device output
inline constexpr unsigned char poison = 0xFF;  // NaN in float, half and bf16

/// Device buffer of `count` elements between two guards, filled with poison bytes.
template <class T>
struct GuardedBuffer {
  explicit GuardedBuffer(index_t elements) : count(elements), storage({elements + 2 * guard}) {
    const std::vector<unsigned char> bytes(total_bytes(), poison);
    detail::allocator<cuda>::copy_from_host(storage.data(), bytes.data(), bytes.size());
  }
  std::size_t total_bytes() const { return static_cast<std::size_t>(count + 2 * guard) * sizeof(T); }
  T* data() { return storage.data() + guard; }

  /// Copies the interior to `host` and returns whether both guards still hold the poison.
  bool read(std::vector<T>& host) const {
    std::vector<unsigned char> bytes(total_bytes());
    detail::allocator<cuda>::copy_to_host(bytes.data(), storage.data(), bytes.size());
    host.resize(static_cast<std::size_t>(count));
    std::memcpy(host.data(), bytes.data() + guard * sizeof(T), host.size() * sizeof(T));
    const std::size_t guard_bytes = guard * sizeof(T);
    for (std::size_t i = 0; i < guard_bytes; ++i)
      if (bytes[i] != poison || bytes[bytes.size() - 1 - i] != poison) return false;
    return true;
  }

  index_t count;
  Tensor<T, 1, cuda> storage;
};

template <class T>
void upload(T* device, const std::vector<T>& host) {
  detail::allocator<cuda>::copy_from_host(device, host.data(), host.size() * sizeof(T));
}

/// Random values rounded to T, with their exact values as double.
template <class T>
std::vector<T> random_values(std::mt19937& rng, std::size_t count, float low, float high,
                             std::vector<double>& exact) {
  std::uniform_real_distribution<float> uniform(low, high);
  std::vector<T> values(count);
  exact.resize(count);
  for (std::size_t i = 0; i < count; ++i) {
    values[i] = detail::from_float<T>(uniform(rng));
    exact[i] = static_cast<double>(detail::to_float(values[i]));
  }
  return values;
}

template <class T>
std::vector<double> widen(const std::vector<T>& values) {
  std::vector<double> out(values.size());
  for (std::size_t i = 0; i < values.size(); ++i)
    out[i] = static_cast<double>(detail::to_float(values[i]));
  return out;
}

/// `count` elements of device memory, copied back and widened to double.
template <class T>
std::vector<double> read_device(const T* device, index_t count) {
  std::vector<T> host(static_cast<std::size_t>(count));
  detail::allocator<cuda>::copy_to_host(host.data(), device, host.size() * sizeof(T));
  return widen(host);
}

/// The T values as float, for the cpu (float) reference.
template <class T>
std::vector<float> narrow_to_float(const std::vector<T>& values) {
  std::vector<float> out(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) out[i] = detail::to_float(values[i]);
  return out;
}

/// Counts a failure unless `actual` is within `threshold` NMSE of `reference` (printing a line).
inline void expect_close(const std::string& what, const std::vector<double>& actual,
                         const std::vector<double>& reference, double threshold) {
  if (actual.size() != reference.size()) {
    ++failures;
    std::printf("FAIL %s: %zu values, expected %zu\n", what.c_str(), actual.size(), reference.size());
    return;
  }
  if (!check_close(what.c_str(), actual.data(), reference.data(), actual.size(), threshold))
    ++failures;
}

/// main() of a cuda test: exit 77 (CTest: skipped) without a device, else run `body` with a
/// context and report; 0 when every check passed, 1 otherwise.
template <class Body>
int run_cuda_test(Body&& body) {
  const std::string no_device = cuda_unavailable_reason();
  if (!no_device.empty()) {
    std::printf("SKIPPED: no CUDA device (%s)\n", no_device.c_str());
    return 77;
  }
  try {
    Context<cuda> ctx;
    cudaDeviceProp properties{};
    LLAMABLOCKS_CUDA_CHECK(cudaGetDeviceProperties(&properties, ctx.device()));
    std::printf("device %d: %s, %d multiprocessors\n", ctx.device(), properties.name,
                ctx.multiprocessor_count());
    body(ctx);
  } catch (const std::exception& e) {
    std::printf("FAIL: unexpected exception: %s\n", e.what());
    return 1;
  }
  std::printf(failures == 0 ? "all cuda checks passed\n" : "%d cuda check(s) FAILED\n", failures);
  return failures == 0 ? 0 : 1;
}

}  // namespace llamablocks::test
