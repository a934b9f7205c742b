// Grouped-query attention (Ainslie et al., 2023) with a causal mask and RoPE, the attention of
// LLaMA-2-70B and LLaMA-3. n_heads query heads share n_kv_heads key/value heads: query head h reads
// kv head h / (n_heads / n_kv_heads). n_kv_heads == n_heads is multi-head attention, 1 multi-query.
//   q = x Wqᵀ [batch, tokens, n_heads, head_dim]     k, v = x Wkᵀ, x Wvᵀ [batch, tokens, n_kv_heads, head_dim]
//   q, k <- RoPE(q, k) at positions start_pos ..;  k, v are written to the KVCache
//   o_h = softmax(q_h K_gᵀ / sqrt(head_dim) + causal mask) V_g      over cached positions 0 .. pos
//   y = concat_h(o_h) Woᵀ                             [batch, tokens, dim]
//   Wq: [n_heads·head_dim, dim]  Wk, Wv: [n_kv_heads·head_dim, dim]  Wo: [dim, n_heads·head_dim]
// Prefill (tokens > 1) and decode (tokens == 1) are the same call; the softmax subtracts each row's
// maximum before exponentiating.
//
// API (every backend):
//   GroupedQueryAttention(const ModelConfig&, std::shared_ptr<const RotaryEmbedding<Backend, T>>)
//   GroupedQueryAttention(const ModelConfig&)            builds its own RotaryEmbedding
//   Parameter<T, 2, Backend>& wq(), wk(), wv(), wo()
//   void forward(Context<Backend>&, TensorView<const T, 3> x, KVCache<Backend, T>& cache,
//                index_t start_pos, TensorView<T, 3> out)
//     start_pos must be <= cache.length() (rewinding overwrites the cache from there) and
//     start_pos + tokens <= max_seq_len; a call that throws leaves the cache and out untouched.
// Training (cpu and cuda, docs/training.md):
//   void enable_grad(), zero_grad()           gradients of wq, wk, wv, wo, accumulated by backward
//   void forward(ctx, x, out, Activations&)   whole sequences from position 0, causal, no cache
//   void backward(ctx, const Activations&, TensorView<const T, 3> d_out, TensorView<T, 3> d_x)
#pragma once

#include "llamablocks/core/backend.hpp"
#include "llamablocks/core/config.hpp"
#include "llamablocks/core/module_checks.hpp"
#include "llamablocks/core/parameter.hpp"
#include "llamablocks/modules/rotary_embedding.hpp"

#include <memory>
#include <utility>

namespace llamablocks {

namespace detail {

/// What GroupedQueryAttention holds on every backend: its shapes, the shared rotary tables and the
/// four projections, with their accessors. Each backend's specialization derives from it and adds
/// forward (and its scratch).
template <class Backend, class T>
class AttentionWeights {
 public:
  /// \param config uses dim, n_heads, n_kv_heads, head_dim.
  /// \param rope   shared rotary tables (one per model); its head_dim must equal config.head_dim.
  AttentionWeights(const ModelConfig& config,
                   std::shared_ptr<const RotaryEmbedding<Backend, T>> rope)
      : dim_(config.dim),
        n_heads_(config.n_heads),
        n_kv_heads_(config.n_kv_heads),
        head_dim_(config.head_dim),
        rope_((check_attention_config(config, rope.get()), std::move(rope))),
        wq_("attention.wq", {n_heads_ * head_dim_, dim_}),
        wk_("attention.wk", {n_kv_heads_ * head_dim_, dim_}),
        wv_("attention.wv", {n_kv_heads_ * head_dim_, dim_}),
        wo_("attention.wo", {dim_, n_heads_ * head_dim_}) {}

  index_t dim() const { return dim_; }
  index_t n_heads() const { return n_heads_; }
  index_t n_kv_heads() const { return n_kv_heads_; }
  index_t head_dim() const { return head_dim_; }
  const RotaryEmbedding<Backend, T>& rope() const { return *rope_; }

  Parameter<T, 2, Backend>& wq() { return wq_; }
  Parameter<T, 2, Backend>& wk() { return wk_; }
  Parameter<T, 2, Backend>& wv() { return wv_; }
  Parameter<T, 2, Backend>& wo() { return wo_; }
  const Parameter<T, 2, Backend>& wq() const { return wq_; }
  const Parameter<T, 2, Backend>& wk() const { return wk_; }
  const Parameter<T, 2, Backend>& wv() const { return wv_; }
  const Parameter<T, 2, Backend>& wo() const { return wo_; }

 protected:
  index_t dim_;
  index_t n_heads_;
  index_t n_kv_heads_;
  index_t head_dim_;
  std::shared_ptr<const RotaryEmbedding<Backend, T>> rope_;
  Parameter<T, 2, Backend> wq_;
  Parameter<T, 2, Backend> wk_;
  Parameter<T, 2, Backend> wv_;
  Parameter<T, 2, Backend> wo_;
};

}  // namespace detail

/// Multi-head / grouped-query / multi-query causal self-attention with RoPE and a KV cache.
/// \tparam Backend backend tag (cpu, cuda).
/// \tparam T       storage type of weights, activations and the cache.
template <class Backend, class T = float>
class GroupedQueryAttention {
  static_assert(detail::dependent_false<Backend, T>,
                "GroupedQueryAttention: no specialization for this backend; include "
                "llamablocks/llamablocks.hpp for cpu or llamablocks/cuda.cuh for cuda");
};

}  // namespace llamablocks
