// main() of every cuda benchmark: Google Benchmark's flags; without a CUDA device it prints
// SKIPPED and exits 77, except for --benchmark_list_tests, which needs none. The device's name
// goes into the report's context.
#include "cuda_bench_support.cuh"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

int main(int argc, char** argv) {
  // Listing the cases (--benchmark_list_tests) runs nothing, so it needs no device.
  const bool listing = std::any_of(argv + 1, argv + argc, [](const char* arg) {
    return std::strcmp(arg, "--benchmark_list_tests") == 0 ||
           std::strcmp(arg, "--benchmark_list_tests=true") == 0;
  });
  const std::string no_device = listing ? std::string() : llamablocks::cuda_unavailable_reason();
  if (!no_device.empty()) {
    std::printf("SKIPPED: no CUDA device (%s)\n", no_device.c_str());
    return 77;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  try {
    if (!listing)
      benchmark::AddCustomContext("cuda_device", llamablocks::bench::CudaBench::get().properties().name);
    benchmark::RunSpecifiedBenchmarks();
  } catch (const std::exception& e) {
    std::printf("FAIL: %s\n", e.what());
    return 1;
  }
  benchmark::Shutdown();
  return 0;
}
