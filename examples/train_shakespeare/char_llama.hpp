// CharLlama: a small LLaMA for training, assembled from the library's blocks (cpu, float):
//   h_0    = Embedding(tokens)                          [batch, tokens, dim]
//   h_l    = LlamaBlock_l(h_{l-1})   l = 1 .. n_layers  (GQA, RoPE; training forward, no KV cache)
//   logits = Linear(RMSNorm(h_L))                        [batch, tokens, vocab_size]
//            (tied: the head's weight is the embedding table, Parameter::tie, one gradient)
//   loss   = mean softmax cross-entropy of logits against the next tokens
// forward_backward() keeps one Activations per module and runs the chain rule back through all of
// them, accumulating every parameter's gradient; the math is the library's kernels, nothing here.
//
// save_llama2c() writes the weights in llama2.c's `.bin` layout, the head untied (negative
// vocab_size, the head stored last) or tied (positive, no head stored), which examples/llama2 loads (io/llama2c_checkpoint.hpp); the config must then use
// interleaved RoPE, theta 10000 and eps 1e-5, as that reader assumes (make_char_config does).
#pragma once

#include <llamablocks/llamablocks.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace char_llama {

using namespace llamablocks;

/// The config of a character model as the llama2.c reader will see it: head_dim = dim / n_heads,
/// eps 1e-5, theta 10000, interleaved RoPE, max_seq_len = context. Validated.
inline ModelConfig make_char_config(index_t vocab_size, index_t dim, index_t n_layers,
                                    index_t n_heads, index_t n_kv_heads, index_t ffn_hidden_dim,
                                    index_t context) {
  ModelConfig config;
  config.dim = dim;
  config.n_layers = n_layers;
  config.n_heads = n_heads;
  config.n_kv_heads = n_kv_heads;
  config.head_dim = n_heads > 0 ? dim / n_heads : 0;
  config.vocab_size = vocab_size;
  config.ffn_hidden_dim = ffn_hidden_dim;
  config.norm_eps = 1e-5;
  config.rope_theta = 10000;
  config.rope_layout = RopeLayout::interleaved;
  config.max_seq_len = context;
  config.validate();
  return config;
}

class CharLlama {
 public:
  /// \param tied_head the output head reuses the token embedding (both are [vocab_size, dim]).
  explicit CharLlama(const ModelConfig& config, bool tied_head = false)
      : config_((config.validate(), config)),
        tied_head_(tied_head),
        token_embedding_(config.vocab_size, config.dim),
        final_norm_(config.dim, config.norm_eps),
        output_(config.dim, config.vocab_size) {
    const auto rope = std::make_shared<const RotaryEmbedding<cpu, float>>(config);
    for (index_t layer = 0; layer < config.n_layers; ++layer) layers_.emplace_back(config, rope);
    block_activations_.resize(static_cast<std::size_t>(config.n_layers));
    if (tied_head_) output_.weight().tie(token_embedding_.weight());
  }

  bool tied_head() const { return tied_head_; }

  const ModelConfig& config() const { return config_; }
  Embedding<cpu, float>& token_embedding() { return token_embedding_; }
  std::vector<LlamaBlock<cpu, float>>& layers() { return layers_; }
  RMSNorm<cpu, float>& final_norm() { return final_norm_; }
  Linear<cpu, float>& output() { return output_; }

  /// Seeded init (train/init.hpp): blocks by init_block, embedding and (untied) head
  /// N(0, stddev²), final gain 1, drawn in that order from one NormalRng.
  void init(std::uint64_t seed, double stddev = 0.02) {
    NormalRng rng(seed);
    init_normal(token_embedding_.weight(), stddev, rng);
    for (auto& block : layers_) init_block(block, config_.n_layers, rng, stddev);
    init_constant(final_norm_.weight(), 1.0f);
    if (!tied_head_) init_normal(output_.weight(), stddev, rng);
  }

  void enable_grad() {
    token_embedding_.enable_grad();
    for (auto& block : layers_) block.enable_grad();
    final_norm_.enable_grad();
    output_.enable_grad();
  }

