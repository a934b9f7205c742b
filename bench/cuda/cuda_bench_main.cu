// main() of every cuda benchmark: Google Benchmark's flags; without a CUDA device it prints
// SKIPPED and exits 77. The device's name goes into the report's context.
#include "cuda_bench_support.cuh"

#include <cstdio>
#include <exception>
#include <string>

int main(int argc, char** argv) {
  const std::string no_device = llamablocks::cuda_unavailable_reason();
  if (!no_device.empty()) {
    std::printf("SKIPPED: no CUDA device (%s)\n", no_device.c_str());
    return 77;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  try {
    const auto& bench = llamablocks::bench::CudaBench::get();
    benchmark::AddCustomContext("cuda_device", bench.properties().name);
    benchmark::RunSpecifiedBenchmarks();
  } catch (const std::exception& e) {
    std::printf("FAIL: %s\n", e.what());
    return 1;
  }
  benchmark::Shutdown();
  return 0;
}
