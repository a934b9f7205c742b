// Sinusoidal absolute positional encoding (Vaswani et al., 2017), the baseline RoPE is compared
// against; added to the token embeddings once, before the first block:
//   PE[m, 2i]   = sin(m / 10000^(2i/dim))
//   PE[m, 2i+1] = cos(m / 10000^(2i/dim))
//   x: [batch, tokens, dim], x[b, t, :] += PE[start_pos + t, :]   (in place; dim must be even)
//
// API (every backend):
//   SinusoidalPositionalEncoding(index_t dim, index_t max_seq_len, double base = 10000)
//   void apply(Context<Backend>&, TensorView<T, 3> x, index_t start_pos) const
#pragma once

#include "llamablocks/core/backend.hpp"

namespace llamablocks {

/// Fixed sinusoidal position table added to the residual stream.
/// \tparam Backend backend tag (cpu, cuda).
/// \tparam T       storage type of the activations.
template <class Backend, class T = float>
class SinusoidalPositionalEncoding {
  static_assert(detail::dependent_false<Backend, T>,
                "SinusoidalPositionalEncoding: no specialization for this backend; include "
                "llamablocks/llamablocks.hpp for cpu or llamablocks/cuda.cuh for cuda");
};

}  // namespace llamablocks
