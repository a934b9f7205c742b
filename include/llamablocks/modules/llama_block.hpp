// LlamaBlock: one pre-norm residual decoder layer of LLaMA, generic in the backend:
//   h   = x + attention(attention_norm(x))
//   out = h + feed_forward(ffn_norm(h))
//   x, h, out: [batch, tokens, dim]; the residual stream x is updated in place.
// It composes RMSNorm, GroupedQueryAttention (with RoPE and the KV cache) and SwiGLUFeedForward of
// the same backend, plus that backend's add_inplace; it has no backend specialization of its own.
//
// Training: forward(ctx, x, activations) runs whole sequences from position 0 without a cache and
// keeps each sub-module's Activations; backward runs the chain rule back through both residuals:
//   d_h = d_out + ffn_norm′ᵀ(feed_forward′ᵀ(d_out))      d_x = d_h + attention_norm′ᵀ(attention′ᵀ(d_h))
#pragma once

#include "llamablocks/core/backend.hpp"
#include "llamablocks/core/config.hpp"
#include "llamablocks/core/saved_tensor.hpp"
#include "llamablocks/core/tensor.hpp"
#include "llamablocks/core/workspace.hpp"
#include "llamablocks/modules/grouped_query_attention.hpp"
#include "llamablocks/modules/kv_cache.hpp"
#include "llamablocks/modules/rms_norm.hpp"
#include "llamablocks/modules/rotary_embedding.hpp"
#include "llamablocks/modules/swiglu_feed_forward.hpp"

#include <memory>
#include <utility>

namespace llamablocks {

/// Pre-norm LLaMA decoder layer: attention and SwiGLU sub-layers, each with RMSNorm and a residual.
/// \tparam Backend backend tag; the backend's module specializations must be included.
/// \tparam T       storage type of weights, activations and the cache.
template <class Backend, class T = float>
class LlamaBlock {
 public:
  /// \param config uses dim, n_heads, n_kv_heads, head_dim, ffn_hidden_dim, norm_eps.
  /// \param rope   rotary tables shared by all blocks of a model.
  LlamaBlock(const ModelConfig& config, std::shared_ptr<const RotaryEmbedding<Backend, T>> rope)
      : attention_norm_(config.dim, config.norm_eps),
        attention_(config, std::move(rope)),
        ffn_norm_(config.dim, config.norm_eps),
        feed_forward_(config) {}

  /// Builds its own rotary tables from config.
  explicit LlamaBlock(const ModelConfig& config)
      : LlamaBlock(config, std::make_shared<const RotaryEmbedding<Backend, T>>(config)) {}

  index_t dim() const { return attention_norm_.dim(); }

  RMSNorm<Backend, T>& attention_norm() { return attention_norm_; }
  GroupedQueryAttention<Backend, T>& attention() { return attention_; }
  RMSNorm<Backend, T>& ffn_norm() { return ffn_norm_; }
  SwiGLUFeedForward<Backend, T>& feed_forward() { return feed_forward_; }
  const RMSNorm<Backend, T>& attention_norm() const { return attention_norm_; }
  const GroupedQueryAttention<Backend, T>& attention() const { return attention_; }
  const RMSNorm<Backend, T>& ffn_norm() const { return ffn_norm_; }
  const SwiGLUFeedForward<Backend, T>& feed_forward() const { return feed_forward_; }

  /// Runs the layer on x: [batch, tokens, dim] in place, at positions start_pos .., storing this
  /// layer's keys and values in `cache`. Arguments are checked before x or the cache change.
  void forward(const Context<Backend>& ctx, const TensorView<T, 3>& x, KVCache<Backend, T>& cache,
               index_t start_pos) {
    detail::expect_shape("LlamaBlock::forward", "x", x, {x.shape(0), x.shape(1), dim()});
    const auto normed = normed_.template get<3>(x.shape());
    const auto branch = branch_.template get<3>(x.shape());
    attention_norm_.forward(ctx, x, normed);
    attention_.forward(ctx, normed, cache, start_pos, branch);
    add_inplace(ctx, x, TensorView<const T, 3>(branch));
    ffn_norm_.forward(ctx, x, normed);
    feed_forward_.forward(ctx, normed, branch);
    add_inplace(ctx, x, TensorView<const T, 3>(branch));
  }

  /// What the training forward keeps for backward, owned by the caller (one per block).
  struct Activations {
    typename RMSNorm<Backend, T>::Activations attention_norm;
    typename GroupedQueryAttention<Backend, T>::Activations attention;
    typename RMSNorm<Backend, T>::Activations ffn_norm;
    typename SwiGLUFeedForward<Backend, T>::Activations feed_forward;
  };

