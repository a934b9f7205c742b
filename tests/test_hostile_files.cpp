// Hostile model and vocabulary files, and the regressions found by the fuzzers of tests/fuzz and by
// reading the readers for them. The per-format tests (test_gguf.cpp, test_llama2c_checkpoint.cpp,
// test_sentencepiece_tokenizer.cpp) already cover truncation at every byte, counts of 2^63,
// negative and huge dims, offsets past the end and bad header fields; this file adds what they do
// not: the fuzzers' seed files themselves, configs that contradict the tensors, headers claiming
// 10^12 elements, truncation at every section boundary of a whole model file, and vocabularies
// whose tokens would not decode back to the text that was encoded.
#include "../examples/llama2/gguf_loader.hpp"
#include "fuzz/seeds.hpp"
#include "support/temp_dir.hpp"

#include <llamablocks/io/llama2c_checkpoint.hpp>
#include <llamablocks/text/byte_bpe_tokenizer.hpp>
#include <llamablocks/text/sentencepiece_tokenizer.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

using namespace llamablocks;
using Catch::Matchers::Contains;
using llamablocks::test::TempDir;
using llamablocks::test::write_file;

namespace {

/// Runs `read` and requires an Error whose message contains the path and every part.
template <class Error, class Read>
void require_refused(Read read, const std::string& path, const std::vector<std::string>& parts) {
  try {
    read();
    FAIL("accepted a hostile file, expected an error mentioning " << parts.front());
  } catch (const Error& e) {
    const std::string message = e.what();
    INFO(message);
    if (!path.empty()) CHECK_THAT(message, Contains(path));
    for (const std::string& part : parts) CHECK_THAT(message, Contains(part));
  }
}

/// Overwrites the little-endian uint64 at `offset` of `bytes`.
void patch_u64(std::string& bytes, std::size_t offset, std::uint64_t value) {
  for (std::size_t i = 0; i < 8; ++i) bytes[offset + i] = static_cast<char>((value >> (8 * i)) & 0xFF);
}

/// The offset of the value of metadata key `key` (after its type) in a GGUF file.
std::size_t value_offset(const std::string& bytes, const std::string& key) {
  const std::size_t at = bytes.find(key);
  REQUIRE(at != std::string::npos);
  return at + key.size() + 4;
}

}  // namespace

TEST_CASE("The fuzzers' seed files are valid and round-trip", "[hostile][fuzz]") {
  TempDir dir("llamablocks_hostile_");
  SECTION("llama2.c checkpoint, tied and untied") {
    for (const std::int32_t vocab : {5, -5}) {
      const std::string path = dir.file("seed.bin");
      write_file(path, fuzz::llama2c_checkpoint(vocab));
      const auto checkpoint = Llama2cCheckpoint::read(path);
      CHECK(checkpoint.config().vocab_size == 5);
      CHECK(checkpoint.tied_output() == (vocab > 0));
    }
  }
  SECTION("tokenizer.bin") {
    const std::string path = dir.file("tokenizer.bin");
    write_file(path, fuzz::llama2c_tokenizer());
    const auto tokenizer = SentencePieceTokenizer::from_llama2c_file(path, 0);
    const std::string text = "hello the world \xFF\x80 caf\xC3\xA9";
    const auto ids = tokenizer.encode(text, true, true);
    CHECK(tokenizer.decode(ids) == text);
  }
  SECTION("GGUF with each vocabulary: config, tensors, tokenizer") {
    for (const std::string model : {"llama", "gpt2"}) {
      const std::string path = dir.file(model + ".gguf");
      write_file(path, fuzz::gguf_model(model));
      const auto file = io::GgufFile::open(path);
      const ModelConfig config = io::config_from_gguf(file);
      CHECK(config.head_dim == 4);
      CHECK(file.load_f32<2>("token_embd.weight", {config.vocab_size, 8}).size() ==
            config.vocab_size * 8);
      const auto tokenizer = llama2::load_gguf_tokenizer(file);
      CHECK(tokenizer->model() == model);
      const std::string text = "<|im_start|>the hello\n\t12 \xC3\xA9\xFF";
      CHECK(tokenizer->decode(tokenizer->encode(text, tokenizer->add_bos(), false)) == text);
    }
  }
}

