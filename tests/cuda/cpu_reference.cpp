#include "cpu_reference.hpp"
#include "cpu_layer_loading.hpp"

#include "llamablocks/llamablocks.hpp"

#include <algorithm>
#include <memory>

namespace llamablocks::test {

void cpu_rms_norm(const float* x, const float* weight, float* out, std::int64_t batch,
                  std::int64_t tokens, std::int64_t dim, double norm_eps) {
  Context<cpu> ctx;
  RMSNorm<cpu, float> norm(dim, norm_eps);
  norm.weight().copy_from(TensorView<const float, 1>(weight, {dim}));
  norm.forward(ctx, TensorView<const float, 3>(x, {batch, tokens, dim}),
               TensorView<float, 3>(out, {batch, tokens, dim}));
}

void cpu_linear(const float* x, const float* weight, float* out, std::int64_t rows,
                std::int64_t in_features, std::int64_t out_features) {
  Context<cpu> ctx;
  Linear<cpu, float> linear(in_features, out_features);
  linear.weight().copy_from(TensorView<const float, 2>(weight, {out_features, in_features}));
  linear.forward(ctx, TensorView<const float, 3>(x, {1, rows, in_features}),
                 TensorView<float, 3>(out, {1, rows, out_features}));
}

void cpu_rope(float* x, std::int64_t batch, std::int64_t tokens, std::int64_t heads,
              std::int64_t head_dim, std::int64_t start_pos, std::int64_t max_seq_len,
              double rope_theta, bool half_split, double llama3_factor) {
  Context<cpu> ctx;
  const RopeScaling scaling = llama3_factor > 0 ? RopeScaling::llama3(llama3_factor) : RopeScaling{};
  RotaryEmbedding<cpu, float> rope(head_dim, max_seq_len, rope_theta,
                                   half_split ? RopeLayout::half_split : RopeLayout::interleaved,
                                   scaling);
  rope.apply(ctx, TensorView<float, 4>(x, {batch, tokens, heads, head_dim}), start_pos);
}

ModelConfig config_of(const LayerShape& shape) {
  ModelConfig config;
  config.dim = shape.dim;
  config.n_heads = shape.n_heads;
  config.n_kv_heads = shape.n_kv_heads;
  config.head_dim = shape.head_dim;
  config.ffn_hidden_dim = shape.ffn_hidden_dim;
  config.max_seq_len = shape.max_seq_len;
  config.rope_theta = shape.rope_theta;
  config.rope_layout = shape.half_split ? RopeLayout::half_split : RopeLayout::interleaved;
  config.norm_eps = 1e-5;
  return config;
}

void cpu_attention_steps(const LayerShape& shape, const LayerWeights& weights,
                         const std::vector<Step>& steps, const float* x, float* out) {
  Context<cpu> ctx;
  const ModelConfig config = config_of(shape);
  GroupedQueryAttention<cpu, float> attention(config);
  load_attention(attention, shape, weights);
  KVCache<cpu, float> cache(config, shape.batch);
  std::int64_t offset = 0;
  for (const auto& [start_pos, tokens] : steps) {
    const Shape<3> step_shape{shape.batch, tokens, shape.dim};
    attention.forward(ctx, TensorView<const float, 3>(x + offset, step_shape), cache, start_pos,
                      TensorView<float, 3>(out + offset, step_shape));
    offset += shape.batch * tokens * shape.dim;
  }
}

void cpu_llama_block_steps(const LayerShape& shape, const LayerWeights& weights,
                           const std::vector<Step>& steps, const float* x, float* out) {
  Context<cpu> ctx;
  const ModelConfig config = config_of(shape);
  LlamaBlock<cpu, float> block(config);
  load_attention(block.attention(), shape, weights);
  load_feed_forward(block.feed_forward(), shape, weights);
  block.attention_norm().weight().copy_from(TensorView<const float, 1>(weights.attention_norm, {shape.dim}));
  block.ffn_norm().weight().copy_from(TensorView<const float, 1>(weights.ffn_norm, {shape.dim}));
  KVCache<cpu, float> cache(config, shape.batch);
  std::int64_t offset = 0;
  for (const auto& [start_pos, tokens] : steps) {
    const std::int64_t count = shape.batch * tokens * shape.dim;
    std::copy_n(x + offset, count, out + offset);
    block.forward(ctx, TensorView<float, 3>(out + offset, {shape.batch, tokens, shape.dim}), cache,
                  start_pos);
    offset += count;
  }
}

void cpu_swiglu(const LayerShape& shape, const LayerWeights& weights, std::int64_t rows,
                const float* x, float* out) {
  Context<cpu> ctx;
  SwiGLUFeedForward<cpu, float> feed_forward(shape.dim, shape.ffn_hidden_dim);
  load_feed_forward(feed_forward, shape, weights);
  feed_forward.forward(ctx, TensorView<const float, 3>(x, {1, rows, shape.dim}),
                       TensorView<float, 3>(out, {1, rows, shape.dim}));
}

}  // namespace llamablocks::test
