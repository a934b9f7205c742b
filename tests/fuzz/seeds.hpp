// Small valid inputs for the fuzz targets (their seed corpora) and for the hostile-file tests:
// a llama2.c checkpoint, a llama2.c tokenizer.bin, GGUF files with a "llama" (SentencePiece) and
// a "gpt2" (byte-level BPE) vocabulary, the two vocabularies the round-trip fuzzer encodes with, a
// safetensors file and a Hugging Face config.json.
// Written byte by byte after the layouts in io/llama2c_checkpoint.hpp, io/gguf.hpp and
// text/sentencepiece_tokenizer.hpp, so no binary file needs to be committed.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace llamablocks::fuzz {

/// Appends little-endian fields to a byte string.
struct ByteWriter {
  std::string bytes;

  void u8(std::uint8_t value) { bytes += static_cast<char>(value); }
  void u32(std::uint32_t value) {
    for (int i = 0; i < 4; ++i) bytes += static_cast<char>((value >> (8 * i)) & 0xFFu);
  }
  void i32(std::int32_t value) {
    std::uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    u32(bits);
  }
  void u64(std::uint64_t value) {
    for (int i = 0; i < 8; ++i) bytes += static_cast<char>((value >> (8 * i)) & 0xFFu);
  }
  void f32(float value) {
    std::uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    u32(bits);
  }
  /// GGUF string: uint64 length, bytes.
  void str(const std::string& text) {
    u64(text.size());
    bytes += text;
  }
  void pad(std::size_t alignment) {
    while (bytes.size() % alignment != 0) bytes += '\0';
  }
};

/// llama2.c checkpoint: header {dim 8, hidden 12, 2 layers, 4 heads, 2 kv heads, vocab_size,
/// max_seq_len 3}, then the floats 0, 1, 2, ... (vocab_size < 0: untied head).
inline std::string llama2c_checkpoint(std::int32_t vocab_size = 5) {
  const std::int32_t header[7] = {8, 12, 2, 4, 2, vocab_size, 3};
  ByteWriter w;
  for (const std::int32_t field : header) w.i32(field);
  const std::int64_t dim = 8, hidden = 12, layers = 2, head_dim = 2, kv_heads = 2, seq = 3;
  const std::int64_t vocab = vocab_size < 0 ? -std::int64_t{vocab_size} : vocab_size;
  std::int64_t count = vocab * dim;
  count += layers * (2 * dim + 2 * dim * dim + 2 * dim * kv_heads * head_dim + 3 * dim * hidden);
  count += dim + 2 * seq * (head_dim / 2);
  if (vocab_size < 0) count += vocab * dim;
  for (std::int64_t i = 0; i < count; ++i) w.f32(static_cast<float>(i % 17) * 0.125f);
  return w.bytes;
}

/// A SentencePiece-style vocabulary: <unk>, <s>, </s>, the 256 byte tokens <0x00>..<0xFF>, then
/// pieces of a few English words (spaces spelled ' '), scores favouring longer pieces.
inline std::pair<std::vector<std::string>, std::vector<float>> sentencepiece_vocabulary() {
  std::vector<std::string> pieces = {"<unk>", "<s>", "</s>"};
  const char* digits = "0123456789ABCDEF";
  for (int byte = 0; byte < 256; ++byte)
    pieces.push_back(std::string("<0x") + digits[byte >> 4] + digits[byte & 15] + ">");
  for (const char* piece :
       {" ", "e", "t", "h", "a", "o", " t", "he", " the", "th", "in", " a", "an", "er", "é", "Ö",
        "\xE2\x96\x81", "  ", " i", " is", "is", "ll", " hello", "hello", "el", "lo", "\xE4\xBD\xA0",
        "\xE4\xBD\xA0\xE5\xA5\xBD"}) {
    pieces.emplace_back(piece);
  }
  std::vector<float> scores(pieces.size(), 0.0f);
  for (std::size_t id = 3 + 256; id < pieces.size(); ++id)
    scores[id] = static_cast<float>(pieces[id].size()) - 0.01f * static_cast<float>(id);
  return {pieces, scores};
}

