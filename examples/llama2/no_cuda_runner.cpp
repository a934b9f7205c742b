// make_cuda_runner for builds without the cuda backend: says so.
#include "runner.hpp"

#include <llamablocks/core/error.hpp>

namespace llama2 {

bool cuda_available() { return false; }

std::unique_ptr<Runner> make_cuda_runner(const HostWeights&, index_t, int) {
  throw config_error("CUDA backend not built (this build has the cpu backend only)");
}

}  // namespace llama2
