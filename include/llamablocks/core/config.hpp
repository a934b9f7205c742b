// ModelConfig: the hyper-parameters of a LLaMA-family model, and their validation.
//
// Shapes that follow from a config (row-major, PyTorch Linear layout [out_features, in_features]):
//   activations           [batch, tokens, dim]
//   wq                    [n_heads * head_dim, dim]      wk, wv  [n_kv_heads * head_dim, dim]
//   wo                    [dim, n_heads * head_dim]
//   w1 (gate), w3 (up)    [ffn_hidden_dim, dim]          w2 (down) [dim, ffn_hidden_dim]
//   embedding, output     [vocab_size, dim]
#pragma once

#include "llamablocks/core/error.hpp"

#include <cmath>
#include <cstdint>
#include <optional>

namespace llamablocks {

/// How the two elements of each rotated pair are laid out inside a head vector.
enum class RopeLayout {
  /// Pairs (2j, 2j+1): Meta's reference code, llama2.c and GGUF checkpoints.
  interleaved,
  /// Pairs (j, j + head_dim/2), the "rotate_half" form of Hugging Face checkpoints (whose wq/wk rows
  /// are permuted accordingly).
  half_split,
};

inline const char* to_string(RopeLayout layout) {
  return layout == RopeLayout::interleaved ? "interleaved" : "half_split";
}

/// Rescaling of the RoPE frequencies for context extension.
struct RopeScaling {
  enum class Type {
    none,
    /// Positions divided by `factor` (position interpolation).
    linear,
    /// LLaMA-3.1: long wavelengths divided by `factor`, short ones kept, a smooth ramp between
    /// original_max_position_embeddings / low_freq_factor and / high_freq_factor.
    llama3,
  };
  Type type = Type::none;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  std::int64_t original_max_position_embeddings = 8192;

  /// LLaMA-3.1 (factor 8) and 3.2 (factor 32) use low 1, high 4, original context 8192.
  static RopeScaling llama3(double factor, double low_freq_factor = 1.0,
                            double high_freq_factor = 4.0,
                            std::int64_t original_max_position_embeddings = 8192) {
    return {Type::llama3, factor, low_freq_factor, high_freq_factor,
            original_max_position_embeddings};
  }
  static RopeScaling linear(double factor) { return {Type::linear, factor, 1.0, 4.0, 8192}; }

  void validate() const {
    if (type == Type::none) return;
    detail::require<config_error>(std::isfinite(factor) && factor > 0,
                                  "RopeScaling: factor must be > 0 and finite, got ", factor);
    if (type != Type::llama3) return;
    detail::require<config_error>(std::isfinite(low_freq_factor) && low_freq_factor > 0,
                                  "RopeScaling: low_freq_factor must be > 0, got ", low_freq_factor);
    detail::require<config_error>(
        std::isfinite(high_freq_factor) && high_freq_factor > low_freq_factor,
        "RopeScaling: high_freq_factor must be > low_freq_factor (", low_freq_factor, "), got ",
        high_freq_factor);
    detail::require<config_error>(original_max_position_embeddings > 0,
                                  "RopeScaling: original_max_position_embeddings must be > 0, got ",
                                  original_max_position_embeddings);
  }
};

/// Hyper-parameters of a LLaMA-family decoder. There are no silent defaults for the numerics that
/// differ between model families (norm_eps, rope_theta): a default-constructed config fails
/// validate() until they are set.
struct ModelConfig {
  std::int64_t dim = 0;             ///< width of the residual stream
  std::int64_t n_layers = 0;        ///< number of LlamaBlocks
  std::int64_t n_heads = 0;         ///< query heads
  std::int64_t n_kv_heads = 0;      ///< key/value heads; divides n_heads (MHA: equal, MQA: 1)
  std::int64_t head_dim = 0;        ///< width of one head (usually dim / n_heads)
  std::int64_t vocab_size = 0;      ///< tokens in the vocabulary
  std::int64_t ffn_hidden_dim = 0;  ///< SwiGLU inner width (see llama_ffn_hidden_dim)
  double norm_eps = 0;              ///< RMSNorm epsilon: 1e-5 for LLaMA-2/3, 1e-6 for some others
  double rope_theta = 0;            ///< RoPE base: 10000 (LLaMA-2), 500000 (LLaMA-3)
  RopeScaling rope_scaling{};       ///< frequency scaling (LLaMA-3.1/3.2), none by default
  RopeLayout rope_layout = RopeLayout::interleaved;  ///< pair layout expected by the q/k weights
  std::int64_t max_seq_len = 0;     ///< longest sequence (RoPE tables and KV cache capacity)

  /// Throws config_error naming the first invalid field and its value.
  void validate() const {
    auto positive = [](const char* field, std::int64_t value) {
      detail::require<config_error>(value > 0, "ModelConfig: ", field, " must be > 0, got ", value);
    };
    positive("dim", dim);
    positive("n_layers", n_layers);
    positive("n_heads", n_heads);
    positive("n_kv_heads", n_kv_heads);
    positive("head_dim", head_dim);
    positive("vocab_size", vocab_size);
    positive("ffn_hidden_dim", ffn_hidden_dim);
    positive("max_seq_len", max_seq_len);
    detail::require<config_error>(n_heads % n_kv_heads == 0, "ModelConfig: n_heads (", n_heads,
                                  ") must be divisible by n_kv_heads (", n_kv_heads, ")");
    detail::require<config_error>(head_dim % 2 == 0,
                                  "ModelConfig: head_dim must be even for RoPE, got ", head_dim);
    detail::require<config_error>(std::isfinite(norm_eps) && norm_eps > 0,
                                  "ModelConfig: norm_eps must be > 0 and finite, got ", norm_eps);
    detail::require<config_error>(std::isfinite(rope_theta) && rope_theta > 1,
                                  "ModelConfig: rope_theta must be > 1 and finite, got ", rope_theta);
    rope_scaling.validate();
  }
};

/// SwiGLU hidden width by the rule of Meta's model.py: take 4*dim, keep two thirds (so the three
/// SwiGLU matrices cost what two ReLU ones would), optionally scale by ffn_dim_multiplier, and round
/// up to a multiple of `multiple_of`.
///   LLaMA-2-7B: dim 4096, multiple_of 256                 -> 11008
///   LLaMA-3-8B: dim 4096, multiple_of 1024, multiplier 1.3 -> 14336
inline std::int64_t llama_ffn_hidden_dim(std::int64_t dim, std::int64_t multiple_of,
                                         std::optional<double> ffn_dim_multiplier = std::nullopt) {
  detail::require<config_error>(dim > 0, "llama_ffn_hidden_dim: dim must be > 0, got ", dim);
  detail::require<config_error>(multiple_of > 0,
                                "llama_ffn_hidden_dim: multiple_of must be > 0, got ", multiple_of);
  std::int64_t hidden = 2 * (4 * dim) / 3;
  if (ffn_dim_multiplier) {
    detail::require<config_error>(std::isfinite(*ffn_dim_multiplier) && *ffn_dim_multiplier > 0,
                                  "llama_ffn_hidden_dim: ffn_dim_multiplier must be > 0, got ",
                                  *ffn_dim_multiplier);
    hidden = static_cast<std::int64_t>(*ffn_dim_multiplier * static_cast<double>(hidden));
  }
  return multiple_of * ((hidden + multiple_of - 1) / multiple_of);
}

}  // namespace llamablocks
