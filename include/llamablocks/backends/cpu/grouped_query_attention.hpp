// GroupedQueryAttention on the cpu backend: projections through detail::project, RoPE,
// KVCache::write, causal_attention, output projection. Scratch lives in grow-only workspaces, so a
// decode step allocates nothing once the first one has run.
// Training: the forward with Activations runs whole sequences from position 0 without a cache
// (causal_self_attention) and keeps x, q and k after RoPE, v and the context before Wo; backward:
//   d_Wo += d_outᵀ context    d_context = d_out Wo    d_q, d_k, d_v = causal_self_attention_backward
//   d_q, d_k rotated back by RoPE    d_Wq += d_qᵀ x (k, v alike)    d_x = d_q Wq + d_k Wk + d_v Wv
#pragma once

#include "llamablocks/backends/cpu/attention.hpp"
#include "llamablocks/backends/cpu/context.hpp"
#include "llamablocks/backends/cpu/eigen.hpp"
#include "llamablocks/backends/cpu/packed_matmul.hpp"
#include "llamablocks/backends/cpu/kv_cache.hpp"
#include "llamablocks/backends/cpu/rotary_embedding.hpp"
#include "llamablocks/core/config.hpp"
#include "llamablocks/core/parameter.hpp"
#include "llamablocks/core/saved_tensor.hpp"
#include "llamablocks/core/workspace.hpp"
#include "llamablocks/modules/grouped_query_attention.hpp"
#include "llamablocks/core/module_checks.hpp"

#include <algorithm>
#include <memory>
#include <utility>

namespace llamablocks {

template <class T>
class GroupedQueryAttention<cpu, T> : public detail::AttentionWeights<cpu, T> {
  using Weights = detail::AttentionWeights<cpu, T>;
  using Weights::dim_, Weights::n_heads_, Weights::n_kv_heads_, Weights::head_dim_, Weights::rope_,
      Weights::wq_, Weights::wk_, Weights::wv_, Weights::wo_;

 public:
  /// \param config uses dim, n_heads, n_kv_heads, head_dim.
  /// \param rope   shared rotary tables (one per model); its head_dim must equal config.head_dim.
  GroupedQueryAttention(const ModelConfig& config,
                        std::shared_ptr<const RotaryEmbedding<cpu, T>> rope)
      : Weights(config, std::move(rope)) {}

  /// Builds its own RotaryEmbedding from config (head_dim, max_seq_len, rope_*).
  explicit GroupedQueryAttention(const ModelConfig& config)
      : GroupedQueryAttention(config, std::make_shared<const RotaryEmbedding<cpu, T>>(config)) {}

  /// x, out: [batch, tokens, dim]; tokens 1 is a decode step, more a prefill. The keys and values
  /// of these tokens are stored in `cache` at start_pos .. start_pos + tokens − 1.
  void forward(const Context<cpu>& ctx, const TensorView<const T, 3>& x, KVCache<cpu, T>& cache,
               index_t start_pos, const TensorView<T, 3>& out) {
    const char* where = "GroupedQueryAttention::forward";
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
    attention_scratch_.template get<2>(causal_attention_scratch_shape(
        ctx, tokens, start_pos, n_heads_, n_kv_heads_, head_dim_));

    detail::project<T>(ctx, x_rows, wq_, q, packed_scratch_);
    detail::project<T>(ctx, x_rows, wk_, k, packed_scratch_);
    detail::project<T>(ctx, x_rows, wv_, v, packed_scratch_);
    const auto q_heads = reshape<4>(q, {batch, tokens, n_heads_, head_dim_});
    const auto k_heads = reshape<4>(k, {batch, tokens, n_kv_heads_, head_dim_});
    rope_->apply(ctx, q_heads, start_pos);
    rope_->apply(ctx, k_heads, start_pos);
    cache.write(start_pos, k_heads, reshape<4>(v, {batch, tokens, n_kv_heads_, head_dim_}));
    causal_attention<T>(ctx, q_heads, cache, start_pos, context, attention_scratch_);
    detail::project<T>(ctx, reshape<2>(context, {rows, n_heads_ * head_dim_}), wo_,
                       reshape<2>(out, {rows, dim_}), packed_scratch_);
  }

  /// What the training forward keeps for backward, owned by the caller (one per call site).
  struct Activations {
    detail::SavedTensor<T, 3, cpu> x;        // [batch, tokens, dim]
    detail::SavedTensor<T, 4, cpu> q;        // after RoPE   [batch, tokens, n_heads, head_dim]
    detail::SavedTensor<T, 4, cpu> k;        // after RoPE   [batch, tokens, n_kv_heads, head_dim]
    detail::SavedTensor<T, 4, cpu> v;        //              [batch, tokens, n_kv_heads, head_dim]
    detail::SavedTensor<T, 4, cpu> context;  // before Wo    [batch, tokens, n_heads, head_dim]
  };

  /// Allocates the gradients of wq, wk, wv, wo (training only).
  void enable_grad() {
    for (auto* weight : {&wq_, &wk_, &wv_, &wo_}) weight->enable_grad();
  }
  void zero_grad() {
    for (auto* weight : {&wq_, &wk_, &wv_, &wo_}) weight->zero_grad();
  }