TEST_CASE("GGUF: a config that contradicts the tensors is refused before any allocation",
          "[hostile][gguf]") {
  TempDir dir("llamablocks_hostile_");
  const std::string path = dir.file("model.gguf");
  const std::string good = fuzz::gguf_model("llama");
  const auto refused = [&](std::string bytes, const std::vector<std::string>& parts) {
    write_file(path, bytes);
    const auto file = io::GgufFile::open(path);
    require_refused<format_error>([&] { io::config_from_gguf(file); }, path, parts);
  };
  const auto with_u32 = [&](const std::string& key, std::uint32_t value) {
    std::string bytes = good;
    const std::size_t at = value_offset(bytes, key);
    for (std::size_t i = 0; i < 4; ++i) bytes[at + i] = static_cast<char>((value >> (8 * i)) & 0xFF);
    return bytes;
  };
  SECTION("n_heads does not divide dim") {
    refused(with_u32("llama.attention.head_count", 3),
            {"llama.attention.head_count = 3 does not divide llama.embedding_length = 8"});
  }
  SECTION("dim against the tensors' shapes") {
    refused(with_u32("llama.embedding_length", 16),
            {"tensor 'token_embd.weight' has shape [287, 8]", "dim = 16"});
  }
  SECTION("n_kv_heads against attn_k") {
    refused(with_u32("llama.attention.head_count_kv", 2),
            {"tensor 'blk.0.attn_k.weight' has shape [4, 8]", "n_kv_heads * head_dim = 8"});
  }
  SECTION("ffn_hidden_dim against ffn_gate") {
    refused(with_u32("llama.feed_forward_length", 4096),
            {"tensor 'blk.0.ffn_gate.weight'", "ffn_hidden_dim = 4096"});
  }
  SECTION("a block_count of 10^9 with one block of tensors") {
    refused(with_u32("llama.block_count", 1000000000),
            {"block_count = 1000000000", "no tensor 'blk.999999999.attn_norm.weight'"});
  }
  SECTION("a negative dim is refused by the config") {
    write_file(path, with_u32("llama.embedding_length", static_cast<std::uint32_t>(-8)));
    const auto file = io::GgufFile::open(path);
    // uint32 0xFFFFFFF8 read as an integer is 4294967288: n_heads 2 divides it, the shapes do not.
    require_refused<format_error>([&] { io::config_from_gguf(file); }, path,
                                  {"token_embd.weight", "dim = 4294967288"});
  }
}

TEST_CASE("GGUF: a whole model file truncated at every section boundary", "[hostile][gguf]") {
  TempDir dir("llamablocks_hostile_");
  const std::string path = dir.file("cut.gguf");
  const std::string good = fuzz::gguf_model("llama");
  write_file(path, good);
  const auto file = io::GgufFile::open(path);
  // Boundaries: the header fields, the start of the metadata, of the tensor infos (the first
  // tensor name), of the data section and of each tensor's data, and one byte before the end.
  std::vector<std::size_t> cuts = {0, 4, 8, 16, 24};
  cuts.push_back(good.find("token_embd.weight") - 8);
  cuts.push_back(static_cast<std::size_t>(file.data_offset()));
  for (const io::GgufTensorInfo& info : file.tensors())
    cuts.push_back(static_cast<std::size_t>(file.data_offset() + info.offset));
  cuts.push_back(good.size() - 1);
  for (const std::size_t cut : cuts) {
    INFO("truncated to " << cut << " of " << good.size() << " bytes");
    write_file(path, good.substr(0, cut));
    require_refused<format_error>([&] { io::GgufFile::open(path); }, path, {"GGUF"});
  }
}

TEST_CASE("GGUF: a count of 2^63 and a tensor of 10^12 elements are refused without allocating",
          "[hostile][gguf]") {
  TempDir dir("llamablocks_hostile_");
  const std::string path = dir.file("huge.gguf");
  const std::string good = fuzz::gguf_model("llama");
  SECTION("a vocabulary of 2^63 tokens") {
    std::string bytes = good;
    patch_u64(bytes, value_offset(bytes, "tokenizer.ggml.tokens") + 4, 1ull << 63);
    write_file(path, bytes);
    require_refused<format_error>([&] { io::GgufFile::open(path); }, path,
                                  {"tokenizer.ggml.tokens", "array count 9223372036854775808"});
  }
  SECTION("a token embedding of 10^12 elements") {
    std::string bytes = good;
    const std::size_t ne = bytes.find("token_embd.weight") + 17 + 4;
    patch_u64(bytes, ne, 1000000);
    patch_u64(bytes, ne + 8, 1000000);
    write_file(path, bytes);
    require_refused<format_error>([&] { io::GgufFile::open(path); }, path,
                                  {"tensor 'token_embd.weight'", "runs past the end of the file"});
  }
}

