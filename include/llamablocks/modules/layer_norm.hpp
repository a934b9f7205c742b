// LayerNorm (Ba et al., 2016), the baseline RMSNorm is compared against:
//   y = (x − mean(x)) / sqrt(var(x) + eps) · γ + β     over the last dimension, biased variance
//   x, y: [batch, tokens, dim]   γ (weight), β (bias): [dim]
//
// API (every backend):
//   LayerNorm(index_t dim, double norm_eps)
//   Parameter<T, 1, Backend>& weight()  (ones), bias()  (zeros)
//   void forward(Context<Backend>&, TensorView<const T, 3> x, TensorView<T, 3> out) const
#pragma once

#include "llamablocks/core/backend.hpp"

namespace llamablocks {

/// Layer normalization with learnable gain and bias.
/// \tparam Backend backend tag (cpu, cuda).
/// \tparam T       storage type of weights and activations.
template <class Backend, class T = float>
class LayerNorm {
  static_assert(detail::dependent_false<Backend, T>,
                "LayerNorm: no specialization for this backend; include llamablocks/llamablocks.hpp "
                "for cpu or llamablocks/cuda.cuh for cuda");
};

}  // namespace llamablocks