  /// Training forward over whole sequences x: [batch, tokens, dim] at positions 0 .. tokens − 1,
  /// causal, without a KV cache; out: [batch, tokens, dim], disjoint from x. The output equals
  /// forward() with an empty cache and start_pos 0, to rounding; what backward needs is kept in
  /// `activations`.
  void forward(const Context<cpu>& ctx, const TensorView<const T, 3>& x,
               const TensorView<T, 3>& out, Activations& activations) {
    const char* where = "GroupedQueryAttention::forward";
    const index_t batch = x.shape(0);
    const index_t tokens = x.shape(1);
    detail::check_attention_input(where, dim_, x, out);
    detail::expect_positions(where, 0, tokens, rope_->max_seq_len());

    const index_t rows = batch * tokens;
    const auto x_rows = reshape<2>(x, {rows, dim_});
    const auto saved_x = activations.x.prepare(x.shape());
    std::copy_n(x.data(), x.size(), saved_x.data());
    const auto q = activations.q.prepare({batch, tokens, n_heads_, head_dim_});
    const auto k = activations.k.prepare({batch, tokens, n_kv_heads_, head_dim_});
    const auto v = activations.v.prepare({batch, tokens, n_kv_heads_, head_dim_});
    const auto context = activations.context.prepare({batch, tokens, n_heads_, head_dim_});
    detail::project<T>(ctx, x_rows, wq_, reshape<2>(q, {rows, n_heads_ * head_dim_}), packed_scratch_);
    detail::project<T>(ctx, x_rows, wk_, reshape<2>(k, {rows, n_kv_heads_ * head_dim_}), packed_scratch_);
    detail::project<T>(ctx, x_rows, wv_, reshape<2>(v, {rows, n_kv_heads_ * head_dim_}), packed_scratch_);
    rope_->apply(ctx, q, 0);
    rope_->apply(ctx, k, 0);
    causal_self_attention<T>(ctx, q, k, v, context, attention_scratch_);
    detail::project<T>(ctx, reshape<2>(TensorView<const T, 4>(context), {rows, n_heads_ * head_dim_}),
                       wo_, reshape<2>(out, {rows, dim_}), packed_scratch_);
  }

  /// d_out, d_x: [batch, tokens, dim], disjoint; d_x is written and the gradients of wq, wk, wv,
  /// wo accumulated. Needs enable_grad() and a training forward into `activations`; throws before
  /// writing anything otherwise.
  void backward(const Context<cpu>& ctx, const Activations& activations,
                const TensorView<const T, 3>& d_out, const TensorView<T, 3>& d_x) {
    const char* where = "GroupedQueryAttention::backward";
    const Shape<3> x_shape = detail::check_attention_backward(where, activations, dim_, n_heads_,
                                                              n_kv_heads_, head_dim_, d_out, d_x);
    const index_t batch = x_shape[0];
    const index_t tokens = x_shape[1];
    const TensorView<const T, 2> wq = wq_.view();
    const TensorView<const T, 2> wk = wk_.view();
    const TensorView<const T, 2> wv = wv_.view();
    const TensorView<const T, 2> wo = wo_.view();
    const TensorView<T, 2> d_wq = wq_.grad();
    const TensorView<T, 2> d_wk = wk_.grad();
    const TensorView<T, 2> d_wv = wv_.grad();
    const TensorView<T, 2> d_wo = wo_.grad();

    const index_t rows = batch * tokens;
    const index_t q_width = n_heads_ * head_dim_;
    const index_t kv_width = n_kv_heads_ * head_dim_;
    const auto x_rows = reshape<2>(activations.x.view(), {rows, dim_});
    const auto d_out_rows = reshape<2>(d_out, {rows, dim_});
    const auto d_x_rows = reshape<2>(d_x, {rows, dim_});
    const auto d_context = d_context_.template get<4>({batch, tokens, n_heads_, head_dim_});
    const auto d_q = d_q_.template get<4>({batch, tokens, n_heads_, head_dim_});
    const auto d_k = d_k_.template get<4>({batch, tokens, n_kv_heads_, head_dim_});
    const auto d_v = d_v_.template get<4>({batch, tokens, n_kv_heads_, head_dim_});
    const auto d_q_rows = reshape<2>(TensorView<const T, 4>(d_q), {rows, q_width});
    const auto d_k_rows = reshape<2>(TensorView<const T, 4>(d_k), {rows, kv_width});
    const auto d_v_rows = reshape<2>(TensorView<const T, 4>(d_v), {rows, kv_width});

    detail::linear_weight_grad_kernel<T>(
        ctx, reshape<2>(activations.context.view(), {rows, q_width}), d_out_rows, d_wo);
    detail::linear_input_grad_kernel<T>(ctx, d_out_rows, wo, reshape<2>(d_context, {rows, q_width}),
                                        false);
    causal_self_attention_backward<T>(ctx, activations.q.view(), activations.k.view(),
                                      activations.v.view(), activations.context.view(), d_context,
                                      d_q, d_k, d_v, attention_scratch_);
    rope_->backward(ctx, d_q, 0);
    rope_->backward(ctx, d_k, 0);
    detail::linear_weight_grad_kernel<T>(ctx, x_rows, d_q_rows, d_wq);
    detail::linear_weight_grad_kernel<T>(ctx, x_rows, d_k_rows, d_wk);
    detail::linear_weight_grad_kernel<T>(ctx, x_rows, d_v_rows, d_wv);
    detail::linear_input_grad_kernel<T>(ctx, d_q_rows, wq, d_x_rows, false);
    detail::linear_input_grad_kernel<T>(ctx, d_k_rows, wk, d_x_rows, true);
    detail::linear_input_grad_kernel<T>(ctx, d_v_rows, wv, d_x_rows, true);
  }

 private:
  Workspace<T, cpu> q_;
  Workspace<T, cpu> k_;
  Workspace<T, cpu> v_;
  Workspace<T, cpu> context_;
  Workspace<T, cpu> attention_scratch_;
  Workspace<std::uint8_t, cpu> packed_scratch_;
  // Backward only, so inference never allocates them.
  Workspace<T, cpu> d_context_;
  Workspace<T, cpu> d_q_;
  Workspace<T, cpu> d_k_;
  Workspace<T, cpu> d_v_;
};

}  // namespace llamablocks