TEST_CASE("llama2.c checkpoint: a header claiming 10^12 floats is refused by the file size",
          "[hostile][llama2c]") {
  TempDir dir("llamablocks_hostile_");
  const std::string path = dir.file("huge.bin");
  fuzz::ByteWriter w;
  for (const std::int32_t field : {1 << 20, 64, 1, 16, 16, 1 << 20, 16}) w.i32(field);
  w.bytes += std::string(4096, '\0');
  write_file(path, w.bytes);
  require_refused<format_error>([&] { Llama2cCheckpoint::read(path); }, path,
                                {"file size 4124 bytes, expected", "too short"});
}

TEST_CASE("SentencePiece vocabularies whose byte tokens could not round-trip are refused",
          "[hostile][tokenizer]") {
  auto [pieces, scores] = fuzz::sentencepiece_vocabulary();
  SECTION("BOS or EOS is a byte token: encode would emit a token that decodes to nothing") {
    // fuzz_tokenizer_bin, crash-8417122d: a tokenizer.bin whose token 1 (BOS) is "<0x00>", so the
    // byte 0 was encoded as BOS and decoded to nothing. Such a vocabulary is now refused.
    TempDir dir("llamablocks_hostile_");
    const std::string path = dir.file("tokenizer.bin");
    auto with_bos_byte = pieces;
    with_bos_byte[1] = "<0x00>";
    with_bos_byte[3] = "<0x41>";  // the old "<0x00>"
    with_bos_byte[3 + 0x41] = "A";
    write_file(path, fuzz::llama2c_tokenizer(with_bos_byte, scores));
    require_refused<format_error>([&] { SentencePieceTokenizer::from_llama2c_file(path, 0); }, path,
                                  {"byte token '<0x00>' (id 1) is also the bos_id"});
    auto bad = pieces;
    bad[1] = "<0x41>";
    require_refused<config_error>([&] { SentencePieceTokenizer(bad, scores, 1, 2, 0); }, "",
                                  {"byte token '<0x41>'", "bos_id"});
    bad = pieces;
    bad[2] = "<0x41>";
    require_refused<config_error>([&] { SentencePieceTokenizer(bad, scores, 1, 2, 0); }, "",
                                  {"byte token '<0x41>'", "eos_id"});
  }
  SECTION("a byte token twice") {
    auto bad = pieces;
    bad.back() = "<0x41>";
    require_refused<config_error>([&] { SentencePieceTokenizer(bad, scores, 1, 2, 0); }, "",
                                  {"byte token '<0x41>' appears twice"});
  }
  SECTION("the unknown token may be a byte token: it decodes to its byte") {
    auto good = pieces;
    good[0] = "<0x41>";
    good[3 + 0x41] = "A";
    const SentencePieceTokenizer tokenizer(good, scores, 1, 2, 0);
    CHECK(tokenizer.decode(tokenizer.encode("BAB", false, false)) == "BAB");
  }
}