  /// Allocates the gradient of every parameter of the layer (training only).
  void enable_grad() {
    attention_norm_.enable_grad();
    attention_.enable_grad();
    ffn_norm_.enable_grad();
    feed_forward_.enable_grad();
  }
  void zero_grad() {
    attention_norm_.zero_grad();
    attention_.zero_grad();
    ffn_norm_.zero_grad();
    feed_forward_.zero_grad();
  }

  /// Training forward: runs the layer on x: [batch, tokens, dim] in place at positions
  /// 0 .. tokens − 1, causal, without a KV cache, keeping what backward needs in `activations`.
  void forward(const Context<Backend>& ctx, const TensorView<T, 3>& x, Activations& activations) {
    detail::expect_shape("LlamaBlock::forward", "x", x, {x.shape(0), x.shape(1), dim()});
    const auto normed = normed_.template get<3>(x.shape());
    const auto branch = branch_.template get<3>(x.shape());
    attention_norm_.forward(ctx, x, normed, activations.attention_norm);
    attention_.forward(ctx, normed, branch, activations.attention);
    add_inplace(ctx, x, TensorView<const T, 3>(branch));
    ffn_norm_.forward(ctx, x, normed, activations.ffn_norm);
    feed_forward_.forward(ctx, normed, branch, activations.feed_forward);
    add_inplace(ctx, x, TensorView<const T, 3>(branch));
  }

  /// grad: [batch, tokens, dim] holds d_out and is overwritten by d_x (in place, as forward
  /// updates x); every parameter gradient is accumulated. Needs enable_grad() and a training
  /// forward into `activations`; both are checked before any gradient changes.
  void backward(const Context<Backend>& ctx, const Activations& activations,
                const TensorView<T, 3>& grad) {
    const char* where = "LlamaBlock::backward";
    detail::expect_shape(where, "grad", grad, {grad.shape(0), grad.shape(1), dim()});
    check_trainable(where, activations, grad.shape());
    const auto d_branch = branch_.template get<3>(grad.shape());
    feed_forward_.backward(ctx, activations.feed_forward, grad, d_branch);
    ffn_norm_.backward(ctx, activations.ffn_norm, d_branch, d_branch);
    add_inplace(ctx, grad, TensorView<const T, 3>(d_branch));
    attention_.backward(ctx, activations.attention, grad, d_branch);
    attention_norm_.backward(ctx, activations.attention_norm, d_branch, d_branch);
    add_inplace(ctx, grad, TensorView<const T, 3>(d_branch));
  }

 private:
  /// The sub-modules check their own arguments, but only when their turn comes: checking here
  /// first keeps a failing backward from leaving the feed-forward's gradients half-updated.
  void check_trainable(const char* where, const Activations& activations,
                       const Shape<3>& grad_shape) const {
    for (const auto* saved : {&activations.attention_norm.x, &activations.attention.x,
                              &activations.ffn_norm.x, &activations.feed_forward.x}) {
      detail::expect_saved(where, *saved);
      detail::require<shape_error>(saved->shape() == grad_shape, where, ": grad has shape ",
                                   detail::format_shape(grad_shape),
                                   ", the training forward saved ",
                                   detail::format_shape(saved->shape()));
    }
    const std::pair<const char*, bool> gradients[] = {
        {"attention_norm", attention_norm_.weight().has_grad()},
        {"attention.wq", attention_.wq().has_grad()},
        {"attention.wk", attention_.wk().has_grad()},
        {"attention.wv", attention_.wv().has_grad()},
        {"attention.wo", attention_.wo().has_grad()},
        {"ffn_norm", ffn_norm_.weight().has_grad()},
        {"feed_forward.w1", feed_forward_.w1().has_grad()},
        {"feed_forward.w2", feed_forward_.w2().has_grad()},
        {"feed_forward.w3", feed_forward_.w3().has_grad()}};
    for (const auto& [name, has_grad] : gradients)
      detail::require<config_error>(has_grad, where, ": ", name,
                                    " has no gradient; call enable_grad() before training");
  }

  RMSNorm<Backend, T> attention_norm_;
  GroupedQueryAttention<Backend, T> attention_;
  RMSNorm<Backend, T> ffn_norm_;
  SwiGLUFeedForward<Backend, T> feed_forward_;
  Workspace<T, Backend> normed_;
  Workspace<T, Backend> branch_;
};

}  // namespace llamablocks