  /// Every parameter into `optimizer`: matrices with weight decay, gains and the embedding without
  /// (a tied head is the embedding, added once).
  void add_parameters(AdamW<float>& optimizer) {
    optimizer.add(token_embedding_.weight(), WeightDecay::none);
    for (auto& block : layers_) llamablocks::add_parameters(optimizer, block);
    optimizer.add(final_norm_.weight());
    if (!tied_head_) optimizer.add(output_.weight());
  }

  /// Training forward: tokens [batch, tokens] → logits [batch, tokens, vocab_size] (returned view
  /// into this model's workspace), keeping every module's activations for backward().
  TensorView<float, 3> forward(const Context<cpu>& ctx,
                               const TensorView<const std::int32_t, 2>& tokens) {
    const index_t batch = tokens.shape(0), count = tokens.shape(1);
    const auto hidden = hidden_.get<3>({batch, count, config_.dim});
    const auto normed = normed_.get<3>({batch, count, config_.dim});
    const auto logits = logits_.get<3>({batch, count, config_.vocab_size});
    token_embedding_.forward(ctx, tokens, hidden, embedding_activations_);
    for (std::size_t layer = 0; layer < layers_.size(); ++layer)
      layers_[layer].forward(ctx, hidden, block_activations_[layer]);
    final_norm_.forward(ctx, TensorView<const float, 3>(hidden), normed, final_norm_activations_);
    output_.forward(ctx, TensorView<const float, 3>(normed), logits, output_activations_);
    return logits;
  }

  /// Mean cross-entropy of the next-token predictions: targets [batch, tokens].
  double loss(const Context<cpu>& ctx, const TensorView<const std::int32_t, 2>& tokens,
              const TensorView<const std::int32_t, 2>& targets) {
    const auto logits = forward(ctx, tokens);
    const index_t rows = tokens.shape(0) * tokens.shape(1);
    return cross_entropy<float>(ctx, reshape<2>(TensorView<const float, 3>(logits), {rows, config_.vocab_size}),
                                reshape<1>(targets, {rows}));
  }

  /// forward, the loss, and backward through everything: adds each parameter's gradient of
  /// `scale` × the mean loss (scale = 1/N averages N accumulated micro-batches). Returns the loss.
  double forward_backward(const Context<cpu>& ctx, const TensorView<const std::int32_t, 2>& tokens,
                          const TensorView<const std::int32_t, 2>& targets, float scale = 1.0f) {
    const index_t batch = tokens.shape(0), count = tokens.shape(1);
    const index_t rows = batch * count;
    const auto logits = forward(ctx, tokens);
    const auto logits_2d = reshape<2>(logits, {rows, config_.vocab_size});
    const double loss = cross_entropy_backward<float>(ctx, TensorView<const float, 2>(logits_2d),
                                                      reshape<1>(targets, {rows}), logits_2d);
    if (scale != 1.0f)
      for (index_t i = 0; i < logits.size(); ++i) logits.data()[i] *= scale;
    const auto d_normed = normed_.get<3>({batch, count, config_.dim});
    const auto d_hidden = hidden_.get<3>({batch, count, config_.dim});
    output_.backward(ctx, output_activations_, TensorView<const float, 3>(logits), d_normed);
    final_norm_.backward(ctx, final_norm_activations_, TensorView<const float, 3>(d_normed), d_hidden);
    for (std::size_t layer = layers_.size(); layer-- > 0;)
      layers_[layer].backward(ctx, block_activations_[layer], d_hidden);
    token_embedding_.backward(ctx, embedding_activations_, TensorView<const float, 3>(d_hidden));
    return loss;
  }

