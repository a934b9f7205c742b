// HfCheckpoint: a Hugging Face LLaMA checkpoint folder — config.json plus model.safetensors, or
// model.safetensors.index.json and the shards its "weight_map" names.
//
// config.json → ModelConfig (config_from_hf_json):
//   hidden_size → dim                 num_hidden_layers → n_layers
//   num_attention_heads → n_heads     num_key_value_heads → n_kv_heads (default: n_heads)
//   head_dim (default: dim / n_heads) intermediate_size → ffn_hidden_dim
//   vocab_size                        max_position_embeddings → max_seq_len
//   rms_norm_eps → norm_eps (required) rope_theta (default 10000, as transformers' LlamaConfig)
//   rope_scaling: null | {"rope_type" (or "type"): "linear", "factor"}
//                      | {"rope_type": "llama3", "factor", "low_freq_factor", "high_freq_factor",
//                         "original_max_position_embeddings"}
//   tie_word_embeddings (default false)
// model_type must be "llama", hidden_act "silu", attention_bias / mlp_bias false: anything this
// library cannot compute is refused by name rather than run with wrong numbers.
//
// RoPE layout: Hugging Face's conversion permutes each head's wq/wk rows so that its rotate_half
// RoPE (pairs j and j + head_dim/2) computes what Meta's interleaved pairs (2j, 2j+1) compute on the
// original weights. So the weights are used as stored, with RopeLayout::half_split; nothing is
// un-permuted or guessed.
//
// Tensor names (PyTorch Linear layout [out_features, in_features]):
//   model.embed_tokens.weight                       [vocab, dim]
//   model.layers.N.input_layernorm.weight           [dim]
//   model.layers.N.self_attn.q_proj.weight          [n_heads * head_dim, dim]
//   model.layers.N.self_attn.k_proj/v_proj.weight   [n_kv_heads * head_dim, dim]
//   model.layers.N.self_attn.o_proj.weight          [dim, n_heads * head_dim]
//   model.layers.N.post_attention_layernorm.weight  [dim]
//   model.layers.N.mlp.gate_proj (w1), up_proj (w3) [ffn, dim]
//   model.layers.N.mlp.down_proj (w2)               [dim, ffn]
//   model.norm.weight                               [dim]
//   lm_head.weight                                  [vocab, dim]   (absent when tied)
#pragma once

#include "llamablocks/core/config.hpp"
#include "llamablocks/core/error.hpp"
#include "llamablocks/core/tensor.hpp"
#include "llamablocks/io/format_error.hpp"
#include "llamablocks/io/json.hpp"
#include "llamablocks/io/safetensors.hpp"

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <sys/stat.h>
#include <unordered_map>
#include <utility>
#include <vector>

namespace llamablocks::io {

/// config.json files larger than this are refused (real ones are about 1 KB).
inline constexpr std::uint64_t hf_max_json_bytes = 64u << 20;

/// Reads a whole (JSON) file as text. \throws format_error naming the file.
inline std::string read_text_file(const std::string& path, std::uint64_t max_bytes) {
  std::FILE* stream = std::fopen(path.c_str(), "rb");
  if (!stream) throw format_error(detail::concat("'", path, "': cannot open: ", std::strerror(errno)));
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> closer(stream, &std::fclose);
  std::string text;
  char buffer[1 << 16];
  for (;;) {
    const std::size_t got = std::fread(buffer, 1, sizeof buffer, stream);
    text.append(buffer, got);
    if (text.size() > max_bytes)
      throw format_error(detail::concat("'", path, "': larger than the ", max_bytes,
                                        " bytes allowed for this file"));
    if (got < sizeof buffer) break;
  }
  if (std::ferror(stream)) throw format_error(detail::concat("'", path, "': read error"));
  return text;
}

}  // namespace llamablocks::io

namespace llamablocks::detail {

/// Typed access to the members of one JSON object, each error naming the file and the key.
class HfConfigReader {
 public:
  HfConfigReader(const io::JsonValue& object, std::string where)
      : object_(object), where_(std::move(where)) {}

