// LlamaBlock: one pre-norm residual decoder layer of LLaMA, generic in the backend:
//   h   = x + attention(attention_norm(x))
//   out = h + feed_forward(ffn_norm(h))
//   x, h, out: [batch, tokens, dim]; the residual stream x is updated in place.
// It composes RMSNorm, GroupedQueryAttention (with RoPE and the KV cache) and SwiGLUFeedForward of
// the same backend, plus that backend's add_inplace; it has no backend specialization of its own.
#pragma once

#include "llamablocks/core/backend.hpp"
#include "llamablocks/core/config.hpp"
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

 private:
  RMSNorm<Backend, T> attention_norm_;
  GroupedQueryAttention<Backend, T> attention_;
  RMSNorm<Backend, T> ffn_norm_;
  SwiGLUFeedForward<Backend, T> feed_forward_;
  Workspace<T, Backend> normed_;
  Workspace<T, Backend> branch_;
};

}  // namespace llamablocks
