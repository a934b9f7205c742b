// The model shapes the benchmarks sweep over and the sequence lengths they run at.
//   LLaMA-2-7B      one layer: dim 4096, 32 heads, 32 kv heads (MHA), head_dim 128, ffn 11008
//   TinyLlama-1.1B  dim 2048, 32 heads, 4 kv heads (GQA 8:1), head_dim 64, ffn 5632
//   stories-110M    llama2.c's TinyStories model: dim 768, 12 heads (MHA), head_dim 64, ffn 2048
// All three use LLaMA-2's 32000-token vocabulary, norm_eps 1e-5 and rope_theta 10000.
#pragma once

#include "llamablocks/core/config.hpp"
#include "llamablocks/core/tensor.hpp"

#include <array>

namespace llamablocks::bench {

/// Hyper-parameters of a LLaMA-family model that fix the cost of its blocks.
struct ModelShape {
  const char* name;  ///< as it appears in benchmark names, e.g. "tinyllama"
  index_t dim;
  index_t n_layers;
  index_t n_heads;
  index_t n_kv_heads;
  index_t head_dim;
  index_t ffn_hidden_dim;
  index_t vocab_size;
  double norm_eps = 1e-5;
  double rope_theta = 10000.0;

  /// The model's config with RoPE tables and KV cache sized for max_seq_len positions (a benchmark
  /// sizes them to what it uses, not to the model's full context).
  ModelConfig config(index_t max_seq_len) const {
    ModelConfig config;
    config.dim = dim;
    config.n_layers = n_layers;
    config.n_heads = n_heads;
    config.n_kv_heads = n_kv_heads;
    config.head_dim = head_dim;
    config.vocab_size = vocab_size;
    config.ffn_hidden_dim = ffn_hidden_dim;
    config.norm_eps = norm_eps;
    config.rope_theta = rope_theta;
    config.max_seq_len = max_seq_len;
    config.validate();
    return config;
  }
};

/// Smallest first, so that a run that is cut short has covered the quick shapes.
inline const std::array<ModelShape, 3> model_shapes = {{
    // name          dim  layers heads kv_heads head_dim  ffn   vocab
    {"stories110m", 768, 12, 12, 12, 64, 2048, 32000},
    {"tinyllama", 2048, 22, 32, 4, 64, 5632, 32000},
    {"llama2-7b", 4096, 32, 32, 32, 128, 11008, 32000},
}};

/// Tokens per forward call: one decode step, a short and a long prefill.
inline constexpr std::array<index_t, 3> token_counts = {1, 128, 512};

/// Prefill lengths of attention-bearing benchmarks (which start from an empty cache).
inline constexpr std::array<index_t, 2> prefill_token_counts = {128, 512};

/// Positions already in the KV cache when one token is decoded.
inline constexpr std::array<index_t, 2> decode_cache_lengths = {512, 2048};

}  // namespace llamablocks::bench