  const io::JsonValue* find(const char* key) const {
    const io::JsonValue* value = object_.find(key);
    return value && !value->is_null() ? value : nullptr;
  }
  std::int64_t integer(const char* key) const {
    const io::JsonValue* value = find(key);
    if (!value) fail(key, "is missing");
    return integer_of(key, *value);
  }
  std::optional<std::int64_t> optional_integer(const char* key) const {
    const io::JsonValue* value = find(key);
    if (!value) return std::nullopt;
    return integer_of(key, *value);
  }
  double real(const char* key) const {
    const io::JsonValue* value = find(key);
    if (!value) fail(key, "is missing");
    return real_of(key, *value);
  }
  std::optional<double> optional_real(const char* key) const {
    const io::JsonValue* value = find(key);
    if (!value) return std::nullopt;
    return real_of(key, *value);
  }
  std::optional<bool> optional_boolean(const char* key) const {
    const io::JsonValue* value = find(key);
    if (!value) return std::nullopt;
    if (!value->is_boolean()) fail(key, concat("must be true or false, got a ", value->kind_name()));
    return value->as_boolean();
  }
  std::optional<std::string> optional_string(const char* key) const {
    const io::JsonValue* value = find(key);
    if (!value) return std::nullopt;
    if (!value->is_string()) fail(key, concat("must be a string, got a ", value->kind_name()));
    return value->as_string();
  }

  [[noreturn]] void fail(const char* key, const std::string& problem) const {
    throw format_error(concat(where_, ": \"", key, "\" ", problem));
  }

 private:
  std::int64_t integer_of(const char* key, const io::JsonValue& value) const {
    if (!value.is_integer())
      fail(key, value.is_number() ? concat("must be an integer, got ", value.as_number())
                                  : concat("must be an integer, got a ", value.kind_name()));
    return value.as_integer();
  }
  double real_of(const char* key, const io::JsonValue& value) const {
    if (!value.is_number()) fail(key, concat("must be a number, got a ", value.kind_name()));
    return value.as_number();
  }

  const io::JsonValue& object_;
  std::string where_;
};

}  // namespace llamablocks::detail

