// GroupedQueryAttention on the cuda backend, the cpu backend's steps on the GPU:
//   q, k, v = x Wqᵀ, x Wkᵀ, x Wvᵀ        (cuBLAS, float accumulation)
//   q, k <- RoPE at positions start_pos ..; k, v written to KVCache<cuda>
//   o = causal_attention(q, cache)      (attention.cuh: tiles of 32 keys, online softmax, split-KV)
//   y = o Woᵀ
//   x, y: [batch, tokens, dim]   Wq: [n_heads·head_dim, dim]   Wk, Wv: [n_kv_heads·head_dim, dim]
//   Wo: [dim, n_heads·head_dim]
// Every argument is checked and every scratch buffer reserved before the cache is written, so a
// call that throws leaves the cache and out as they were.
//
// Training: the forward with Activations runs whole sequences from position 0 without the caller's
// cache and keeps x, q and k after RoPE, v and the context before Wo. Its attention is the same
// causal_attention kernel, over a private KVCache<cuda> of `tokens` positions that k and v are
// written to (the kernel reads keys in the cache layout). Backward (cuBLAS, float accumulation,
// weight gradients with beta = 1):
//   d_Wo += d_outᵀ context    d_context = d_out Wo    d_q, d_k, d_v = causal_self_attention_backward
//   d_q, d_k rotated back by RoPE    d_Wq += d_qᵀ x (k, v alike)    d_x = d_q Wq + d_k Wk + d_v Wv
#pragma once

#include "llamablocks/backends/cuda/attention.cuh"
#include "llamablocks/backends/cuda/attention_backward.cuh"
#include "llamablocks/backends/cuda/context.cuh"
#include "llamablocks/backends/cuda/kv_cache.cuh"
#include "llamablocks/backends/cuda/linear.cuh"
#include "llamablocks/backends/cuda/rotary_embedding.cuh"
#include "llamablocks/core/config.hpp"
#include "llamablocks/core/module_checks.hpp"
#include "llamablocks/core/parameter.hpp"
#include "llamablocks/core/saved_tensor.hpp"
#include "llamablocks/core/workspace.hpp"
#include "llamablocks/modules/grouped_query_attention.hpp"