/// llama2.c tokenizer.bin of `pieces` (default: sentencepiece_vocabulary()): int32 max_token_length, then per token
/// float32 score, int32 len, len bytes.
inline std::string llama2c_tokenizer(const std::vector<std::string>& pieces,
                                     const std::vector<float>& scores) {
  std::size_t longest = 0;
  for (const std::string& piece : pieces) longest = std::max(longest, piece.size());
  ByteWriter w;
  w.i32(static_cast<std::int32_t>(longest));
  for (std::size_t id = 0; id < pieces.size(); ++id) {
    w.f32(scores[id]);
    w.i32(static_cast<std::int32_t>(pieces[id].size()));
    w.bytes += pieces[id];
  }
  return w.bytes;
}

inline std::string llama2c_tokenizer() {
  const auto [pieces, scores] = sentencepiece_vocabulary();
  return llama2c_tokenizer(pieces, scores);
}

/// GPT-2's byte-to-unicode spelling of `byte` (printable bytes stand for themselves, the others
/// for U+0100 + their rank), as UTF-8.
inline std::string byte_level_spelling(unsigned char byte) {
  const auto printable = [](int b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  };
  unsigned code_point = byte;
  if (!printable(byte)) {
    int rank = 0;
    for (int b = 0; b < byte; ++b) rank += printable(b) ? 0 : 1;
    code_point = 256u + static_cast<unsigned>(rank);
  }
  std::string out;
  if (code_point < 0x80) {
    out += static_cast<char>(code_point);
  } else {
    out += static_cast<char>(0xC0 | (code_point >> 6));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  }
  return out;
}

/// A byte-level BPE vocabulary: the 256 one-byte tokens, a few merges ("Ġ" is a space), and two
/// special tokens at the end. Returns tokens, merges and the ids of the special tokens.
struct ByteBpeVocabulary {
  std::vector<std::string> tokens;
  std::vector<std::string> merges;
  std::vector<std::int32_t> special_ids;
};

inline ByteBpeVocabulary byte_bpe_vocabulary() {
  ByteBpeVocabulary v;
  for (int byte = 0; byte < 256; ++byte)
    v.tokens.push_back(byte_level_spelling(static_cast<unsigned char>(byte)));
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"Ġ", "t"}, {"h", "e"}, {"Ġt", "he"}, {"i", "n"}, {"Ġ", "a"}, {"e", "r"}, {"Ġ", "Ġ"},
      {"l", "l"}, {"o", "Ċ"}, {"1", "2"},   {"Ã", "©"}, {"Ġ", "i"}, {"Ġi", "s"}, {"ĠĠ", "Ġ"}};
  for (const auto& [left, right] : merges) {
    v.merges.push_back(left + " " + right);
    v.tokens.push_back(left + right);
  }
  v.special_ids = {static_cast<std::int32_t>(v.tokens.size()),
                   static_cast<std::int32_t>(v.tokens.size() + 1)};
  v.tokens.push_back("<|endoftext|>");
  v.tokens.push_back("<|im_start|>");
  return v;
}