namespace llamablocks::io {

/// The ModelConfig of a Hugging Face LLaMA config.json (see the top of this header).
/// \param where names the file in error messages.
/// \throws format_error for a missing or mistyped key or an unsupported model; config_error when
///         the values are inconsistent (ModelConfig::validate).
inline ModelConfig config_from_hf_json(const io::JsonValue& json, const std::string& where) {
  if (!json.is_object())
    throw format_error(detail::concat(where, ": must hold a JSON object, got ", json.kind_name()));
  const detail::HfConfigReader config(json, where);
  const std::string model_type = config.optional_string("model_type").value_or("(missing)");
  if (model_type != "llama")
    config.fail("model_type", "is '" + model_type + "'; only 'llama' is supported");
  const std::string activation = config.optional_string("hidden_act").value_or("silu");
  if (activation != "silu")
    config.fail("hidden_act", "is '" + activation + "'; SwiGLU needs 'silu'");
  for (const char* bias : {"attention_bias", "mlp_bias"})
    if (config.optional_boolean(bias).value_or(false))
      config.fail(bias, "is true; llamablocks' projections have no bias");

  ModelConfig c;
  c.dim = config.integer("hidden_size");
  c.n_layers = config.integer("num_hidden_layers");
  c.n_heads = config.integer("num_attention_heads");
  c.n_kv_heads = config.optional_integer("num_key_value_heads").value_or(c.n_heads);
  if (c.n_heads <= 0) config.fail("num_attention_heads", detail::concat("must be > 0, got ", c.n_heads));
  if (const auto head_dim = config.optional_integer("head_dim")) {
    c.head_dim = *head_dim;
  } else {
    if (c.dim % c.n_heads != 0)
      config.fail("num_attention_heads", detail::concat("(", c.n_heads, ") does not divide hidden_size (",
                                                        c.dim, ") and no head_dim is given"));
    c.head_dim = c.dim / c.n_heads;
  }
  c.ffn_hidden_dim = config.integer("intermediate_size");
  c.vocab_size = config.integer("vocab_size");
  c.max_seq_len = config.integer("max_position_embeddings");
  c.norm_eps = config.real("rms_norm_eps");
  c.rope_theta = config.optional_real("rope_theta").value_or(10000.0);
  c.rope_layout = RopeLayout::half_split;

  if (const io::JsonValue* scaling = config.find("rope_scaling")) {
    if (!scaling->is_object())
      config.fail("rope_scaling", detail::concat("must be null or an object, got a ", scaling->kind_name()));
    const detail::HfConfigReader rope(*scaling, where + " rope_scaling");
    std::optional<std::string> type = rope.optional_string("rope_type");
    if (!type) type = rope.optional_string("type");
    if (!type) rope.fail("rope_type", "is missing");
    if (*type == "linear") {
      c.rope_scaling = RopeScaling::linear(rope.real("factor"));
    } else if (*type == "llama3") {
      c.rope_scaling = RopeScaling::llama3(rope.real("factor"), rope.real("low_freq_factor"),
                                           rope.real("high_freq_factor"),
                                           rope.integer("original_max_position_embeddings"));
    } else if (*type != "default") {
      rope.fail("rope_type", "is '" + *type + "'; supported: default, linear, llama3");
    }
  }
  c.validate();
  return c;
}

/// One tensor a LLaMA checkpoint folder must hold, with its shape.
struct HfTensorSpec {
  std::string name;
  std::vector<index_t> shape;
};

/// The tensors of a Hugging Face LLaMA with `config` (see the top of this header); lm_head only
/// when the head is not tied.
/// \throws config_error when n_heads × head_dim or n_kv_heads × head_dim overflows index_t.
inline std::vector<HfTensorSpec> hf_llama_tensors(const ModelConfig& c, bool tied_output) {
  const auto rows = [&](const char* heads_name, index_t heads) {
    index_t product = 0;
    if (__builtin_mul_overflow(heads, c.head_dim, &product))
      throw config_error(detail::concat("hf_llama_tensors: ", heads_name, " (", heads,
                                        ") x head_dim (", c.head_dim, ") overflows"));
    return product;
  };
  const index_t q_rows = rows("n_heads", c.n_heads);
  const index_t kv_rows = rows("n_kv_heads", c.n_kv_heads);
  std::vector<HfTensorSpec> specs = {{"model.embed_tokens.weight", {c.vocab_size, c.dim}}};
  for (index_t layer = 0; layer < c.n_layers; ++layer) {
    const std::string p = "model.layers." + std::to_string(layer) + ".";
    specs.push_back({p + "input_layernorm.weight", {c.dim}});
    specs.push_back({p + "self_attn.q_proj.weight", {q_rows, c.dim}});
    specs.push_back({p + "self_attn.k_proj.weight", {kv_rows, c.dim}});
    specs.push_back({p + "self_attn.v_proj.weight", {kv_rows, c.dim}});
    specs.push_back({p + "self_attn.o_proj.weight", {c.dim, q_rows}});
    specs.push_back({p + "post_attention_layernorm.weight", {c.dim}});
    specs.push_back({p + "mlp.gate_proj.weight", {c.ffn_hidden_dim, c.dim}});
    specs.push_back({p + "mlp.up_proj.weight", {c.ffn_hidden_dim, c.dim}});
    specs.push_back({p + "mlp.down_proj.weight", {c.dim, c.ffn_hidden_dim}});
  }
  specs.push_back({"model.norm.weight", {c.dim}});
  if (!tied_output) specs.push_back({"lm_head.weight", {c.vocab_size, c.dim}});
  return specs;
}

/// A Hugging Face LLaMA checkpoint folder (see the top of this header).
class HfCheckpoint {
 public:
  /// Opens `directory`: reads config.json and the safetensors headers (not the weights).
  /// \throws format_error naming the file, the field and the value.
  static HfCheckpoint open(const std::string& directory) {
    HfCheckpoint checkpoint;
    checkpoint.directory_ = directory;
    const std::string config_path = checkpoint.file("config.json");
    const JsonValue config = parse_json(read_text_file(config_path, hf_max_json_bytes),
                                        "config.json '" + config_path + "'");
    checkpoint.config_ = config_from_hf_json(config, "config.json '" + config_path + "'");
    const detail::HfConfigReader reader(config, "config.json '" + config_path + "'");
    checkpoint.tied_output_ = reader.optional_boolean("tie_word_embeddings").value_or(false);
    checkpoint.open_weights();
    checkpoint.check_tensors();
    return checkpoint;
  }

  const std::string& directory() const { return directory_; }
  const ModelConfig& config() const { return config_; }
  /// Whether lm_head is the embedding table (config.json's tie_word_embeddings).
  bool tied_output() const { return tied_output_; }
  const std::vector<SafetensorsFile>& shards() const { return shards_; }

  /// The shard holding tensor `name`, or nullptr.
  const SafetensorsFile* find_shard(const std::string& name) const {
    const auto it = shard_of_.find(name);
    return it == shard_of_.end() ? nullptr : &shards_[it->second];
  }

  /// Reads tensor `name` as float32 with shape `expected` (SafetensorsFile::load_f32).
  template <int Rank>
  Tensor<float, Rank> load_f32(const std::string& name, const Shape<Rank>& expected) const {
    const SafetensorsFile* shard = find_shard(name);
    if (!shard)
      throw format_error(detail::concat("checkpoint '", directory_, "': no tensor named '", name, "'"));
    return shard->template load_f32<Rank>(name, expected);
  }

 private:
  HfCheckpoint() = default;

