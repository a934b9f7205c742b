// The cpu side of the LLaMA example's model: LlamaModel (llama_decoder.hpp) with the cpu backend,
// weight packing for the cpu kernels, seeded random weights, and how a loaded weight becomes a
// Parameter.
#pragma once

#include "llama_decoder.hpp"
#include "runner.hpp"

#include <llamablocks/llamablocks.hpp>

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <type_traits>
#include <utility>
#include <vector>

namespace llama2 {

using namespace llamablocks;

/// Stores every projection matrix of `model` (attention wq, wk, wv, wo; feed-forward w1, w2, w3; the
/// output head) as `type`, packed from its float32 values (pack_matrix: f16/bf16 rounded, Q8_0
/// quantized per 32 as GGUF does); the embedding and the norms stay float32. Matrices already
/// packed are left as they are. A decode step then reads 2 (f16, bf16) or 3.8 (Q8_0) times fewer
/// weight bytes. The float32 buffers a checkpoint lent stay alive while other tensors borrow them.
/// \throws shape_error, before anything is changed, when a matrix's row length does not fit the
///         type (Q8_0 needs dim, n_heads × head_dim and ffn_hidden_dim to be multiples of 32).
inline void pack_projections(LlamaModel<cpu, float>& model, WeightType type) {
  if (type == WeightType::f32) return;
  const ModelConfig& c = model.config();
  for (const index_t cols : {c.dim, c.n_heads * c.head_dim, c.ffn_hidden_dim})
    weight_row_bytes(type, cols);  // throws for a row length the type cannot hold
  const auto pack = [type](Parameter<float, 2, cpu>& weight) {
    if (weight.is_packed()) return;
    PackedMatrix packed = pack_matrix(std::as_const(weight).view(), type);
    weight.assign_packed(packed.view, std::move(packed.owner));
  };
  for (auto& block : model.layers()) {
    pack(block.attention().wq());
    pack(block.attention().wk());
    pack(block.attention().wv());
    pack(block.attention().wo());
    pack(block.feed_forward().w1());
    pack(block.feed_forward().w2());
    pack(block.feed_forward().w3());
  }
  pack(model.output().weight());
}

/// Random weights for speed runs and smoke tests, seeded: N(0, 1/sqrt(fan-in)) for projections,
/// N(1, 0.1) for norm gains, N(0, 1) for the embedding, so activations stay O(1) and no NaN or
/// denormal slows the arithmetic down. A tied head is the embedding table, already filled.
inline void randomize(LlamaModel<cpu, float>& model, std::uint64_t seed) {
  std::mt19937 generator(static_cast<unsigned>(seed));
  const auto fill = [&](auto& parameter, double stddev, double mean) {
    std::normal_distribution<float> distribution(static_cast<float>(mean), static_cast<float>(stddev));
    auto view = parameter.view();
    for (index_t i = 0; i < view.size(); ++i) view.data()[i] = distribution(generator);
  };
  const double scale = 1.0 / std::sqrt(static_cast<double>(model.config().dim));
  fill(model.token_embedding().weight(), 1.0, 0.0);
  for (auto& layer : model.layers()) {
    fill(layer.attention_norm().weight(), 0.1, 1.0);
    for (auto* w : {&layer.attention().wq(), &layer.attention().wk(), &layer.attention().wv(),
                    &layer.attention().wo(), &layer.feed_forward().w1(), &layer.feed_forward().w3()})
      fill(*w, scale, 0.0);
    fill(layer.feed_forward().w2(),
         1.0 / std::sqrt(static_cast<double>(model.config().ffn_hidden_dim)), 0.0);
    fill(layer.ffn_norm().weight(), 0.1, 1.0);
  }
  fill(model.final_norm().weight(), 0.1, 1.0);
  if (model.output().weight().view().data() != model.token_embedding().weight().view().data())
    fill(model.output().weight(), scale, 0.0);
}

/// Puts a float32 weight read from a checkpoint into `parameter`: on the cpu backend the Parameter
/// adopts the tensor (Parameter::assign, no copy, its shape checked); another backend copies it into
/// its own memory (Parameter::copy_from).
template <class Backend, int Rank>
void load_parameter(Parameter<float, Rank, Backend>& parameter, Tensor<float, Rank>&& weight) {
  if constexpr (std::is_same_v<Backend, cpu>)
    parameter.assign(std::move(weight));
  else
    parameter.copy_from(weight.cview());
}

/// Views of every float32 weight of `model`, for a runner on another backend to copy. Throws
/// config_error when a projection is packed (pack_projections, or a GGUF loaded with keep_packed).
inline HostWeights host_weights(LlamaModel<cpu, float>& model) {
  const auto& m = std::as_const(model);
  const auto unpacked = [](const Parameter<float, 2, cpu>& weight) {
    detail::require<config_error>(!weight.is_packed(), "host_weights: ", weight.name(),
                                  " is packed; another backend needs float32 weights");
    return weight.view();
  };
  HostWeights weights;
  weights.config = model.config();
  weights.tied_output = model.output().weight().view().data() ==
                        model.token_embedding().weight().view().data();
  weights.token_embedding = unpacked(m.token_embedding().weight());
  for (const auto& block : m.layers())
    weights.layers.push_back({block.attention_norm().weight().view(),
                              unpacked(block.attention().wq()), unpacked(block.attention().wk()),
                              unpacked(block.attention().wv()), unpacked(block.attention().wo()),
                              block.ffn_norm().weight().view(), unpacked(block.feed_forward().w1()),
                              unpacked(block.feed_forward().w2()), unpacked(block.feed_forward().w3())});
  weights.final_norm = m.final_norm().weight().view();
  weights.output = unpacked(m.output().weight());
  return weights;
}

}  // namespace llama2
