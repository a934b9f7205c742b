// A LLaMA decoder assembled from llamablocks modules, generic in the backend:
//   h_0 = Embedding(tokens)                            [batch, tokens, dim]
//   h_l = LlamaBlock_l(h_{l-1})   l = 1 .. n_layers    (one KVCache per layer)
//   logits = Linear(RMSNorm(h_L))[last token]          [batch, vocab_size]
// The prompt is one batched prefill; each decode step is a one-token forward through the caches.
// This is the file to copy when building a variant: swap a block, change the norm, add a layer.
// It names the modules' primary templates only; include the backend's header (llamablocks.hpp for
// cpu, llamablocks/cuda.cuh for cuda) before using LlamaModel<Backend>.
#pragma once

#include <llamablocks/core/config.hpp>
#include <llamablocks/core/tensor.hpp>
#include <llamablocks/core/workspace.hpp>
#include <llamablocks/modules/embedding.hpp>
#include <llamablocks/modules/kv_cache.hpp>
#include <llamablocks/modules/linear.hpp>
#include <llamablocks/modules/llama_block.hpp>
#include <llamablocks/modules/rms_norm.hpp>
#include <llamablocks/modules/rotary_embedding.hpp>

#include <cstdint>
#include <memory>
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
  const Embedding<Backend, T>& token_embedding() const { return token_embedding_; }
  const std::vector<LlamaBlock<Backend, T>>& layers() const { return layers_; }
  const RMSNorm<Backend, T>& final_norm() const { return final_norm_; }
  const Linear<Backend, T>& output() const { return output_; }
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
    // Only the last position of each sequence is needed to pick the next token. Pointer
    // arithmetic, not hidden(b, ...): on cuda the views hold device memory, which the host must
    // not dereference.
    for (index_t b = 0; b < batch; ++b)
      final_norm_.forward(
          ctx,
          TensorView<const T, 3>(hidden.data() + (b * count + count - 1) * config_.dim, {1, 1, config_.dim}),
          TensorView<T, 3>(last.data() + b * config_.dim, {1, 1, config_.dim}));
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

}  // namespace llama2