/// A GGUF v3 file with the metadata of a tiny LLaMA (dim 8, 2 heads, 1 layer, ffn 16,
/// context 16), the vocabulary `model` ("llama": sentencepiece_vocabulary(), "gpt2":
/// byte_bpe_vocabulary()), and one F32 tensor per weight of that model plus one F16 tensor.
inline std::string gguf_model(const std::string& model = "llama") {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<std::string> merges;
  std::vector<std::int32_t> types;
  if (model == "llama") {
    std::tie(tokens, scores) = sentencepiece_vocabulary();
    for (std::string& piece : tokens) {
      std::string spelled;
      for (const char c : piece) spelled += c == ' ' ? std::string("\xE2\x96\x81") : std::string(1, c);
      piece = spelled;
    }
  } else {
    ByteBpeVocabulary v = byte_bpe_vocabulary();
    tokens = v.tokens;
    merges = v.merges;
    types.assign(tokens.size(), 1);
    for (const std::int32_t id : v.special_ids) types[static_cast<std::size_t>(id)] = 3;
  }
  const auto vocab = static_cast<std::uint64_t>(tokens.size());

  ByteWriter w;
  std::uint64_t kv_count = 0;
  ByteWriter kv;
  const auto key_u32 = [&](const std::string& name, std::uint32_t value) {
    kv.str(name);
    kv.u32(4);
    kv.u32(value);
    ++kv_count;
  };
  const auto key_f32 = [&](const std::string& name, float value) {
    kv.str(name);
    kv.u32(6);
    kv.f32(value);
    ++kv_count;
  };
  const auto key_str = [&](const std::string& name, const std::string& value) {
    kv.str(name);
    kv.u32(8);
    kv.str(value);
    ++kv_count;
  };
  key_str("general.architecture", "llama");
  key_u32("llama.context_length", 16);
  key_u32("llama.embedding_length", 8);
  key_u32("llama.block_count", 1);
  key_u32("llama.feed_forward_length", 16);
  key_u32("llama.attention.head_count", 2);
  key_u32("llama.attention.head_count_kv", 1);
  key_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  key_f32("llama.rope.freq_base", 10000.0f);
  key_str("tokenizer.ggml.model", model);
  if (model == "gpt2") key_str("tokenizer.ggml.pre", "smollm");
  kv.str("tokenizer.ggml.tokens");
  kv.u32(9);
  kv.u32(8);
  kv.u64(vocab);
  for (const std::string& token : tokens) kv.str(token);
  ++kv_count;
  if (!scores.empty()) {
    kv.str("tokenizer.ggml.scores");
    kv.u32(9);
    kv.u32(6);
    kv.u64(scores.size());
    for (const float score : scores) kv.f32(score);
    ++kv_count;
  }
  if (!merges.empty()) {
    kv.str("tokenizer.ggml.merges");
    kv.u32(9);
    kv.u32(8);
    kv.u64(merges.size());
    for (const std::string& merge : merges) kv.str(merge);
    ++kv_count;
  }
  if (!types.empty()) {
    kv.str("tokenizer.ggml.token_type");
    kv.u32(9);
    kv.u32(5);
    kv.u64(types.size());
    for (const std::int32_t type : types) kv.i32(type);
    ++kv_count;
  }
  key_u32("tokenizer.ggml.bos_token_id", model == "llama" ? 1 : 256 + 14);
  key_u32("tokenizer.ggml.eos_token_id", model == "llama" ? 2 : 256 + 14);

  // Tensors: name, ne (innermost first), ggml type (0 F32, 1 F16).
  struct TensorSpec {
    std::string name;
    std::vector<std::uint64_t> ne;
    std::uint32_t type;
  };
  const std::vector<TensorSpec> specs = {
      {"token_embd.weight", {8, vocab}, 1},       {"blk.0.attn_norm.weight", {8}, 0},
      {"blk.0.attn_q.weight", {8, 8}, 0},         {"blk.0.attn_k.weight", {8, 4}, 0},
      {"blk.0.attn_v.weight", {8, 4}, 0},         {"blk.0.attn_output.weight", {8, 8}, 0},
      {"blk.0.ffn_norm.weight", {8}, 0},          {"blk.0.ffn_gate.weight", {8, 16}, 0},
      {"blk.0.ffn_up.weight", {8, 16}, 0},        {"blk.0.ffn_down.weight", {16, 8}, 0},
      {"output_norm.weight", {8}, 0}};
  std::vector<std::uint64_t> offsets;
  std::uint64_t data_size = 0;
  for (const TensorSpec& spec : specs) {
    std::uint64_t count = 1;
    for (const std::uint64_t extent : spec.ne) count *= extent;
    offsets.push_back(data_size);
    data_size += count * (spec.type == 0 ? 4 : 2);
    data_size = (data_size + 31) / 32 * 32;
  }

  w.bytes += "GGUF";
  w.u32(3);
  w.u64(specs.size());
  w.u64(kv_count);
  w.bytes += kv.bytes;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    w.str(specs[i].name);
    w.u32(static_cast<std::uint32_t>(specs[i].ne.size()));
    for (const std::uint64_t extent : specs[i].ne) w.u64(extent);
    w.u32(specs[i].type);
    w.u64(offsets[i]);
  }
  w.pad(32);
  const std::size_t data_start = w.bytes.size();
  w.bytes.resize(data_start + data_size, '\0');
  for (std::size_t i = 0; i < specs.size(); ++i) {
    std::uint64_t count = 1;
    for (const std::uint64_t extent : specs[i].ne) count *= extent;
    for (std::uint64_t e = 0; e < count; ++e) {
      const std::size_t at = data_start + offsets[i] + e * (specs[i].type == 0 ? 4 : 2);
      if (specs[i].type == 0) {
        const float value = 0.25f * static_cast<float>(e % 5);
        std::uint32_t bits;
        std::memcpy(&bits, &value, 4);
        for (std::size_t b = 0; b < 4; ++b)
          w.bytes[at + b] = static_cast<char>((bits >> (8 * b)) & 0xFFu);
      } else {
        const std::uint16_t half = static_cast<std::uint16_t>(0x3C00 + (e % 7));  // ~1.0
        w.bytes[at] = static_cast<char>(half & 0xFF);
        w.bytes[at + 1] = static_cast<char>(half >> 8);
      }
    }
  }
  return w.bytes;
}

