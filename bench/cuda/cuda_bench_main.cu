// main() of every cuda benchmark: Google Benchmark's flags; without a CUDA device it prints
// SKIPPED and exits 77. The device's name goes into the report's context.
#include "cuda_bench_support.cuh"

#include <cstdio>
#include <exception>

int main(int argc, char** argv) {
  int devices = 0;
  const cudaError_t status = cudaGetDeviceCount(&devices);
  if (status != cudaSuccess || devices == 0) {
    std::printf("SKIPPED: no CUDA device (%s)\n",
                status != cudaSuccess ? cudaGetErrorString(status) : "device count is 0");
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
