// Loading a llama2.c `.bin` checkpoint (io/llama2c_checkpoint.hpp) into llama2::LlamaModel.
//
// On the cpu backend every Parameter adopts the checkpoint's borrowed tensor (Parameter::assign), so
// the weights stay where fread put them and nothing is copied; another backend copies each weight
// from host memory into its own (Parameter::copy_from). The output head is tied to the embedding
// when the header's vocab_size is positive, as in llama2.c.
#pragma once

#include "llama_model.hpp"

#include <llamablocks/io/llama2c_checkpoint.hpp>

#include <memory>

namespace llama2 {

/// Fills `model` with the weights of `checkpoint`.
/// \param model      built with checkpoint.config() (any batch) and tie_output ==
///                   checkpoint.tied_output().
/// \throws config_error when the model's config differs from the checkpoint's.
template <class Backend>
void load_llama2c(const Llama2cCheckpoint& checkpoint, LlamaModel<Backend, float>& model) {
  const ModelConfig expected = checkpoint.config();
  const ModelConfig& actual = model.config();
  llamablocks::detail::require<config_error>(
      expected.dim == actual.dim && expected.n_layers == actual.n_layers &&
          expected.n_heads == actual.n_heads && expected.n_kv_heads == actual.n_kv_heads &&
          expected.head_dim == actual.head_dim && expected.vocab_size == actual.vocab_size &&
          expected.ffn_hidden_dim == actual.ffn_hidden_dim,
      "load_llama2c: the model's shapes differ from those of ", checkpoint.path());
  load_parameter(model.token_embedding().weight(), checkpoint.token_embedding());
  for (index_t layer = 0; layer < expected.n_layers; ++layer) {
    auto& block = model.layers()[static_cast<std::size_t>(layer)];
    load_parameter(block.attention_norm().weight(), checkpoint.rms_att(layer));
    load_parameter(block.attention().wq(), checkpoint.wq(layer));
    load_parameter(block.attention().wk(), checkpoint.wk(layer));
    load_parameter(block.attention().wv(), checkpoint.wv(layer));
    load_parameter(block.attention().wo(), checkpoint.wo(layer));
    load_parameter(block.ffn_norm().weight(), checkpoint.rms_ffn(layer));
    load_parameter(block.feed_forward().w1(), checkpoint.w1(layer));
    load_parameter(block.feed_forward().w2(), checkpoint.w2(layer));
    load_parameter(block.feed_forward().w3(), checkpoint.w3(layer));
  }
  load_parameter(model.final_norm().weight(), checkpoint.rms_final());
  // The head shares the embedding's storage when tied; it is re-shared here because the embedding
  // was just replaced.
  if (checkpoint.tied_output())
    model.output().weight().assign(model.token_embedding().weight().share());
  else
    load_parameter(model.output().weight(), checkpoint.wcls());
}

/// Builds a model for `checkpoint` (batch sequences at a time) and loads its weights.
template <class Backend>
std::unique_ptr<LlamaModel<Backend, float>> load_llama2c_model(const Llama2cCheckpoint& checkpoint,
                                                               index_t batch = 1) {
  auto model = std::make_unique<LlamaModel<Backend, float>>(checkpoint.config(), batch,
                                                            checkpoint.tied_output());
  load_llama2c(checkpoint, *model);
  return model;
}

}  // namespace llama2