  /// Writes the model as a llama2.c checkpoint (header vocab_size < 0: untied head, stored last;
  /// > 0: tied, the embedding serves as the head).
  /// \throws std::runtime_error when the file cannot be written.
  void save_llama2c(const std::string& path) {
    std::FILE* file = std::fopen(path.c_str(), "wb");
    if (file == nullptr) throw std::runtime_error("cannot open " + path + " for writing");
    bool ok = true;
    const auto write = [&](const void* data, std::size_t bytes) {
      ok = ok && std::fwrite(data, 1, bytes, file) == bytes;
    };
    const auto write_parameter = [&](const auto& parameter) {
      const auto view = parameter.view();
      write(view.data(), static_cast<std::size_t>(view.size()) * sizeof(float));
    };
    const ModelConfig& c = config_;
    const std::int32_t header[7] = {static_cast<std::int32_t>(c.dim),
                                    static_cast<std::int32_t>(c.ffn_hidden_dim),
                                    static_cast<std::int32_t>(c.n_layers),
                                    static_cast<std::int32_t>(c.n_heads),
                                    static_cast<std::int32_t>(c.n_kv_heads),
                                    (tied_head_ ? 1 : -1) * static_cast<std::int32_t>(c.vocab_size),
                                    static_cast<std::int32_t>(c.max_seq_len)};
    write(header, sizeof header);
    write_parameter(std::as_const(token_embedding_).weight());
    // llama2.c stores each kind of weight for all layers together.
    const auto for_layers = [&](auto&& get) {
      for (auto& block : layers_) write_parameter(get(block));
    };
    for_layers([](auto& b) -> auto& { return b.attention_norm().weight(); });
    for_layers([](auto& b) -> auto& { return b.attention().wq(); });
    for_layers([](auto& b) -> auto& { return b.attention().wk(); });
    for_layers([](auto& b) -> auto& { return b.attention().wv(); });
    for_layers([](auto& b) -> auto& { return b.attention().wo(); });
    for_layers([](auto& b) -> auto& { return b.ffn_norm().weight(); });
    for_layers([](auto& b) -> auto& { return b.feed_forward().w1(); });
    for_layers([](auto& b) -> auto& { return b.feed_forward().w2(); });
    for_layers([](auto& b) -> auto& { return b.feed_forward().w3(); });
    write_parameter(std::as_const(final_norm_).weight());
    // freq_cis_real and freq_cis_imag, as llama2.c's export writes them (its run ignores them,
    // as does our reader; they keep the file the size llama2.c expects).
    const index_t half = c.head_dim / 2;
    std::vector<float> freq_real(static_cast<std::size_t>(c.max_seq_len * half));
    std::vector<float> freq_imag(freq_real.size());
    for (index_t pos = 0; pos < c.max_seq_len; ++pos)
      for (index_t j = 0; j < half; ++j) {
        const double angle =
            static_cast<double>(pos) * std::pow(c.rope_theta, -2.0 * static_cast<double>(j) /
                                                                  static_cast<double>(c.head_dim));
        freq_real[static_cast<std::size_t>(pos * half + j)] = static_cast<float>(std::cos(angle));
        freq_imag[static_cast<std::size_t>(pos * half + j)] = static_cast<float>(std::sin(angle));
      }
    write(freq_real.data(), freq_real.size() * sizeof(float));
    write(freq_imag.data(), freq_imag.size() * sizeof(float));
    if (!tied_head_) write_parameter(std::as_const(output_).weight());
    ok = (std::fclose(file) == 0) && ok;
    if (!ok) throw std::runtime_error("writing " + path + " failed");
  }

 private:
  ModelConfig config_;
  bool tied_head_;
  Embedding<cpu, float> token_embedding_;
  std::vector<LlamaBlock<cpu, float>> layers_;
  RMSNorm<cpu, float> final_norm_;
  Linear<cpu, float> output_;
  Embedding<cpu, float>::Activations embedding_activations_;
  std::vector<LlamaBlock<cpu, float>::Activations> block_activations_;
  RMSNorm<cpu, float>::Activations final_norm_activations_;
  Linear<cpu, float>::Activations output_activations_;
  Workspace<float, cpu> hidden_;  // the residual stream; its gradient in backward
  Workspace<float, cpu> normed_;  // the final norm's output; its gradient in backward
  Workspace<float, cpu> logits_;  // logits; their gradient in backward
};

}  // namespace char_llama
