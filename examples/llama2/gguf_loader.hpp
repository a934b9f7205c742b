// Loading a GGUF file of architecture "llama" (io/gguf.hpp) into llama2::LlamaModel, and the
// tokenizer it carries.
//
// Tensors (llama.cpp's names; GGUF's ne[0] is the row length, load_f32 reverses the dims):
//   token_embd.weight            [vocab, dim]
//   blk.N.attn_norm.weight       [dim]
//   blk.N.attn_q.weight          [n_heads * head_dim, dim]
//   blk.N.attn_k/attn_v.weight   [n_kv_heads * head_dim, dim]
//   blk.N.attn_output.weight     [dim, n_heads * head_dim]
//   blk.N.ffn_norm.weight        [dim]
//   blk.N.ffn_gate.weight (w1), blk.N.ffn_up.weight (w3)   [ffn, dim]
//   blk.N.ffn_down.weight (w2)   [dim, ffn]
//   output_norm.weight           [dim]
//   output.weight                [vocab, dim], absent when the head is tied to the embedding.
// F32 tensors are borrowed from the file buffer (no copy), F16/BF16/Q8_0/Q4_0/Q4_1 are dequantized
// to float32. The q/k rows of a llama.cpp GGUF are in Meta's interleaved RoPE order, which is what
// io::config_from_gguf selects.
//
// The tokenizer: tokenizer.ggml.model "gpt2" is a ByteBpeTokenizer (tokens, merges, the
// pre-tokenizer named by tokenizer.ggml.pre, special tokens = token_type 3 "control"), "llama" a
// SentencePieceTokenizer (tokens, scores). Both are behind GgufTokenizer so a program has one path.
#pragma once

#include "llama_model.hpp"

#include <llamablocks/io/gguf.hpp>
#include <llamablocks/text/byte_bpe_tokenizer.hpp>
#include <llamablocks/text/sentencepiece_tokenizer.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace llama2 {

/// A tokenizer read from a GGUF file: encode / decode as the wrapped tokenizer, plus the GGUF's
/// add_bos_token default.
class GgufTokenizer {
 public:
  virtual ~GgufTokenizer() = default;
  virtual std::vector<std::int32_t> encode(std::string_view text, bool add_bos,
                                           bool add_eos) const = 0;
  /// The text of `token` following `previous` (streaming).
  virtual std::string decode(std::int32_t previous, std::int32_t token) const = 0;
  virtual std::string decode(const std::vector<std::int32_t>& tokens) const = 0;
  /// The text of one token on its own (an EOS's own text, where decode() may give "").
  virtual std::string piece(std::int32_t token) const = 0;
  virtual std::int32_t vocab_size() const = 0;
  virtual std::int32_t bos_id() const = 0;
  virtual std::int32_t eos_id() const = 0;
  /// Whether a prompt starts with BOS (tokenizer.ggml.add_bos_token; default true for "llama",
  /// false for "gpt2").
  virtual bool add_bos() const = 0;
  /// "gpt2" or "llama".
  virtual std::string model() const = 0;
};

namespace internal {

template <class Tokenizer>
class GgufTokenizerOf final : public GgufTokenizer {
 public:
  GgufTokenizerOf(Tokenizer tokenizer, bool add_bos, std::string model)
      : tokenizer_(std::move(tokenizer)), add_bos_(add_bos), model_(std::move(model)) {}
  std::vector<std::int32_t> encode(std::string_view text, bool add_bos,
                                   bool add_eos) const override {
    return tokenizer_.encode(text, add_bos, add_eos);
  }
  std::string decode(std::int32_t previous, std::int32_t token) const override {
    return tokenizer_.decode(previous, token);
  }
  std::string decode(const std::vector<std::int32_t>& tokens) const override {
    return tokenizer_.decode(tokens);
  }
  std::string piece(std::int32_t token) const override {
    if constexpr (std::is_same_v<Tokenizer, SentencePieceTokenizer>)
      return tokenizer_.piece(token);
    else
      return tokenizer_.decode(std::vector<std::int32_t>{token});
  }
  std::int32_t vocab_size() const override { return tokenizer_.vocab_size(); }
  std::int32_t bos_id() const override { return tokenizer_.bos_id(); }
  std::int32_t eos_id() const override { return tokenizer_.eos_id(); }
  bool add_bos() const override { return add_bos_; }
  std::string model() const override { return model_; }
  const Tokenizer& wrapped() const { return tokenizer_; }

 private:
  Tokenizer tokenizer_;
  bool add_bos_;
  std::string model_;
};

inline std::int32_t gguf_token_id(const io::GgufFile& file, const std::string& key,
                                  std::int32_t fallback) {
  const auto value = file.get_optional_integer(key);
  if (!value) return fallback;
  llamablocks::detail::require<format_error>(
      *value >= 0 && *value <= std::numeric_limits<std::int32_t>::max(), "GGUF '", file.path(),
      "': ", key, " must be a token id, got ", *value);
  return static_cast<std::int32_t>(*value);
}

}  // namespace internal

