// Small helpers shared by the module tests: configs, random weights mirrored for the reference,
// and conversions between library tensors and reference vectors.
#pragma once

#include "support/random.hpp"
#include "support/reference.hpp"

#include <llamablocks/llamablocks.hpp>

#include <cstdint>
#include <vector>

namespace llamablocks::test {

template <class T, int Rank>
reference::Vector to_vector(const TensorView<T, Rank>& view) {
  return reference::Vector(view.data(), view.data() + view.size());
}

/// A valid config; fields not given are LLaMA-like defaults for a tiny model.
inline ModelConfig make_config(index_t dim, index_t n_heads, index_t n_kv_heads, index_t head_dim,
                               index_t ffn_hidden_dim, index_t max_seq_len,
                               RopeLayout layout = RopeLayout::interleaved,
                               double rope_theta = 10000.0, RopeScaling scaling = {}) {
  ModelConfig config;
  config.dim = dim;
  config.n_layers = 1;
  config.n_heads = n_heads;
  config.n_kv_heads = n_kv_heads;
  config.head_dim = head_dim;
  config.vocab_size = 32;
  config.ffn_hidden_dim = ffn_hidden_dim;
  config.norm_eps = 1e-5;
  config.rope_theta = rope_theta;
  config.rope_scaling = scaling;
  config.rope_layout = layout;
  config.max_seq_len = max_seq_len;
  config.validate();
  return config;
}

inline reference::RopeSpec rope_spec(const ModelConfig& config) {
  reference::RopeSpec spec{static_cast<std::size_t>(config.head_dim), config.rope_theta,
                           config.rope_layout == RopeLayout::interleaved};
  if (config.rope_scaling.type != RopeScaling::Type::none) {
    spec.factor = config.rope_scaling.factor;
    spec.llama3 = config.rope_scaling.type == RopeScaling::Type::llama3;
    spec.low_freq_factor = config.rope_scaling.low_freq_factor;
    spec.high_freq_factor = config.rope_scaling.high_freq_factor;
    spec.original_context = static_cast<double>(config.rope_scaling.original_max_position_embeddings);
  }
  return spec;
}

inline reference::BlockSpec block_spec(const ModelConfig& config) {
  auto as_size = [](index_t value) { return static_cast<std::size_t>(value); };
  return {as_size(config.dim),      as_size(config.n_heads),        as_size(config.n_kv_heads),
          as_size(config.head_dim), as_size(config.ffn_hidden_dim), config.norm_eps,
          rope_spec(config)};
}

/// Fills `parameter` with N(mean, stddev) values and returns them for the reference.
template <class T, int Rank>
reference::Vector randomize(Parameter<T, Rank, cpu>& parameter, std::uint32_t seed, double stddev,
                            double mean = 0.0) {
  fill_normal(parameter.view(), seed, stddev, mean);
  return to_vector(parameter.view());
}

/// Random weights (std 1/sqrt(fan_in), norm gains around 1) for every parameter of a block.
template <class T>
reference::BlockWeights randomize_block(LlamaBlock<cpu, T>& block, std::uint32_t seed) {
  auto& attention = block.attention();
  auto& ffn = block.feed_forward();
  const double dim_scale = 1.0 / std::sqrt(static_cast<double>(block.dim()));
  const double context_scale =
      1.0 / std::sqrt(static_cast<double>(attention.n_heads() * attention.head_dim()));
  const double hidden_scale = 1.0 / std::sqrt(static_cast<double>(ffn.ffn_hidden_dim()));
  reference::BlockWeights weights;
  weights.attention_norm = randomize(block.attention_norm().weight(), seed + 1, 0.1, 1.0);
  weights.wq = randomize(attention.wq(), seed + 2, dim_scale);
  weights.wk = randomize(attention.wk(), seed + 3, dim_scale);
  weights.wv = randomize(attention.wv(), seed + 4, dim_scale);
  weights.wo = randomize(attention.wo(), seed + 5, context_scale);
  weights.ffn_norm = randomize(block.ffn_norm().weight(), seed + 6, 0.1, 1.0);
  weights.w1 = randomize(ffn.w1(), seed + 7, dim_scale);
  weights.w2 = randomize(ffn.w2(), seed + 8, hidden_scale);
  weights.w3 = randomize(ffn.w3(), seed + 9, dim_scale);
  return weights;
}

}  // namespace llamablocks::test
