// GroupedQueryAttention on the cuda backend, the cpu backend's steps on the GPU:
//   q, k, v = x Wqᵀ, x Wkᵀ, x Wvᵀ        (cuBLAS, float accumulation)
//   q, k <- RoPE at positions start_pos ..; k, v written to KVCache<cuda>
//   o = causal_attention(q, cache)      (attention.cuh: tiles of 32 keys, online softmax, split-KV)
//   y = o Woᵀ
//   x, y: [batch, tokens, dim]   Wq: [n_heads·head_dim, dim]   Wk, Wv: [n_kv_heads·head_dim, dim]
//   Wo: [dim, n_heads·head_dim]
// Every argument is checked and every scratch buffer reserved before the cache is written, so a
// call that throws leaves the cache and out as they were.
#pragma once

#include "llamablocks/backends/cuda/attention.cuh"
#include "llamablocks/backends/cuda/context.cuh"
#include "llamablocks/backends/cuda/kv_cache.cuh"
#include "llamablocks/backends/cuda/linear.cuh"
#include "llamablocks/backends/cuda/rotary_embedding.cuh"
#include "llamablocks/core/config.hpp"
#include "llamablocks/core/module_checks.hpp"
#include "llamablocks/core/parameter.hpp"
#include "llamablocks/core/workspace.hpp"
#include "llamablocks/modules/grouped_query_attention.hpp"

#include <memory>
#include <utility>

namespace llamablocks {

/// Multi-head / grouped-query / multi-query causal self-attention with RoPE and a KV cache, on the
/// GPU. \tparam T float, __half or __nv_bfloat16.
template <class T>
class GroupedQueryAttention<cuda, T> : public detail::AttentionWeights<cuda, T> {
  using Weights = detail::AttentionWeights<cuda, T>;
  using Weights::dim_, Weights::n_heads_, Weights::n_kv_heads_, Weights::head_dim_, Weights::rope_,
      Weights::wq_, Weights::wk_, Weights::wv_, Weights::wo_;

 public:
  /// \param config uses dim, n_heads, n_kv_heads, head_dim (at most 256 here).
  /// \param rope   shared rotary tables (one per model); its head_dim must equal config.head_dim.
  GroupedQueryAttention(const ModelConfig& config,
                        std::shared_ptr<const RotaryEmbedding<cuda, T>> rope)
      : Weights(config, std::move(rope)) {
    detail::require<config_error>(head_dim_ <= detail::attention_max_head_dim,
                                  "GroupedQueryAttention<cuda>: head_dim ", head_dim_,
                                  " exceeds the cuda kernel's limit of ",
                                  detail::attention_max_head_dim);
  }

  /// Builds its own RotaryEmbedding from config (head_dim, max_seq_len, rope_*).
  explicit GroupedQueryAttention(const ModelConfig& config)
      : GroupedQueryAttention(config, std::make_shared<const RotaryEmbedding<cuda, T>>(config)) {}

  /// x, out: [batch, tokens, dim] in device memory; tokens 1 is a decode step, more a prefill.
  /// The keys and values of these tokens are stored in `cache` at start_pos .. start_pos +
  /// tokens − 1. Asynchronous on ctx's stream.
  void forward(const Context<cuda>& ctx, const TensorView<const T, 3>& x, KVCache<cuda, T>& cache,
               index_t start_pos, const TensorView<T, 3>& out) {
    const char* where = "GroupedQueryAttention<cuda>::forward";
    const index_t batch = x.shape(0);
    const index_t tokens = x.shape(1);
    detail::check_attention_input(where, dim_, x, out);
    detail::check_attention_cache(where, cache, batch, tokens, n_kv_heads_, head_dim_, start_pos,
                                  rope_->max_seq_len());

    const index_t rows = batch * tokens;
    const auto x_rows = reshape<2>(x, {rows, dim_});
    const auto q = q_.template get<2>({rows, n_heads_ * head_dim_});
    const auto k = k_.template get<2>({rows, n_kv_heads_ * head_dim_});
    const auto v = v_.template get<2>({rows, n_kv_heads_ * head_dim_});
    const auto context = context_.template get<4>({batch, tokens, n_heads_, head_dim_});
    // Reserved now so that nothing can fail once the cache has been written.
    const index_t attention_floats = causal_attention_workspace(
        ctx, batch, tokens, start_pos, n_heads_, n_kv_heads_, head_dim_);
    if (attention_floats > 0) attention_scratch_.template get<1>({attention_floats});

    detail::matmul_nt<T>(ctx, x_rows, wq_.view(), q);
    detail::matmul_nt<T>(ctx, x_rows, wk_.view(), k);
    detail::matmul_nt<T>(ctx, x_rows, wv_.view(), v);
    const auto q_heads = reshape<4>(q, {batch, tokens, n_heads_, head_dim_});
    const auto k_heads = reshape<4>(k, {batch, tokens, n_kv_heads_, head_dim_});
    rope_->apply(ctx, q_heads, start_pos);
    rope_->apply(ctx, k_heads, start_pos);
    cache.write(ctx, start_pos, k_heads, reshape<4>(v, {batch, tokens, n_kv_heads_, head_dim_}));
    causal_attention<T>(ctx, q_heads, cache, start_pos, context, attention_scratch_);
    detail::matmul_nt<T>(ctx, reshape<2>(context, {rows, n_heads_ * head_dim_}), wo_.view(),
                         reshape<2>(out, {rows, dim_}));
  }

 private:
  Workspace<T, cuda> q_;
  Workspace<T, cuda> k_;
  Workspace<T, cuda> v_;
  Workspace<T, cuda> context_;
  Workspace<float, cuda> attention_scratch_;
};

}  // namespace llamablocks