TEST_CASE("Byte-level BPE vocabularies whose tokens could not round-trip are refused or bypassed",
          "[hostile][tokenizer]") {
  fuzz::ByteBpeVocabulary v = fuzz::byte_bpe_vocabulary();
  const auto unk = static_cast<std::int32_t>(v.tokens.size() - 1);
  SECTION("a merge whose result is a special token (fuzz_gguf_vocab, crash-5a344369)") {
    // The fuzzer set the GGUF token_type of "Ã©" (the merge "Ã ©", bytes 0xC3 0xA9 = "é") to 3,
    // control: a special token decodes to its own text, so "é" came back as "Ã©" (0xC3 0x83 0xC2
    // 0xA9). Such a vocabulary is now refused.
    std::vector<std::int32_t> specials = v.special_ids;
    for (std::size_t id = 0; id < v.tokens.size(); ++id)
      if (v.tokens[id] == "Ã©") specials.push_back(static_cast<std::int32_t>(id));
    REQUIRE(specials.size() == v.special_ids.size() + 1);
    require_refused<config_error>(
        [&] {
          ByteBpeTokenizer(v.tokens, v.merges, 0, 0, PreTokenizer::gpt2, specials);
        },
        "", {"merges[10] = 'Ã ©'", "does not decode to the bytes of its parts"});
  }
  SECTION("a merge of two halves of one UTF-8 character") {
    v.tokens.push_back("\xC4");
    v.tokens.push_back("\xA0");
    v.merges.insert(v.merges.begin(), "\xC4 \xA0");  // "Ġ": decodes to ' ', not 0xC4 0xA0
    require_refused<config_error>(
        [&] { ByteBpeTokenizer(v.tokens, v.merges, 0, 0, PreTokenizer::gpt2); }, "",
        {"merges[0]", "does not decode to the bytes of its parts"});
  }
  SECTION("a special token spelled like a byte does not stand for that byte") {
    // "Ġ" (the space's token) made special decodes to "Ġ"; the space then has no token.
    std::vector<std::int32_t> specials = v.special_ids;
    std::int32_t space_id = -1;
    for (std::size_t id = 0; id < 256; ++id)
      if (v.tokens[id] == "Ġ") space_id = static_cast<std::int32_t>(id);
    REQUIRE(space_id >= 0);
    specials.push_back(space_id);
    std::vector<std::string> merges;  // the sample merges start from "Ġ"
    for (const std::string& merge : v.merges)
      if (merge.find("Ġ") == std::string::npos) merges.push_back(merge);
    for (const bool ignore_merges : {false, true}) {
      INFO("ignore_merges " << ignore_merges);
      const ByteBpeTokenizer with_unk(v.tokens, merges, 0, 0, PreTokenizer::gpt2, specials, unk,
                                      ignore_merges);
      CHECK(with_unk.encode("a b", false, false) ==
            std::vector<std::int32_t>{with_unk.encode("a", false, false)[0], unk,
                                      with_unk.encode("b", false, false)[0]});
      CHECK(with_unk.decode(with_unk.encode("\xC4\xA0", false, false)) == "\xC4\xA0");
      const ByteBpeTokenizer without_unk(v.tokens, merges, 0, 0, PreTokenizer::gpt2, specials,
                                         ByteBpeTokenizer::no_unk_id, ignore_merges);
      CHECK_THROWS_AS(without_unk.encode("a b", false, false), range_error);
    }
  }
}

TEST_CASE("A vocabulary refused by a tokenizer is a format_error naming the file",
          "[hostile][tokenizer]") {
  TempDir dir("llamablocks_hostile_");
  SECTION("tokenizer.bin with a byte token twice") {
    const std::string path = dir.file("tokenizer.bin");
    std::string bytes = fuzz::llama2c_tokenizer();
    // Token 3 is "<0x00>"; rename token 4 ("<0x01>", same length) to it.
    const std::size_t at = bytes.find("<0x01>");
    REQUIRE(at != std::string::npos);
    bytes.replace(at, 6, "<0x00>");
    write_file(path, bytes);
    require_refused<format_error>([&] { SentencePieceTokenizer::from_llama2c_file(path, 0); }, path,
                                  {"byte token '<0x00>' appears twice, as id 3 and id 4"});
  }
  SECTION("GGUF gpt2 vocabulary whose merge result is a control token (fuzz_gguf_vocab)") {
    const std::string path = dir.file("vocab.gguf");
    std::string bytes = fuzz::gguf_model("gpt2");
    // token_type is an int32 array, one per token: set the type of token 266 ("Ã©") to 3.
    const std::size_t types = value_offset(bytes, "tokenizer.ggml.token_type") + 4 + 8;
    bytes[types + 4 * 266] = 3;
    write_file(path, bytes);
    const auto file = io::GgufFile::open(path);
    require_refused<format_error>([&] { llama2::load_gguf_tokenizer(file); }, path,
                                  {"tokenizer: ByteBpeTokenizer: merges[10] = 'Ã ©'"});
  }
}