/// The pre-tokenizer of a GGUF tokenizer.ggml.pre value: "gpt2" / "default" -> gpt2, "llama-bpe"
/// -> llama3 (with ignore_merges), "smollm" -> smollm. Others throw format_error naming the value.
inline std::pair<PreTokenizer, bool> gguf_pre_tokenizer(const std::string& pre,
                                                        const std::string& where) {
  if (pre == "gpt2" || pre == "default") return {PreTokenizer::gpt2, false};
  if (pre == "llama-bpe") return {PreTokenizer::llama3, true};
  if (pre == "smollm") return {PreTokenizer::smollm, false};
  throw format_error(where + ": tokenizer.ggml.pre '" + pre +
                     "' is not supported (supported: gpt2, default, llama-bpe, smollm)");
}

namespace internal {

/// load_gguf_tokenizer() less the file name on the tokenizers' own errors.
inline std::unique_ptr<GgufTokenizer> build_gguf_tokenizer(const io::GgufFile& file) {
  const std::string where = "GGUF '" + file.path() + "'";
  const std::string model = file.get<std::string>("tokenizer.ggml.model");
  auto tokens = file.get_array<std::string>("tokenizer.ggml.tokens");
  if (model == "gpt2") {
    const std::string pre = file.get_optional<std::string>("tokenizer.ggml.pre").value_or("default");
    const auto [pre_tokenizer, ignore_merges] = gguf_pre_tokenizer(pre, where);
    const auto merges = file.get_array<std::string>("tokenizer.ggml.merges");
    std::vector<std::int32_t> special_ids;
    if (file.has("tokenizer.ggml.token_type")) {
      const auto types = file.get_array<std::int32_t>("tokenizer.ggml.token_type");
      for (std::size_t id = 0; id < types.size() && id < tokens.size(); ++id)
        if (types[id] == 3 && !tokens[id].empty()) special_ids.push_back(static_cast<std::int32_t>(id));
    }
    const std::int32_t bos = gguf_token_id(file, "tokenizer.ggml.bos_token_id", 0);
    const std::int32_t eos = gguf_token_id(file, "tokenizer.ggml.eos_token_id", 0);
    const std::int32_t unk = gguf_token_id(file, "tokenizer.ggml.unknown_token_id",
                                                     ByteBpeTokenizer::no_unk_id);
    const bool add_bos = file.get_optional<bool>("tokenizer.ggml.add_bos_token").value_or(false);
    ByteBpeTokenizer tokenizer(std::move(tokens), merges, bos, eos, pre_tokenizer, special_ids, unk,
                               ignore_merges);
    return std::make_unique<GgufTokenizerOf<ByteBpeTokenizer>>(std::move(tokenizer),
                                                                          add_bos, model);
  }
  if (model == "llama") {
    auto scores = file.get_array<float>("tokenizer.ggml.scores");
    const std::int32_t bos = gguf_token_id(file, "tokenizer.ggml.bos_token_id", 1);
    const std::int32_t eos = gguf_token_id(file, "tokenizer.ggml.eos_token_id", 2);
    const std::int32_t unk = gguf_token_id(file, "tokenizer.ggml.unknown_token_id", 0);
    const bool add_bos = file.get_optional<bool>("tokenizer.ggml.add_bos_token").value_or(true);
    SentencePieceTokenizer tokenizer(std::move(tokens), std::move(scores), bos, eos, unk);
    return std::make_unique<GgufTokenizerOf<SentencePieceTokenizer>>(
        std::move(tokenizer), add_bos, model);
  }
  throw format_error(where + ": tokenizer.ggml.model '" + model +
                     "' is not supported (supported: gpt2, llama)");
}

}  // namespace internal

/// The tokenizer of a GGUF file (see the top of this header).
/// \throws format_error naming the file for a missing key, an unsupported tokenizer.ggml.model /
///         .pre, or a vocabulary the tokenizer refuses (e.g. a merge naming no token; the
///         tokenizer's config_error message follows the file's name).
inline std::unique_ptr<GgufTokenizer> load_gguf_tokenizer(const io::GgufFile& file) {
  try {
    return internal::build_gguf_tokenizer(file);
  } catch (const config_error& e) {
    throw format_error("GGUF '" + file.path() + "': tokenizer: " + e.what());
  }
}

