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
// Training (cpu and cuda, docs/training.md):
//   void enable_grad(), zero_grad()           gradients of w1, w2, w3, accumulated by backward
//   void forward(ctx, x, out, Activations&)   as forward, keeping x, gate and up
//   void backward(ctx, const Activations&, TensorView<const T, 3> d_out, TensorView<T, 3> d_x)
#pragma once

#include "llamablocks/core/backend.hpp"
#include "llamablocks/core/config.hpp"
#include "llamablocks/core/module_checks.hpp"
#include "llamablocks/core/parameter.hpp"

namespace llamablocks {

namespace detail {

/// What SwiGLUFeedForward holds on every backend: w1 (gate), w2 (down), w3 (up) and their
/// accessors. Each backend's specialization derives from it and adds forward.
template <class Backend, class T>
class FeedForwardWeights {
 public:
  /// \param dim            width of the residual stream.
  /// \param ffn_hidden_dim inner width (llama_ffn_hidden_dim gives Meta's rule).
  FeedForwardWeights(index_t dim, index_t ffn_hidden_dim)
      : w1_("feed_forward.w1",
            {check_positive("SwiGLUFeedForward", "ffn_hidden_dim", ffn_hidden_dim),
             check_positive("SwiGLUFeedForward", "dim", dim)}),
        w2_("feed_forward.w2", {dim, ffn_hidden_dim}),
        w3_("feed_forward.w3", {ffn_hidden_dim, dim}) {}

  index_t dim() const { return w1_.shape()[1]; }
  index_t ffn_hidden_dim() const { return w1_.shape()[0]; }
  Parameter<T, 2, Backend>& w1() { return w1_; }
  Parameter<T, 2, Backend>& w2() { return w2_; }
  Parameter<T, 2, Backend>& w3() { return w3_; }
  const Parameter<T, 2, Backend>& w1() const { return w1_; }
  const Parameter<T, 2, Backend>& w2() const { return w2_; }
  const Parameter<T, 2, Backend>& w3() const { return w3_; }

 protected:
  Parameter<T, 2, Backend> w1_;
  Parameter<T, 2, Backend> w2_;
  Parameter<T, 2, Backend> w3_;
};

}  // namespace detail

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
