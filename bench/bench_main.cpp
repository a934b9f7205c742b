// The main() shared by every bench_<module> executable: Google Benchmark's flags, plus the thread
// count and the SIMD instruction sets in the report's context, so that saved JSON results say what
// they were measured with.
#include "bench_support.hpp"

#include <Eigen/Core>

#include <iostream>
#include <string>

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  try {
    benchmark::AddCustomContext("llamablocks_threads",
                                std::to_string(llamablocks::bench::cpu_threads()));
  } catch (const llamablocks::error& failure) {
    std::cerr << failure.what() << '\n';
    return 1;
  }
  benchmark::AddCustomContext("eigen_simd", Eigen::SimdInstructionSetsInUse());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
