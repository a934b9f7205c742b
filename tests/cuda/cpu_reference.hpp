// The cpu backend's modules in float, compiled by the host compiler (Eigen stays out of nvcc) and
// called from the cuda tests as the cross-backend reference. Every pointer is host memory.
#pragma once

#include "llamablocks/core/config.hpp"

#include <cstdint>
#include <utility>
#include <vector>

namespace llamablocks::test {

/// out = RMSNorm<cpu, float>(x) with gain `weight`; x, out: [batch, tokens, dim], weight: [dim].
void cpu_rms_norm(const float* x, const float* weight, float* out, std::int64_t batch,
                  std::int64_t tokens, std::int64_t dim, double norm_eps);

/// out = Linear<cpu, float>: x [rows, in] · wᵀ, w: [out, in], out: [rows, out].
void cpu_linear(const float* x, const float* weight, float* out, std::int64_t rows,
                std::int64_t in_features, std::int64_t out_features);

/// x: [batch, tokens, heads, head_dim] rotated in place by RotaryEmbedding<cpu, float> at
/// positions start_pos ..; llama3_factor > 0 selects RopeScaling::llama3(factor).
void cpu_rope(float* x, std::int64_t batch, std::int64_t tokens, std::int64_t heads,
              std::int64_t head_dim, std::int64_t start_pos, std::int64_t max_seq_len,
              double rope_theta, bool half_split, double llama3_factor);

/// The shape of an attention layer / LlamaBlock under test.
struct LayerShape {
  std::int64_t batch;
  std::int64_t dim;
  std::int64_t n_heads;
  std::int64_t n_kv_heads;
  std::int64_t head_dim;
  std::int64_t ffn_hidden_dim;
  std::int64_t max_seq_len;
  double rope_theta;
  bool half_split;
};

/// The ModelConfig of `shape` (norm_eps 1e-5, no RoPE scaling).
ModelConfig config_of(const LayerShape& shape);

/// Host weights of one layer (nn.Linear layouts); the norms are used by the LlamaBlock only.
struct LayerWeights {
  const float* wq;
  const float* wk;
  const float* wv;
  const float* wo;
  const float* w1;
  const float* w2;
  const float* w3;
  const float* attention_norm;
  const float* ffn_norm;
};

/// One forward call: `tokens` tokens at start_pos (≤ the cache length, a rewind when smaller).
using Step = std::pair<std::int64_t, std::int64_t>;  // (start_pos, tokens)

/// GroupedQueryAttention<cpu, float> over one KVCache through `steps` in order. x and out hold the
/// steps' [batch, tokens, dim] blocks one after another.
void cpu_attention_steps(const LayerShape& shape, const LayerWeights& weights,
                         const std::vector<Step>& steps, const float* x, float* out);

/// LlamaBlock<cpu, float> likewise; x holds the steps' inputs, out gets the updated residuals.
void cpu_llama_block_steps(const LayerShape& shape, const LayerWeights& weights,
                           const std::vector<Step>& steps, const float* x, float* out);

/// out = SwiGLUFeedForward<cpu, float>(x), x, out: [rows, dim].
void cpu_swiglu(const LayerShape& shape, const LayerWeights& weights, std::int64_t rows,
                const float* x, float* out);

}  // namespace llamablocks::test