/// The ModelConfig of a GGUF llama model with max_seq_len capped at `max_seq_len_cap` (when > 0),
/// so the KV caches stay small for long-context models.
inline ModelConfig gguf_model_config(const io::GgufFile& file, std::int64_t max_seq_len_cap) {
  ModelConfig config = io::config_from_gguf(file);
  if (max_seq_len_cap > 0) config.max_seq_len = std::min(config.max_seq_len, max_seq_len_cap);
  config.validate();
  return config;
}

/// Whether the GGUF ties the output head to the token embedding (no output.weight).
inline bool gguf_tied_output(const io::GgufFile& file) {
  return file.find_tensor("output.weight") == nullptr;
}

/// Fills `model` (built with a config of `file`'s shapes and tie_output == gguf_tied_output(file))
/// with the weights of `file`. With `keep_packed` (cpu backend), projection matrices stored as
/// F16, BF16 or Q8_0 stay in the file buffer as they are (Parameter::assign_packed) and are read
/// by packed_matmul, and so does a tied head whose token_embd is stored so; every other tensor is
/// float32 (borrowed when F32, else dequantized).
/// \throws shape_error naming the tensor when a shape differs.
template <class Backend>
void load_gguf(const io::GgufFile& file, LlamaModel<Backend, float>& model, bool keep_packed = true) {
  const ModelConfig& c = model.config();
  const index_t q_rows = c.n_heads * c.head_dim;
  const index_t kv_rows = c.n_kv_heads * c.head_dim;
  const auto load = [&](auto& parameter, const std::string& name, const auto& shape) {
    constexpr int rank = std::tuple_size_v<std::decay_t<decltype(shape)>>;
    load_parameter(parameter, file.load_f32<rank>(name, shape));
  };
  const auto load_matrix = [&](auto& parameter, const std::string& name, index_t rows, index_t cols) {
    if constexpr (std::is_same_v<Backend, cpu>) {
      const auto packed = keep_packed ? file.packed_matrix(name, rows, cols) : std::nullopt;
      if (packed && packed->type != WeightType::f32) {
        parameter.assign_packed(*packed, file.storage());
        return;
      }
    }
    load(parameter, name, Shape<2>{rows, cols});
  };
  load(model.token_embedding().weight(), "token_embd.weight", Shape<2>{c.vocab_size, c.dim});
  for (index_t layer = 0; layer < c.n_layers; ++layer) {
    auto& block = model.layers()[static_cast<std::size_t>(layer)];
    const std::string p = "blk." + std::to_string(layer) + ".";
    load(block.attention_norm().weight(), p + "attn_norm.weight", Shape<1>{c.dim});
    load_matrix(block.attention().wq(), p + "attn_q.weight", q_rows, c.dim);
    load_matrix(block.attention().wk(), p + "attn_k.weight", kv_rows, c.dim);
    load_matrix(block.attention().wv(), p + "attn_v.weight", kv_rows, c.dim);
    load_matrix(block.attention().wo(), p + "attn_output.weight", c.dim, q_rows);
    load(block.ffn_norm().weight(), p + "ffn_norm.weight", Shape<1>{c.dim});
    load_matrix(block.feed_forward().w1(), p + "ffn_gate.weight", c.ffn_hidden_dim, c.dim);
    load_matrix(block.feed_forward().w3(), p + "ffn_up.weight", c.ffn_hidden_dim, c.dim);
    load_matrix(block.feed_forward().w2(), p + "ffn_down.weight", c.dim, c.ffn_hidden_dim);
  }
  load(model.final_norm().weight(), "output_norm.weight", Shape<1>{c.dim});
  // A tied head reads the embedding table: packed as stored when it can be (as llama.cpp does),
  // else re-shared with the float32 embedding that was just loaded.
  if (!gguf_tied_output(file)) {
    load_matrix(model.output().weight(), "output.weight", c.vocab_size, c.dim);
    return;
  }
  model.output().weight().assign(model.token_embedding().weight().share());
  if constexpr (std::is_same_v<Backend, cpu>) {
    const auto packed = keep_packed ? file.packed_matrix("token_embd.weight", c.vocab_size, c.dim)
                                    : std::nullopt;
    if (packed && packed->type != WeightType::f32)
      model.output().weight().assign_packed(*packed, file.storage());
  }
}

/// Builds a model for `file` (batch sequences at a time, max_seq_len capped at `max_seq_len_cap`
/// when > 0) and loads its weights.
template <class Backend>
std::unique_ptr<LlamaModel<Backend, float>> load_gguf_model(const io::GgufFile& file,
                                                            std::int64_t max_seq_len_cap = 0,
                                                            index_t batch = 1,
                                                            bool keep_packed = true) {
  auto model = std::make_unique<LlamaModel<Backend, float>>(
      gguf_model_config(file, max_seq_len_cap), batch, gguf_tied_output(file));
  load_gguf(file, *model, keep_packed);
  return model;
}

}  // namespace llama2
