// RMSNorm (Zhang & Sennrich, 2019), the normalization of every LLaMA block:
//   y = x / sqrt(mean(x²) + eps) · γ        over the last dimension
//   x, y: [batch, tokens, dim]   γ (weight): [dim]
// Unlike LayerNorm it neither subtracts the mean nor adds a bias. eps comes from the model config
// (1e-5 for LLaMA-2 and 3) and the sum of squares is accumulated in at least float.
//
// API (every backend):
//   RMSNorm(index_t dim, double norm_eps)          throws config_error for dim <= 0, eps <= 0
//   Parameter<T, 1, Backend>& weight()              γ, initialized to ones
//   void forward(Context<Backend>&, TensorView<const T, 3> x, TensorView<T, 3> out) const
//     out may alias x exactly (in place); any other overlap is refused.
// Training (cpu and cuda, docs/training.md):
//   void enable_grad(), zero_grad()                 weight().grad(), accumulated by backward
//   void forward(ctx, x, out, Activations&) const   as forward, keeping x
//   void backward(ctx, const Activations&, TensorView<const T, 3> d_out, TensorView<T, 3> d_x)
#pragma once

#include "llamablocks/core/backend.hpp"

namespace llamablocks {

/// Root-mean-square normalization with a learnable gain.
/// \tparam Backend backend tag (cpu, cuda).
/// \tparam T       storage type of weights and activations.
template <class Backend, class T = float>
class RMSNorm {
  static_assert(detail::dependent_false<Backend, T>,
                "RMSNorm: no specialization for this backend; include llamablocks/llamablocks.hpp "
                "for cpu or llamablocks/cuda.cuh for cuda");
};

}  // namespace llamablocks