#include <memory>
#include <optional>
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

  /// What the training forward keeps for backward, owned by the caller (one per call site).
  struct Activations {
    detail::SavedTensor<T, 3, cuda> x;        // [batch, tokens, dim]
    detail::SavedTensor<T, 4, cuda> q;        // after RoPE   [batch, tokens, n_heads, head_dim]
    detail::SavedTensor<T, 4, cuda> k;        // after RoPE   [batch, tokens, n_kv_heads, head_dim]
    detail::SavedTensor<T, 4, cuda> v;        //              [batch, tokens, n_kv_heads, head_dim]
    detail::SavedTensor<T, 4, cuda> context;  // before Wo    [batch, tokens, n_heads, head_dim]
  };

  /// Allocates the gradients of wq, wk, wv, wo in device memory (training only).
  void enable_grad() {
    for (auto* weight : {&wq_, &wk_, &wv_, &wo_}) weight->enable_grad();
  }
  void zero_grad() {
    for (auto* weight : {&wq_, &wk_, &wv_, &wo_}) weight->zero_grad();
  }

  /// Training forward over whole sequences x: [batch, tokens, dim] at positions 0 .. tokens − 1,
  /// causal, without the caller's KV cache; out: [batch, tokens, dim], disjoint from x, device
  /// memory. The output equals forward() with an empty cache and start_pos 0 (the same kernels);
  /// what backward needs is kept in `activations`. Asynchronous on ctx's stream.
  void forward(const Context<cuda>& ctx, const TensorView<const T, 3>& x,
               const TensorView<T, 3>& out, Activations& activations) {
    const char* where = "GroupedQueryAttention<cuda>::forward";
    const index_t batch = x.shape(0);
    const index_t tokens = x.shape(1);
    detail::check_attention_input(where, dim_, x, out);
    detail::expect_positions(where, 0, tokens, rope_->max_seq_len());
    const index_t rows = batch * tokens;
    detail::checked_int(where, "rows", rows);
    detail::checked_int(where, "batch · n_kv_heads", batch * n_kv_heads_);
    detail::checked_int(where, "tokens · group", tokens * (n_heads_ / n_kv_heads_));

    // The private cache and the attention scratch first: nothing is written if they cannot be had.
    if (!self_cache_ || self_cache_->batch() != batch || self_cache_->max_seq_len() < tokens)
      self_cache_.emplace(batch, n_kv_heads_, head_dim_, tokens);
    const index_t attention_floats =
        causal_attention_workspace(ctx, batch, tokens, 0, n_heads_, n_kv_heads_, head_dim_);
    if (attention_floats > 0) attention_scratch_.template get<1>({attention_floats});

    const auto x_rows = reshape<2>(x, {rows, dim_});
    const auto saved_x = activations.x.prepare(x.shape());
    detail::copy_on_stream(ctx, saved_x.data(), x.data(), x.size());
    const auto q = activations.q.prepare({batch, tokens, n_heads_, head_dim_});
    const auto k = activations.k.prepare({batch, tokens, n_kv_heads_, head_dim_});
    const auto v = activations.v.prepare({batch, tokens, n_kv_heads_, head_dim_});
    const auto context = activations.context.prepare({batch, tokens, n_heads_, head_dim_});
    detail::matmul_nt<T>(ctx, x_rows, wq_.view(), reshape<2>(q, {rows, n_heads_ * head_dim_}));
    detail::matmul_nt<T>(ctx, x_rows, wk_.view(), reshape<2>(k, {rows, n_kv_heads_ * head_dim_}));
    detail::matmul_nt<T>(ctx, x_rows, wv_.view(), reshape<2>(v, {rows, n_kv_heads_ * head_dim_}));
    rope_->apply(ctx, q, 0);
    rope_->apply(ctx, k, 0);
    self_cache_->write(ctx, 0, TensorView<const T, 4>(k), TensorView<const T, 4>(v));
    causal_attention<T>(ctx, TensorView<const T, 4>(q), *self_cache_, 0, context,
                        attention_scratch_);
    detail::matmul_nt<T>(ctx,
                         reshape<2>(TensorView<const T, 4>(context), {rows, n_heads_ * head_dim_}),
                         wo_.view(), reshape<2>(out, {rows, dim_}));
  }

  /// d_out, d_x: [batch, tokens, dim] in device memory, disjoint; d_x is written and the
  /// gradients of wq, wk, wv, wo accumulated. Needs enable_grad() and a training forward into
  /// `activations`; throws before writing anything otherwise. Asynchronous on ctx's stream.
  void backward(const Context<cuda>& ctx, const Activations& activations,
                const TensorView<const T, 3>& d_out, const TensorView<T, 3>& d_x) {
    const char* where = "GroupedQueryAttention<cuda>::backward";
    const Shape<3> x_shape = detail::check_attention_backward(where, activations, dim_, n_heads_,
                                                              n_kv_heads_, head_dim_, d_out, d_x);
    const index_t batch = x_shape[0];
    const index_t tokens = x_shape[1];
    const index_t rows = batch * tokens;
    detail::checked_int(where, "batch · tokens · n_heads", rows * n_heads_);
    const TensorView<const T, 2> wq = wq_.view();
    const TensorView<const T, 2> wk = wk_.view();
    const TensorView<const T, 2> wv = wv_.view();
    const TensorView<const T, 2> wo = wo_.view();
    const TensorView<T, 2> d_wq = wq_.grad();
    const TensorView<T, 2> d_wk = wk_.grad();
    const TensorView<T, 2> d_wv = wv_.grad();
    const TensorView<T, 2> d_wo = wo_.grad();

    // All scratch first: an allocation that fails leaves the gradients as they were.
    const index_t q_width = n_heads_ * head_dim_;
    const index_t kv_width = n_kv_heads_ * head_dim_;
    const auto d_context = d_context_.template get<4>({batch, tokens, n_heads_, head_dim_});
    const auto d_q = d_q_.template get<4>({batch, tokens, n_heads_, head_dim_});
    const auto d_k = d_k_.template get<4>({batch, tokens, n_kv_heads_, head_dim_});
    const auto d_v = d_v_.template get<4>({batch, tokens, n_kv_heads_, head_dim_});
    backward_scratch_.template get<1>(
        {causal_self_attention_backward_workspace(batch, tokens, n_heads_)});
    const auto x_rows = reshape<2>(activations.x.view(), {rows, dim_});
    const auto d_out_rows = reshape<2>(d_out, {rows, dim_});
    const auto d_x_rows = reshape<2>(d_x, {rows, dim_});
    const auto d_q_rows = reshape<2>(TensorView<const T, 4>(d_q), {rows, q_width});
    const auto d_k_rows = reshape<2>(TensorView<const T, 4>(d_k), {rows, kv_width});
    const auto d_v_rows = reshape<2>(TensorView<const T, 4>(d_v), {rows, kv_width});

    detail::matmul_tn<T>(ctx, d_out_rows, reshape<2>(activations.context.view(), {rows, q_width}),
                         d_wo, 1.0f);
    detail::matmul_nn<T>(ctx, d_out_rows, wo, reshape<2>(d_context, {rows, q_width}));
    causal_self_attention_backward<T>(ctx, activations.q.view(), activations.k.view(),
                                      activations.v.view(), activations.context.view(),
                                      TensorView<const T, 4>(d_context), d_q, d_k, d_v,
                                      backward_scratch_);
    rope_->backward(ctx, d_q, 0);
    rope_->backward(ctx, d_k, 0);
    detail::matmul_tn<T>(ctx, d_q_rows, x_rows, d_wq, 1.0f);
    detail::matmul_tn<T>(ctx, d_k_rows, x_rows, d_wk, 1.0f);
    detail::matmul_tn<T>(ctx, d_v_rows, x_rows, d_wv, 1.0f);
    detail::matmul_nn<T>(ctx, d_q_rows, wq, d_x_rows);
    detail::matmul_nn<T>(ctx, d_k_rows, wk, d_x_rows, 1.0f);
    detail::matmul_nn<T>(ctx, d_v_rows, wv, d_x_rows, 1.0f);
  }

 private:
  Workspace<T, cuda> q_;
  Workspace<T, cuda> k_;
  Workspace<T, cuda> v_;
  Workspace<T, cuda> context_;
  Workspace<float, cuda> attention_scratch_;
  // Training only, so inference never allocates them: the cache the training forward's attention
  // reads k and v from, and the backward's scratch.
  std::optional<KVCache<cuda, T>> self_cache_;
  Workspace<T, cuda> d_context_;
  Workspace<T, cuda> d_q_;
  Workspace<T, cuda> d_k_;
  Workspace<T, cuda> d_v_;
  Workspace<float, cuda> backward_scratch_;
};

}  // namespace llamablocks
