// The cpu backend's RMSNorm<cpu, float>, compiled by the host compiler (Eigen stays out of nvcc) and
// called from the cuda tests as the cross-backend reference.
#pragma once

#include <cstdint>

namespace llamablocks::test {

/// out = RMSNorm<cpu, float>(x) with gain `weight`; x, out: [batch, tokens, dim], weight: [dim].
void cpu_rms_norm(const float* x, const float* weight, float* out, std::int64_t batch,
                  std::int64_t tokens, std::int64_t dim, double norm_eps);

}  // namespace llamablocks::test
