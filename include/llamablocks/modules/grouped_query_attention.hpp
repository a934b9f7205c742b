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
// Training (cpu, docs/training.md):
//   void enable_grad(), zero_grad()           gradients of wq, wk, wv, wo, accumulated by backward
//   void forward(ctx, x, out, Activations&)   whole sequences from position 0, causal, no cache
//   void backward(ctx, const Activations&, TensorView<const T, 3> d_out, TensorView<T, 3> d_x)
#pragma once

#include "llamablocks/core/backend.hpp"

namespace llamablocks {

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
