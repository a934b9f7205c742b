// A LLaMA decoder assembled from llamablocks modules, generic in the backend:
//   h_0 = Embedding(tokens)                            [batch, tokens, dim]
//   h_l = LlamaBlock_l(h_{l-1})   l = 1 .. n_layers    (one KVCache per layer)
//   logits = Linear(RMSNorm(h_L))[last token]          [batch, vocab_size]
// The prompt is one batched prefill; each decode step is a one-token forward through the caches.
// This is the file to copy when building a variant: swap a block, change the norm, add a layer.
#pragma once

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

template <class Backend, class T = float>
class LlamaModel {
 public:
  /// \param config     validated hyper-parameters.
  /// \param batch      sequences generated together (the caches are sized for it).
  /// \param tie_output whether the output head shares the token embedding table.
  LlamaModel(const ModelConfig& config, index_t batch, bool tie_output)
      : config_((config.validate(), config)),
        token_embedding_(config.vocab_size, config.dim),
        final_norm_(config.dim, config.norm_eps),
        output_(config.dim, config.vocab_size) {
    const auto rope = std::make_shared<const RotaryEmbedding<Backend, T>>(config);
    for (index_t layer = 0; layer < config.n_layers; ++layer) {
      layers_.emplace_back(config, rope);
      caches_.emplace_back(config, batch);
    }
    if (tie_output) output_.weight().assign(token_embedding_.weight().share());
  }

  const ModelConfig& config() const { return config_; }
  Embedding<Backend, T>& token_embedding() { return token_embedding_; }
  std::vector<LlamaBlock<Backend, T>>& layers() { return layers_; }
  RMSNorm<Backend, T>& final_norm() { return final_norm_; }
  Linear<Backend, T>& output() { return output_; }
  /// Positions already in the caches.
  index_t length() const { return caches_.front().length(); }

  /// Runs tokens: [batch, tokens] at positions start_pos .. and writes the logits of the last
  /// token of each sequence to logits: [batch, vocab_size].
  void forward(const Context<Backend>& ctx, const TensorView<const std::int32_t, 2>& tokens,
               index_t start_pos, const TensorView<T, 2>& logits) {
    const index_t batch = tokens.shape(0);
    const index_t count = tokens.shape(1);
    detail::expect_shape("LlamaModel::forward", "logits", logits, {batch, config_.vocab_size});
    const auto hidden = hidden_.template get<3>({batch, count, config_.dim});
    const auto last = last_.template get<3>({batch, 1, config_.dim});
    token_embedding_.forward(ctx, tokens, hidden);
    for (std::size_t layer = 0; layer < layers_.size(); ++layer)
      layers_[layer].forward(ctx, hidden, caches_[layer], start_pos);
    // Only the last position of each sequence is needed to pick the next token.
    for (index_t b = 0; b < batch; ++b)
      final_norm_.forward(ctx, TensorView<const T, 3>(&hidden(b, count - 1, 0), {1, 1, config_.dim}),
                          TensorView<T, 3>(&last(b, 0, 0), {1, 1, config_.dim}));
    output_.forward(ctx, last, reshape<3>(logits, {batch, 1, config_.vocab_size}));
  }

 private:
  ModelConfig config_;
  Embedding<Backend, T> token_embedding_;
  std::vector<LlamaBlock<Backend, T>> layers_;
  std::vector<KVCache<Backend, T>> caches_;
  RMSNorm<Backend, T> final_norm_;
  Linear<Backend, T> output_;
  Workspace<T, Backend> hidden_;
  Workspace<T, Backend> last_;
};

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

}  // namespace llama2
