// io::SafetensorsFile, io::config_from_hf_json and io::HfCheckpoint: values decoded from known bit
// patterns (F32, F16, BF16, chunked widening of a large tensor), the golden Hugging Face folders
// written by tests/golden/make_generation_golden.py, and every refusal of a malformed file.
#include "llamablocks/io/hf_checkpoint.hpp"

#include "support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

using namespace llamablocks;
using Catch::Matchers::Contains;

namespace {

/// The bytes of a safetensors file: uint64 header length, the header, the data.
std::string safetensors_bytes(const std::string& header, const std::string& data) {
  std::string bytes(8, '\0');
  std::uint64_t length = header.size();
  for (int i = 0; i < 8; ++i) bytes[static_cast<std::size_t>(i)] = static_cast<char>((length >> (8 * i)) & 0xFF);
  return bytes + header + data;
}

std::string u16_bytes(const std::vector<std::uint16_t>& values) {
  std::string bytes;
  for (std::uint16_t v : values) {
    bytes += static_cast<char>(v & 0xFF);
    bytes += static_cast<char>(v >> 8);
  }
  return bytes;
}

std::string f32_bytes(const std::vector<float>& values) {
  std::string bytes;
  for (float v : values) {
    std::uint32_t bits;
    std::memcpy(&bits, &v, 4);
    for (int i = 0; i < 4; ++i) bytes += static_cast<char>((bits >> (8 * i)) & 0xFF);
  }
  return bytes;
}

/// Writes a one-tensor file and returns the error message of opening it ("" when it opens).
std::string open_error(const test::TempDir& dir, const std::string& header, const std::string& data) {
  const std::string path = dir.file("bad.safetensors");
  test::write_file(path, safetensors_bytes(header, data));
  try {
    io::SafetensorsFile::open(path);
  } catch (const format_error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("safetensors: F32, F16 and BF16 values from known bit patterns", "[safetensors]") {
  const test::TempDir dir("llamablocks_safetensors_");
  const std::string f32 = f32_bytes({1.0f, -2.5f, 3.25f, 1e-30f, 0.0f, 7.0f});
  // F16: 1, -2, 65504 (largest), 2^-24 (smallest subnormal); BF16: 1.5, -123.5, 0, 2^-126.
  const std::string f16 = u16_bytes({0x3C00, 0xC000, 0x7BFF, 0x0001});
  const std::string bf16 = u16_bytes({0x3FC0, 0xC2F7, 0x0000, 0x0080});
  const std::string header =
      R"({"__metadata__":{"format":"pt","note":"x"},)"
      R"("a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
      R"("h":{"dtype":"F16","shape":[4],"data_offsets":[24,32]},)"
      R"("b":{"dtype":"BF16","shape":[2,2],"data_offsets":[32,40]}})";
  const std::string path = dir.file("values.safetensors");
  test::write_file(path, safetensors_bytes(header, f32 + f16 + bf16));
  const auto file = io::SafetensorsFile::open(path);
  CHECK(file.metadata().at("format") == "pt");
  CHECK(file.tensors().size() == 3);
  CHECK(file.data_offset() == 8 + header.size());

  const auto a_tensor = file.load_f32<2>("a", {2, 3});
  const auto a = a_tensor.cview();
  CHECK(a(0, 0) == 1.0f);
  CHECK(a(0, 1) == -2.5f);
  CHECK(a(1, 0) == 1e-30f);
  CHECK(a(1, 2) == 7.0f);
  const auto h_tensor = file.load_f32<1>("h", {4});
  const auto h = h_tensor.cview();
  CHECK(h(0) == 1.0f);
  CHECK(h(1) == -2.0f);
  CHECK(h(2) == 65504.0f);
  CHECK(h(3) == 0x1p-24f);
  const auto b_tensor = file.load_f32<2>("b", {2, 2});
  const auto b = b_tensor.cview();
  CHECK(b(0, 0) == 1.5f);
  CHECK(b(0, 1) == -123.5f);
  CHECK(b(1, 0) == 0.0f);
  CHECK(b(1, 1) == 0x1p-126f);

  CHECK_THROWS_AS(file.load_f32<2>("a", {3, 2}), shape_error);
  CHECK_THROWS_WITH(file.load_f32<1>("a", {6}), Contains("tensor 'a' has shape [2, 3] (F32), expected [6]"));
  CHECK_THROWS_WITH(file.load_f32<1>("nope", {1}), Contains("no tensor named 'nope'"));
}

TEST_CASE("safetensors: a BF16 tensor larger than one conversion chunk", "[safetensors]") {
  const test::TempDir dir("llamablocks_safetensors_");
  const std::int64_t count = 600001;  // > 2 chunks of 2^18, not a multiple
  std::vector<std::uint16_t> bits(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) {
    const float value = static_cast<float>(i % 251) - 125.0f;  // exact in bf16
    std::uint32_t word;
    std::memcpy(&word, &value, 4);
    bits[static_cast<std::size_t>(i)] = static_cast<std::uint16_t>(word >> 16);
  }
  const std::string header = R"({"w":{"dtype":"BF16","shape":[600001],"data_offsets":[0,1200002]}})";
  const std::string path = dir.file("big.safetensors");
  test::write_file(path, safetensors_bytes(header, u16_bytes(bits)));
  const auto w_tensor = io::SafetensorsFile::open(path).load_f32<1>("w", {count});
  const auto w = w_tensor.cview();
  std::int64_t wrong = 0;
  for (std::int64_t i = 0; i < count; ++i)
    wrong += w(i) != static_cast<float>(i % 251) - 125.0f;
  CHECK(wrong == 0);
}

TEST_CASE("safetensors: the golden Hugging Face folder is read as written", "[safetensors][golden]") {
  const auto file = io::SafetensorsFile::open(std::string(LLAMABLOCKS_GOLDEN_DIR) +
                                              "/hf_gqa_untied/model.safetensors");
  CHECK(file.metadata().at("format") == "pt");
  CHECK(file.tensors().size() == 2 * 9 + 3);
  const io::SafetensorsTensorInfo& q = file.tensor("model.layers.1.self_attn.q_proj.weight");
  CHECK(q.dtype == "F32");
  CHECK(q.shape == std::vector<index_t>{64, 64});
  CHECK(file.tensor("model.layers.0.self_attn.k_proj.weight").shape == std::vector<index_t>{16, 64});
}

TEST_CASE("safetensors: malformed files are refused with the field and value", "[safetensors]") {
  const test::TempDir dir("llamablocks_safetensors_");
  const std::string four = f32_bytes({1, 2, 3, 4});
  auto entry = [](const std::string& body) { return "{\"t\":{" + body + "}}"; };

  CHECK(open_error(dir, entry(R"("dtype":"F32","shape":[4],"data_offsets":[0,16])"), four).empty());
  CHECK_THAT(open_error(dir, "[1]", four), Contains("header must be a JSON object, got array"));
  CHECK_THAT(open_error(dir, entry(R"("shape":[4],"data_offsets":[0,16])"), four),
             Contains("tensor 't' has no \"dtype\""));
  CHECK_THAT(open_error(dir, entry(R"("dtype":"Q4","shape":[4],"data_offsets":[0,16])"), four),
             Contains("tensor 't' has unknown dtype 'Q4'"));
  CHECK_THAT(open_error(dir, entry(R"("dtype":"F32","shape":[-4],"data_offsets":[0,16])"), four),
             Contains("shape must hold integers >= 0"));
  CHECK_THAT(open_error(dir, entry(R"("dtype":"F32","shape":[2.5],"data_offsets":[0,16])"), four),
             Contains("shape must hold integers >= 0, got 2.5"));
  CHECK_THAT(open_error(dir, entry(R"("dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16])"), four),
             Contains("overflows int64"));
  CHECK_THAT(open_error(dir, entry(R"("dtype":"F32","shape":[4],"data_offsets":[0])"), four),
             Contains("data_offsets must be an array [begin, end]"));
  CHECK_THAT(open_error(dir, entry(R"("dtype":"F32","shape":[4],"data_offsets":[0,32])"), four),
             Contains("data_offsets [0, 32] do not lie inside the 16-byte data buffer"));
  CHECK_THAT(open_error(dir, entry(R"("dtype":"F32","shape":[4],"data_offsets":[16,0])"), four),
             Contains("data_offsets [16, 0]"));
  CHECK_THAT(open_error(dir, entry(R"("dtype":"F32","shape":[3],"data_offsets":[0,16])"), four),
             Contains("holds 16 bytes, but shape [3] of F32 needs 3 x 4"));
  CHECK_THAT(open_error(dir, entry(R"("dtype":"F32","shape":[2],"data_offsets":[8,16])"), four),
             Contains("begin at 8 where byte 0 is expected (gap)"));
  CHECK_THAT(open_error(dir, entry(R"("dtype":"F32","shape":[2],"data_offsets":[0,8])"), four),
             Contains("tensors cover 8 bytes of the 16-byte data buffer"));
  CHECK_THAT(open_error(dir,
                        R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                        R"("u":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                        four),
             Contains("where byte 16 is already used (overlap)"));
  CHECK_THAT(open_error(dir, R"({"__metadata__":{"n":1}})", ""),
             Contains("__metadata__ 'n' must be a string, got number"));
  CHECK_THAT(open_error(dir, "{\"t\":", four), Contains("JSON line 1"));

  // Lengths in the first 8 bytes.
  const std::string path = dir.file("len.safetensors");
  test::write_file(path, std::string("\x10\x00\x00", 3));
  CHECK_THROWS_WITH(io::SafetensorsFile::open(path), Contains("3 bytes is too short"));
  test::write_file(path, std::string("\xff\xff\xff\xff\xff\xff\xff\x7f{}", 10));
  CHECK_THROWS_WITH(io::SafetensorsFile::open(path),
                    Contains("header length 9223372036854775807 exceeds the format's limit"));
  test::write_file(path, std::string("\x40\x00\x00\x00\x00\x00\x00\x00{}", 10));
  CHECK_THROWS_WITH(io::SafetensorsFile::open(path),
                    Contains("header length 64 runs past the end of the 10-byte file"));
  CHECK_THROWS_WITH(io::SafetensorsFile::open(dir.file("absent.safetensors")),
                    Contains("absent.safetensors': cannot open"));
  CHECK_THROWS_WITH(io::SafetensorsFile::open(dir.file("")), Contains("is not a regular file"));

  // A dtype that load_f32 does not convert.
  const std::string ints = dir.file("ints.safetensors");
  test::write_file(ints, safetensors_bytes(R"({"i":{"dtype":"I32","shape":[4],"data_offsets":[0,16]}})", four));
  CHECK_THROWS_WITH(io::SafetensorsFile::open(ints).load_f32<1>("i", {4}),
                    Contains("has dtype I32, which load_f32 cannot convert"));
}

namespace {

const char* const llama3_config = R"({
  "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
  "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
  "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64, "vocab_size": 128256,
  "max_position_embeddings": 131072, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
  "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "tie_word_embeddings": true, "attention_bias": false, "mlp_bias": false, "torch_dtype": "bfloat16"
})";

ModelConfig hf_config(const std::string& text) {
  return io::config_from_hf_json(io::parse_json(text, "config.json"), "config.json");
}

/// llama3_config with `from` replaced by `to`.
std::string edited(const std::string& from, const std::string& to) {
  std::string text = llama3_config;
  const auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

}  // namespace

TEST_CASE("hf config: a LLaMA-3.2-1B config.json", "[safetensors][config]") {
  const ModelConfig c = hf_config(llama3_config);
  CHECK(c.dim == 2048);
  CHECK(c.n_layers == 16);
  CHECK(c.n_heads == 32);
  CHECK(c.n_kv_heads == 8);
  CHECK(c.head_dim == 64);
  CHECK(c.ffn_hidden_dim == 8192);
  CHECK(c.vocab_size == 128256);
  CHECK(c.max_seq_len == 131072);
  CHECK(c.norm_eps == 1e-5);
  CHECK(c.rope_theta == 500000.0);
  CHECK(c.rope_layout == RopeLayout::half_split);
  CHECK(c.rope_scaling.type == RopeScaling::Type::llama3);
  CHECK(c.rope_scaling.factor == 32.0);
  CHECK(c.rope_scaling.original_max_position_embeddings == 8192);

  // LLaMA-2-era files: no head_dim, no num_key_value_heads, no rope_theta.
  const ModelConfig old = hf_config(R"({"model_type": "llama", "hidden_size": 4096,
      "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
      "vocab_size": 32000, "max_position_embeddings": 4096, "rms_norm_eps": 1e-06})");
  CHECK(old.head_dim == 128);
  CHECK(old.n_kv_heads == 32);
  CHECK(old.rope_theta == 10000.0);
  CHECK(old.rope_scaling.type == RopeScaling::Type::none);
  CHECK(hf_config(edited(R"("rope_type": "llama3")", R"("type": "linear")")).rope_scaling.type ==
        RopeScaling::Type::linear);
}

TEST_CASE("hf config: what cannot be computed is refused by name", "[safetensors][config]") {
  CHECK_THROWS_WITH(hf_config(edited(R"("model_type": "llama")", R"("model_type": "mistral")")),
                    Contains("config.json: \"model_type\" is 'mistral'; only 'llama' is supported"));
  CHECK_THROWS_WITH(hf_config(edited(R"("hidden_act": "silu")", R"("hidden_act": "gelu")")),
                    Contains("\"hidden_act\" is 'gelu'"));
  CHECK_THROWS_WITH(hf_config(edited(R"("attention_bias": false)", R"("attention_bias": true)")),
                    Contains("\"attention_bias\" is true"));
  CHECK_THROWS_WITH(hf_config(edited(R"("rms_norm_eps": 1e-05, )", "")),
                    Contains("\"rms_norm_eps\" is missing"));
  CHECK_THROWS_WITH(hf_config(edited(R"("hidden_size": 2048)", R"("hidden_size": "2048")")),
                    Contains("\"hidden_size\" must be an integer, got a string"));
  CHECK_THROWS_WITH(hf_config(edited(R"("num_hidden_layers": 16)", R"("num_hidden_layers": 16.5)")),
                    Contains("\"num_hidden_layers\" must be an integer, got 16.5"));
  CHECK_THROWS_WITH(hf_config(edited(R"("rope_type": "llama3")", R"("rope_type": "yarn")")),
                    Contains("rope_scaling: \"rope_type\" is 'yarn'"));
  // 2048 / 30 is no whole head when head_dim is not given.
  std::string uneven = edited(R"("head_dim": 64, )", "");
  uneven.replace(uneven.find("\"num_attention_heads\": 32"), 25, "\"num_attention_heads\": 30");
  CHECK_THROWS_WITH(hf_config(uneven),
                    Contains("\"num_attention_heads\" (30) does not divide hidden_size (2048)"));
}

TEST_CASE("hf checkpoint: folders that do not hold what they say are refused", "[safetensors]") {
  const test::TempDir dir("llamablocks_hf_");
  const std::string golden = std::string(LLAMABLOCKS_GOLDEN_DIR) + "/hf_mqa_tied_3layers/";
  const auto copy = [&](const std::string& name) {
    std::ifstream in(golden + name, std::ios::binary);
    REQUIRE(in.is_open());
    test::write_file(dir.file(name), std::string(std::istreambuf_iterator<char>(in), {}));
  };
  CHECK_THROWS_WITH(io::HfCheckpoint::open(dir.file("")), Contains("config.json': cannot open"));
  copy("config.json");
  CHECK_THROWS_WITH(io::HfCheckpoint::open(dir.file("")),
                    Contains("has neither model.safetensors nor model.safetensors.index.json"));
  copy("model-00001-of-00002.safetensors");
  copy("model-00002-of-00002.safetensors");
  const auto write_index = [&](const std::string& weight_map) {
    test::write_file(dir.file("model.safetensors.index.json"),
                     "{\"metadata\": {}, \"weight_map\": {" + weight_map + "}}");
  };
  write_index(R"("model.norm.weight": "../model-00001-of-00002.safetensors")");
  CHECK_THROWS_WITH(io::HfCheckpoint::open(dir.file("")),
                    Contains("'../model-00001-of-00002.safetensors' is not a file name in the checkpoint folder"));
  // model.embed_tokens.weight is in the first shard (the script deals names out in turn).
  write_index(R"("model.embed_tokens.weight": "model-00002-of-00002.safetensors")");
  CHECK_THROWS_WITH(io::HfCheckpoint::open(dir.file("")),
                    Contains("weight_map says 'model.embed_tokens.weight' is in "
                             "model-00002-of-00002.safetensors, which does not hold it"));
  write_index(R"("model.embed_tokens.weight": 3)");
  CHECK_THROWS_WITH(io::HfCheckpoint::open(dir.file("")), Contains("must be a string"));

  copy("model.safetensors.index.json");
  const auto checkpoint = io::HfCheckpoint::open(dir.file(""));
  CHECK(checkpoint.shards().size() == 2);
  CHECK(checkpoint.tied_output());
  CHECK_THROWS_WITH(checkpoint.load_f32<1>("lm_head.weight", {32}), Contains("no tensor named 'lm_head.weight'"));
  CHECK_THROWS_AS(checkpoint.load_f32<2>("model.norm.weight", {1, 32}), shape_error);
}

TEST_CASE("hf checkpoint: a config.json that contradicts the tensors is refused at open",
          "[safetensors]") {
  const test::TempDir dir("llamablocks_hf_");
  const std::string golden = std::string(LLAMABLOCKS_GOLDEN_DIR) + "/hf_gqa_untied/";
  std::ifstream in(golden + "model.safetensors", std::ios::binary);
  REQUIRE(in.is_open());
  test::write_file(dir.file("model.safetensors"), std::string(std::istreambuf_iterator<char>(in), {}));
  std::ifstream config_in(golden + "config.json");
  const std::string config((std::istreambuf_iterator<char>(config_in)), {});
  const auto open_with = [&](const std::string& from, const std::string& to) {
    std::string text = config;
    const auto at = text.find(from);
    REQUIRE(at != std::string::npos);
    test::write_file(dir.file("config.json"), text.replace(at, from.size(), to));
    return io::HfCheckpoint::open(dir.file(""));
  };
  CHECK_NOTHROW(open_with("\"hidden_size\": 64", "\"hidden_size\": 64"));
  CHECK_THROWS_WITH(open_with("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3"),
                    Contains("says 3 layers, but there is no tensor 'model.layers.2.input_layernorm.weight'"));
  CHECK_THROWS_WITH(open_with("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1"),
                    Contains("says 1 layers, but there is a tensor 'model.layers.1.input_layernorm.weight'"));
  CHECK_THROWS_WITH(open_with("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1000000000000"),
                    Contains("no tensor 'model.layers.999999999999.input_layernorm.weight'"));
  CHECK_THROWS_WITH(open_with("\"intermediate_size\": 96", "\"intermediate_size\": 128"),
                    Contains("tensor 'model.layers.0.mlp.gate_proj.weight' has shape [96, 64], but "
                             "config.json implies [128, 64]"));
  CHECK_THROWS_WITH(open_with("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 4"),
                    Contains("'model.layers.0.self_attn.k_proj.weight' has shape [16, 64], but "
                             "config.json implies [32, 64]"));
}
