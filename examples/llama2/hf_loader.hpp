// Loading a Hugging Face LLaMA checkpoint folder (io/hf_checkpoint.hpp: config.json + safetensors)
// into llama2::LlamaModel.
//
// The config it implies has RopeLayout::half_split: Hugging Face stores wq/wk with each head's rows
// permuted for its rotate_half RoPE, and the model rotates pairs (j, j + head_dim/2) to match, so
// the weights are used exactly as stored. Each tensor is read straight into its final buffer (F32)
// or widened from F16/BF16 chunk by chunk, so loading needs no second copy of the model.
#pragma once

#include "llama_model.hpp"

#include <llamablocks/io/hf_checkpoint.hpp>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>

namespace llama2 {

/// The ModelConfig of `checkpoint` with max_seq_len capped at `max_seq_len_cap` (when > 0).
inline ModelConfig hf_model_config(const io::HfCheckpoint& checkpoint,
                                   std::int64_t max_seq_len_cap) {
  ModelConfig config = checkpoint.config();
  if (max_seq_len_cap > 0) config.max_seq_len = std::min(config.max_seq_len, max_seq_len_cap);
  config.validate();
  return config;
}

/// Fills `model` (built with checkpoint's shapes and tie_output == checkpoint.tied_output()) with
/// the weights of `checkpoint`. \throws shape_error naming the tensor when a shape differs,
/// format_error when one is missing or of an unsupported dtype.
template <class Backend>
void load_hf(const io::HfCheckpoint& checkpoint, LlamaModel<Backend, float>& model) {
  const ModelConfig& c = model.config();
  const index_t q_rows = c.n_heads * c.head_dim;
  const index_t kv_rows = c.n_kv_heads * c.head_dim;
  const auto load = [&](auto& parameter, const std::string& name, const auto& shape) {
    constexpr int rank = static_cast<int>(std::tuple_size_v<std::decay_t<decltype(shape)>>);
    load_parameter(parameter, checkpoint.template load_f32<rank>(name, shape));
  };
  load(model.token_embedding().weight(), "model.embed_tokens.weight", Shape<2>{c.vocab_size, c.dim});
  for (index_t layer = 0; layer < c.n_layers; ++layer) {
    auto& block = model.layers()[static_cast<std::size_t>(layer)];
    const std::string p = "model.layers." + std::to_string(layer) + ".";
    load(block.attention_norm().weight(), p + "input_layernorm.weight", Shape<1>{c.dim});
    load(block.attention().wq(), p + "self_attn.q_proj.weight", Shape<2>{q_rows, c.dim});
    load(block.attention().wk(), p + "self_attn.k_proj.weight", Shape<2>{kv_rows, c.dim});
    load(block.attention().wv(), p + "self_attn.v_proj.weight", Shape<2>{kv_rows, c.dim});
    load(block.attention().wo(), p + "self_attn.o_proj.weight", Shape<2>{c.dim, q_rows});
    load(block.ffn_norm().weight(), p + "post_attention_layernorm.weight", Shape<1>{c.dim});
    load(block.feed_forward().w1(), p + "mlp.gate_proj.weight", Shape<2>{c.ffn_hidden_dim, c.dim});
    load(block.feed_forward().w3(), p + "mlp.up_proj.weight", Shape<2>{c.ffn_hidden_dim, c.dim});
    load(block.feed_forward().w2(), p + "mlp.down_proj.weight", Shape<2>{c.dim, c.ffn_hidden_dim});
  }
  load(model.final_norm().weight(), "model.norm.weight", Shape<1>{c.dim});
  // Re-shared because the embedding was just replaced.
  if (checkpoint.tied_output())
    model.output().weight().assign(model.token_embedding().weight().share());
  else
    load(model.output().weight(), "lm_head.weight", Shape<2>{c.vocab_size, c.dim});
}

/// Builds a model for `checkpoint` (batch sequences at a time, max_seq_len capped at
/// `max_seq_len_cap` when > 0) and loads its weights.
template <class Backend>
std::unique_ptr<LlamaModel<Backend, float>> load_hf_model(const io::HfCheckpoint& checkpoint,
                                                          std::int64_t max_seq_len_cap = 0,
                                                          index_t batch = 1) {
  auto model = std::make_unique<LlamaModel<Backend, float>>(
      hf_model_config(checkpoint, max_seq_len_cap), batch, checkpoint.tied_output());
  load_hf(checkpoint, *model);
  return model;
}

}  // namespace llama2