  std::string file(const std::string& name) const {
    return directory_.empty() || directory_.back() == '/' ? directory_ + name
                                                          : directory_ + "/" + name;
  }

  static bool exists(const std::string& path) {
    struct stat info {};
    return ::stat(path.c_str(), &info) == 0;
  }

  /// Every tensor the config implies is present with its shape, so a config that contradicts the
  /// file is refused before a model is allocated for it (and its sizes are bounded by the file's).
  void check_tensors() const {
    const ModelConfig& c = config_;
    // A hostile config can claim more layers than any file holds: refuse it before listing them.
    const std::string last = "model.layers." + std::to_string(c.n_layers - 1) + ".input_layernorm.weight";
    if (!find_shard(last))
      throw format_error(detail::concat("checkpoint '", directory_, "': config.json says ", c.n_layers,
                                        " layers, but there is no tensor '", last, "'"));
    const std::string extra = "model.layers." + std::to_string(c.n_layers) + ".input_layernorm.weight";
    if (find_shard(extra))
      throw format_error(detail::concat("checkpoint '", directory_, "': config.json says ", c.n_layers,
                                        " layers, but there is a tensor '", extra, "'"));
    for (const HfTensorSpec& spec : hf_llama_tensors(c, tied_output_)) {
      const SafetensorsFile* shard = find_shard(spec.name);
      if (!shard)
        throw format_error(detail::concat("checkpoint '", directory_, "': no tensor named '", spec.name,
                                          "'", spec.name == "lm_head.weight"
                                                   ? " (config.json: tie_word_embeddings is false)"
                                                   : ""));
      const SafetensorsTensorInfo& info = shard->tensor(spec.name);
      if (info.shape != spec.shape)
        throw format_error(detail::concat("checkpoint '", directory_, "': tensor '", spec.name,
                                          "' has shape ", detail::format_extents(info.shape),
                                          ", but config.json implies ", detail::format_extents(spec.shape)));
    }
  }

  void add_shard(const std::string& name) {
    shards_.push_back(SafetensorsFile::open(file(name)));
    const std::size_t index = shards_.size() - 1;
    for (const SafetensorsTensorInfo& tensor : shards_.back().tensors()) {
      const auto [it, inserted] = shard_of_.emplace(tensor.name, index);
      if (!inserted)
        throw format_error(detail::concat("checkpoint '", directory_, "': tensor '", tensor.name,
                                          "' is in both ", shards_[it->second].path(), " and ",
                                          shards_.back().path()));
    }
  }

  void open_weights() {
    const std::string single = file("model.safetensors");
    if (exists(single)) {
      add_shard("model.safetensors");
      return;
    }
    const std::string index_path = file("model.safetensors.index.json");
    if (!exists(index_path))
      throw format_error(detail::concat("checkpoint '", directory_,
                                        "': has neither model.safetensors nor "
                                        "model.safetensors.index.json"));
    const std::string where = "safetensors index '" + index_path + "'";
    const JsonValue index = parse_json(read_text_file(index_path, hf_max_json_bytes), where);
    if (!index.is_object()) throw format_error(where + ": must hold a JSON object");
    const io::JsonValue* weight_map = index.find("weight_map");
    if (!weight_map || !weight_map->is_object())
      throw format_error(where + ": \"weight_map\" must be an object of tensor name -> file name");
    // Shards in order of first mention; each named file must be a plain name in this folder.
    std::map<std::string, std::size_t> opened;
    const auto& names = weight_map->keys();
    const auto& files = weight_map->values();
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (!files[i].is_string())
        throw format_error(detail::concat(where, ": weight_map[\"", names[i], "\"] must be a string"));
      const std::string& shard = files[i].as_string();
      if (shard.empty() || shard == "." || shard == ".." ||
          shard.find_first_of("/\\") != std::string::npos)
        throw format_error(detail::concat(where, ": weight_map[\"", names[i], "\"] = '", shard,
                                          "' is not a file name in the checkpoint folder"));
      if (opened.count(shard) == 0) {
        add_shard(shard);
        opened.emplace(shard, shards_.size() - 1);
      }
      const SafetensorsFile* holder = find_shard(names[i]);
      if (!holder || holder->path() != file(shard))
        throw format_error(detail::concat(where, ": weight_map says '", names[i], "' is in ", shard,
                                          ", which does not hold it"));
    }
  }

  std::string directory_;
  ModelConfig config_;
  bool tied_output_ = false;
  std::vector<SafetensorsFile> shards_;
  std::unordered_map<std::string, std::size_t> shard_of_;
};

}  // namespace llamablocks::io