/// A safetensors file (io/safetensors.hpp) with one tensor of each dtype load_f32 converts:
/// "w" F32 [2, 3], "h" F16 [4], "b" BF16 [2, 2], and a "__metadata__" entry.
inline std::string safetensors_file() {
  ByteWriter data;
  for (int i = 0; i < 6; ++i) data.f32(0.5f * static_cast<float>(i) - 1.0f);
  // F16 1, -2, 65504, 2^-24; BF16 1.5, -123.5, 0, 2^-126 (little-endian 16-bit words).
  for (const unsigned bits : {0x3C00u, 0xC000u, 0x7BFFu, 0x0001u, 0x3FC0u, 0xC2F7u, 0x0000u, 0x0080u}) {
    data.u8(static_cast<std::uint8_t>(bits & 0xFFu));
    data.u8(static_cast<std::uint8_t>(bits >> 8));
  }
  std::string header =
      R"({"__metadata__":{"format":"pt"},)"
      R"("w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
      R"("h":{"dtype":"F16","shape":[4],"data_offsets":[24,32]},)"
      R"("b":{"dtype":"BF16","shape":[2,2],"data_offsets":[32,40]}})";
  while (header.size() % 8 != 0) header += ' ';
  ByteWriter file;
  file.u64(header.size());
  return file.bytes + header + data.bytes;
}

/// A LLaMA-3.2-style Hugging Face config.json (rope_scaling llama3, GQA, tied head), with a few
/// escapes and number forms for the JSON reader.
inline std::string hf_config_json() {
  return R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
 "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 8,
 "num_key_value_heads": 2, "head_dim": 8, "vocab_size": 96, "max_position_embeddings": 64,
 "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "tie_word_embeddings": true,
 "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                  "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
 "attention_bias": false, "mlp_bias": false, "torch_dtype": "bfloat16",
 "escapes": "\u00e9\ud83d\ude00\n\t\"", "numbers": [0, -1, 2.5e-3, 1E+2, 9007199254740993]}
)";
}

}  // namespace llamablocks::fuzz
