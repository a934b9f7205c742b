// GroupedQueryAttention on the cpu backend: projections through detail::project, RoPE,
// KVCache::write, causal_attention, output projection. Scratch lives in grow-only workspaces, so a
// decode step allocates nothing once the first one has run.
#pragma once

#include "llamablocks/backends/cpu/attention.hpp"
#include "llamablocks/backends/cpu/context.hpp"
#include "llamablocks/backends/cpu/eigen.hpp"
#include "llamablocks/backends/cpu/packed_matmul.hpp"
#include "llamablocks/backends/cpu/kv_cache.hpp"
#include "llamablocks/backends/cpu/rotary_embedding.hpp"
#include "llamablocks/core/config.hpp"
#include "llamablocks/core/parameter.hpp"
#include "llamablocks/core/workspace.hpp"
#include "llamablocks/modules/grouped_query_attention.hpp"

#include <memory>
#include <utility>

namespace llamablocks {

template <class T>
class GroupedQueryAttention<cpu, T> {
 public:
  /// \param config uses dim, n_heads, n_kv_heads, head_dim.
  /// \param rope   shared rotary tables (one per model); its head_dim must equal config.head_dim.
  GroupedQueryAttention(const ModelConfig& config,
                        std::shared_ptr<const RotaryEmbedding<cpu, T>> rope)
      : dim_(config.dim),
        n_heads_(config.n_heads),
        n_kv_heads_(config.n_kv_heads),
        head_dim_(config.head_dim),
        rope_((check(config, rope.get()), std::move(rope))),
        wq_("attention.wq", {n_heads_ * head_dim_, dim_}),
        wk_("attention.wk", {n_kv_heads_ * head_dim_, dim_}),
        wv_("attention.wv", {n_kv_heads_ * head_dim_, dim_}),
        wo_("attention.wo", {dim_, n_heads_ * head_dim_}) {}

  /// Builds its own RotaryEmbedding from config (head_dim, max_seq_len, rope_*).
  explicit GroupedQueryAttention(const ModelConfig& config)
      : GroupedQueryAttention(config, std::make_shared<const RotaryEmbedding<cpu, T>>(config)) {}

  index_t dim() const { return dim_; }
  index_t n_heads() const { return n_heads_; }
  index_t n_kv_heads() const { return n_kv_heads_; }
  index_t head_dim() const { return head_dim_; }
  const RotaryEmbedding<cpu, T>& rope() const { return *rope_; }

  Parameter<T, 2, cpu>& wq() { return wq_; }
  Parameter<T, 2, cpu>& wk() { return wk_; }
  Parameter<T, 2, cpu>& wv() { return wv_; }
  Parameter<T, 2, cpu>& wo() { return wo_; }
  const Parameter<T, 2, cpu>& wq() const { return wq_; }
  const Parameter<T, 2, cpu>& wk() const { return wk_; }
  const Parameter<T, 2, cpu>& wv() const { return wv_; }
  const Parameter<T, 2, cpu>& wo() const { return wo_; }

  /// x, out: [batch, tokens, dim]; tokens 1 is a decode step, more a prefill. The keys and values
  /// of these tokens are stored in `cache` at start_pos .. start_pos + tokens − 1.
  void forward(const Context<cpu>& ctx, const TensorView<const T, 3>& x, KVCache<cpu, T>& cache,
               index_t start_pos, const TensorView<T, 3>& out) {
    const char* where = "GroupedQueryAttention::forward";
    const index_t batch = x.shape(0);
    const index_t tokens = x.shape(1);
    detail::expect_shape(where, "x", x, {batch, tokens, dim_});
    detail::expect_shape(where, "out", out, x.shape());
    detail::expect_disjoint(where, "x", x, "out", out);
    detail::require<shape_error>(tokens >= 1, where, ": x must hold at least one token, got ",
                                 tokens);
    detail::require<shape_error>(
        cache.batch() == batch && cache.n_kv_heads() == n_kv_heads_ &&
            cache.head_dim() == head_dim_,
        where, ": cache [batch ", cache.batch(), ", n_kv_heads ", cache.n_kv_heads(),
        ", head_dim ", cache.head_dim(), "] does not match x batch ", batch, ", n_kv_heads ",
        n_kv_heads_, ", head_dim ", head_dim_);
    detail::require<range_error>(start_pos >= 0 && start_pos <= cache.length(), where,
                                 ": start_pos ", start_pos, " must be in [0, cache length ",
                                 cache.length(), "]");
    detail::expect_positions(where, start_pos, tokens, cache.max_seq_len());
    detail::expect_positions(where, start_pos, tokens, rope_->max_seq_len());

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

 private:
  static void check(const ModelConfig& config, const RotaryEmbedding<cpu, T>* rope) {
    const char* module = "GroupedQueryAttention";
    auto positive = [&](const char* name, index_t value) {
      detail::require<config_error>(value > 0, module, ": ", name, " must be > 0, got ", value);
    };
    positive("dim", config.dim);
    positive("n_heads", config.n_heads);
    positive("n_kv_heads", config.n_kv_heads);
    positive("head_dim", config.head_dim);
    detail::require<config_error>(config.n_heads % config.n_kv_heads == 0, module, ": n_heads (",
                                  config.n_heads, ") must be divisible by n_kv_heads (",
                                  config.n_kv_heads, ")");
    detail::require<config_error>(rope != nullptr, module, ": rope must not be null");
    detail::require<config_error>(rope->head_dim() == config.head_dim, module, ": rope head_dim ",
                                  rope->head_dim(), " differs from head_dim ", config.head_dim);
  }

  index_t dim_;
  index_t n_heads_;
  index_t n_kv_heads_;
  index_t head_dim_;
  std::shared_ptr<const RotaryEmbedding<cpu, T>> rope_;
  Parameter<T, 2, cpu> wq_;
  Parameter<T, 2, cpu> wk_;
  Parameter<T, 2, cpu> wv_;
  Parameter<T, 2, cpu> wo_;
  Workspace<T, cpu> q_;
  Workspace<T, cpu> k_;
  Workspace<T, cpu> v_;
  Workspace<T, cpu> context_;
  Workspace<T, cpu> attention_scratch_;
  Workspace<std::uint8_t, cpu> packed_scratch_;
};

}  // namespace llamablocks
