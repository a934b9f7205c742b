// Linear: a bias-free projection, the output head of a LLaMA model.
//   y = x · Wᵀ
//   x: [batch, tokens, in_features]   W (weight): [out_features, in_features]   y: [batch, tokens, out_features]
// The weight uses PyTorch's nn.Linear layout, as every LLaMA checkpoint stores it.
//
// API (every backend):
//   Linear(index_t in_features, index_t out_features)
//   Parameter<T, 2, Backend>& weight()      zeros until loaded; assign() another parameter's
//                                           share() to tie it (e.g. to the token embedding)
//   void forward(Context<Backend>&, TensorView<const T, 3> x, TensorView<T, 3> out) const
// Training (cpu and cuda, docs/training.md):
//   void enable_grad(), zero_grad()                 weight().grad(), accumulated by backward
//   void forward(ctx, x, out, Activations&) const   as forward, keeping x
//   void backward(ctx, const Activations&, TensorView<const T, 3> d_out, TensorView<T, 3> d_x)
#pragma once

#include "llamablocks/core/backend.hpp"

namespace llamablocks {

/// Bias-free linear projection y = x Wᵀ.
/// \tparam Backend backend tag (cpu, cuda).
/// \tparam T       storage type of weights and activations.
template <class Backend, class T = float>
class Linear {
  static_assert(detail::dependent_false<Backend, T>,
                "Linear: no specialization for this backend; include llamablocks/llamablocks.hpp "
                "for cpu or llamablocks/cuda.cuh for cuda");
};

}  // namespace llamablocks
