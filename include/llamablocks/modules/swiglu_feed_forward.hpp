// SwiGLU feed-forward (Shazeer, 2020), the MLP of every LLaMA block:
//   y = W2 · (silu(W1 · x) ⊙ (W3 · x)),     silu(z) = z · σ(z)
//   x, y: [batch, tokens, dim]   W1 (gate), W3 (up): [ffn_hidden_dim, dim]   W2 (down): [dim, ffn_hidden_dim]
// The inner width follows Meta's rule, llama_ffn_hidden_dim() in core/config.hpp.
//
// API (every backend):
//   SwiGLUFeedForward(index_t dim, index_t ffn_hidden_dim)   or   (const ModelConfig&)
//   Parameter<T, 2, Backend>& w1(), w2(), w3()
//   void forward(Context<Backend>&, TensorView<const T, 3> x, TensorView<T, 3> out)
//     (not const: the module keeps grow-only scratch so repeated calls allocate nothing)
// Training (cpu, docs/training.md):
//   void enable_grad(), zero_grad()           gradients of w1, w2, w3, accumulated by backward
//   void forward(ctx, x, out, Activations&)   as forward, keeping x, gate and up
//   void backward(ctx, const Activations&, TensorView<const T, 3> d_out, TensorView<T, 3> d_x)
#pragma once

#include "llamablocks/core/backend.hpp"

namespace llamablocks {

/// Gated feed-forward network with SiLU gate (SwiGLU).
/// \tparam Backend backend tag (cpu, cuda).
/// \tparam T       storage type of weights and activations.
template <class Backend, class T = float>
class SwiGLUFeedForward {
  static_assert(detail::dependent_false<Backend, T>,
                "SwiGLUFeedForward: no specialization for this backend; include llamablocks/llamablocks.hpp "
                "for cpu or llamablocks/cuda.cuh for cuda");
};

}  // namespace llamablocks
