#include "cpu_reference.hpp"

#include "llamablocks/llamablocks.hpp"

#include <algorithm>

namespace llamablocks::test {

void cpu_rms_norm(const float* x, const float* weight, float* out, std::int64_t batch,
                  std::int64_t tokens, std::int64_t dim, double norm_eps) {
  Context<cpu> ctx;
  RMSNorm<cpu, float> norm(dim, norm_eps);
  norm.weight().copy_from(TensorView<const float, 1>(weight, {dim}));
  norm.forward(ctx, TensorView<const float, 3>(x, {batch, tokens, dim}),
               TensorView<float, 3>(out, {batch, tokens, dim}));
}

}  // namespace llamablocks::test
