// Llama2cCheckpoint (io/llama2c_checkpoint.hpp), the reader of llama2.c's legacy .bin format, on
// synthetic files: the header becomes the right ModelConfig, every weight is found at its offset
// and borrowed from the one buffer (never copied, also not when a Parameter adopts it), and hostile
// files (truncated at every 4 bytes, one byte short or long, each header field zero, negative or
// huge, shapes that do not divide) are refused with a format_error naming the file and the field.
#include "support/temp_dir.hpp"
#include <llamablocks/io/llama2c_checkpoint.hpp>
#include <llamablocks/llamablocks.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace llamablocks;
namespace fs = std::filesystem;

using llamablocks::test::TempDir;
using llamablocks::test::write_file;

void append_i32(std::string& bytes, std::int32_t value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  for (int i = 0; i < 4; ++i) bytes += static_cast<char>((bits >> (8 * i)) & 0xFFu);
}

void append_f32(std::string& bytes, float value) {
  std::int32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  append_i32(bytes, bits);
}

using Header = std::array<std::int32_t, 7>;  // dim, hidden_dim, n_layers, n_heads, n_kv_heads,
                                             // vocab_size, max_seq_len

/// Floats in the file for a header, llama2.c's layout.
std::int64_t float_count(const Header& h) {
  const std::int64_t dim = h[0], hidden = h[1], layers = h[2], heads = h[3], kv_heads = h[4];
  const std::int64_t vocab = h[5] < 0 ? -static_cast<std::int64_t>(h[5]) : h[5];
  const std::int64_t head_dim = dim / heads;
  std::int64_t count = vocab * dim;
  count += layers * (2 * dim + 2 * dim * dim + 2 * dim * kv_heads * head_dim + 3 * dim * hidden);
  count += dim + 2 * h[6] * (head_dim / 2);
  if (h[5] < 0) count += vocab * dim;
  return count;
}

/// A checkpoint whose i-th float is i (exact in float32 for these small files).
std::string make_checkpoint(const Header& h) {
  std::string bytes;
  for (const std::int32_t field : h) append_i32(bytes, field);
  const std::int64_t count = float_count(h);
  for (std::int64_t i = 0; i < count; ++i) append_f32(bytes, static_cast<float>(i));
  return bytes;
}

// dim 8, hidden 12, 2 layers, 4 heads (head_dim 2), 2 kv heads, vocab 5, max_seq_len 3.
constexpr Header tiny_tied = {8, 12, 2, 4, 2, 5, 3};
constexpr Header tiny_untied = {8, 12, 2, 4, 2, -5, 3};

/// Requires that reading `path` throws format_error whose message names the file and `field`.
void require_refused(const std::string& path, const std::string& field) {
  try {
    (void)Llama2cCheckpoint::read(path);
    FAIL("read accepted " << path << ", expected a format_error naming " << field);
  } catch (const format_error& e) {
    const std::string message = e.what();
    INFO(message);
    CHECK(message.find(path) != std::string::npos);
    CHECK(message.find(field) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("llama2.c checkpoint: the header gives the config", "[llama2c]") {
  TempDir dir("llamablocks_llama2c_");
  const std::string path = dir.file("tiny.bin");
  write_file(path, make_checkpoint(tiny_tied));
  const auto checkpoint = Llama2cCheckpoint::read(path);
  const ModelConfig config = checkpoint.config();
  CHECK(config.dim == 8);
  CHECK(config.ffn_hidden_dim == 12);
  CHECK(config.n_layers == 2);
  CHECK(config.n_heads == 4);
  CHECK(config.n_kv_heads == 2);
  CHECK(config.head_dim == 2);
  CHECK(config.vocab_size == 5);
  CHECK(config.max_seq_len == 3);
  CHECK(config.norm_eps == 1e-5);
  CHECK(config.rope_theta == 10000);
  CHECK(config.rope_layout == RopeLayout::interleaved);
  CHECK(config.rope_scaling.type == RopeScaling::Type::none);
  CHECK(checkpoint.tied_output());
  CHECK(checkpoint.header().vocab_size == 5);
  CHECK(checkpoint.file_bytes() == 28 + 4 * static_cast<std::uint64_t>(float_count(tiny_tied)));

  const std::string untied_path = dir.file("untied.bin");
  write_file(untied_path, make_checkpoint(tiny_untied));
  const auto untied = Llama2cCheckpoint::read(untied_path);
  CHECK_FALSE(untied.tied_output());
  CHECK(untied.header().vocab_size == -5);
  CHECK(untied.config().vocab_size == 5);
}

TEST_CASE("llama2.c checkpoint: weights at llama2.c's offsets, borrowed not copied", "[llama2c]") {
  TempDir dir("llamablocks_llama2c_");
  const std::string path = dir.file("untied.bin");
  write_file(path, make_checkpoint(tiny_untied));
  const auto checkpoint = Llama2cCheckpoint::read(path);
  const std::int64_t dim = 8, hidden = 12, layers = 2, q_dim = 8, kv_dim = 4, vocab = 5;
  // Offsets (in floats after the header) from run.c's memory_map_weights, written out by hand.
  const std::int64_t embedding = 0;
  const std::int64_t rms_att = embedding + vocab * dim;
  const std::int64_t wq = rms_att + layers * dim;
  const std::int64_t wk = wq + layers * q_dim * dim;
  const std::int64_t wv = wk + layers * kv_dim * dim;
  const std::int64_t wo = wv + layers * kv_dim * dim;
  const std::int64_t rms_ffn = wo + layers * dim * q_dim;
  const std::int64_t w1 = rms_ffn + layers * dim;
  const std::int64_t w2 = w1 + layers * hidden * dim;
  const std::int64_t w3 = w2 + layers * dim * hidden;
  const std::int64_t rms_final = w3 + layers * hidden * dim;
  const std::int64_t wcls = rms_final + dim + 2 * 3 * 1;  // skips freq_cis_real, freq_cis_imag

  const auto* buffer_begin = static_cast<const unsigned char*>(checkpoint.storage().get());
  const auto* buffer_end = buffer_begin + checkpoint.file_bytes();
  const auto check = [&](const auto& tensor, std::int64_t offset, Shape<2> shape) {
    INFO("offset " << offset);
    CHECK(tensor.shape() == shape);
    CHECK(tensor.data()[0] == static_cast<float>(offset));
    CHECK(tensor.data()[tensor.size() - 1] == static_cast<float>(offset + tensor.size() - 1));
    const auto* begin = reinterpret_cast<const unsigned char*>(tensor.data());
    CHECK(begin == buffer_begin + 28 + 4 * offset);  // inside the one buffer: not a copy
    CHECK(begin + 4 * tensor.size() <= buffer_end);
  };
  const auto check_vector = [&](const Tensor<float, 1>& tensor, std::int64_t offset) {
    CHECK(tensor.shape(0) == dim);
    CHECK(tensor.data()[0] == static_cast<float>(offset));
    CHECK(reinterpret_cast<const unsigned char*>(tensor.data()) == buffer_begin + 28 + 4 * offset);
  };
  check(checkpoint.token_embedding(), embedding, {vocab, dim});
  for (index_t l = 0; l < layers; ++l) {
    check_vector(checkpoint.rms_att(l), rms_att + l * dim);
    check(checkpoint.wq(l), wq + l * q_dim * dim, {q_dim, dim});
    check(checkpoint.wk(l), wk + l * kv_dim * dim, {kv_dim, dim});
    check(checkpoint.wv(l), wv + l * kv_dim * dim, {kv_dim, dim});
    check(checkpoint.wo(l), wo + l * dim * q_dim, {dim, q_dim});
    check_vector(checkpoint.rms_ffn(l), rms_ffn + l * dim);
    check(checkpoint.w1(l), w1 + l * hidden * dim, {hidden, dim});
    check(checkpoint.w2(l), w2 + l * dim * hidden, {dim, hidden});
    check(checkpoint.w3(l), w3 + l * hidden * dim, {hidden, dim});
  }
  check_vector(checkpoint.rms_final(), rms_final);
  check(checkpoint.wcls(), wcls, {vocab, dim});
  CHECK(wcls + vocab * dim == float_count(tiny_untied));

  CHECK_THROWS_AS(checkpoint.wq(2), range_error);
  CHECK_THROWS_AS(checkpoint.rms_ffn(-1), range_error);

  SECTION("a Parameter adopts the borrowed tensor in place, and keeps the buffer alive") {
    Parameter<float, 2> parameter("wq", {q_dim, dim});
    const float* expected = checkpoint.wq(1).data();
    const long owners_before = checkpoint.storage().use_count();
    parameter.assign(checkpoint.wq(1));
    CHECK(parameter.view().data() == expected);
    CHECK(checkpoint.storage().use_count() == owners_before + 1);
    Parameter<float, 2> outlives("wk", {kv_dim, dim});
    {
      const auto scoped = Llama2cCheckpoint::read(path);
      outlives.assign(scoped.wk(0));
    }
    CHECK(outlives.view()(0, 0) == static_cast<float>(wk));  // the buffer outlived its reader
  }
  SECTION("tied: the output head is the embedding table itself") {
    const std::string tied_path = dir.file("tied.bin");
    write_file(tied_path, make_checkpoint(tiny_tied));
    const auto tied = Llama2cCheckpoint::read(tied_path);
    CHECK(tied.wcls().data() == tied.token_embedding().data());
  }
}

TEST_CASE("llama2.c checkpoint: a missing file is refused naming it", "[llama2c]") {
  TempDir dir("llamablocks_llama2c_");
  require_refused(dir.file("absent.bin"), "cannot open");
  require_refused(dir.file(""), "");  // a folder: cannot be read as a checkpoint
}

TEST_CASE("llama2.c checkpoint: truncated or extended files are refused", "[llama2c]") {
  TempDir dir("llamablocks_llama2c_");
  const std::string path = dir.file("cut.bin");
  for (const Header& header : {tiny_tied, tiny_untied}) {
    const std::string full = make_checkpoint(header);
    for (std::size_t size = 0; size < full.size(); size += 4) {
      INFO("truncated to " << size << " bytes");
      write_file(path, full.substr(0, size));
      require_refused(path, size < 28 ? "header" : "file size");
    }
    write_file(path, full.substr(0, full.size() - 1));
    require_refused(path, "too short");
    write_file(path, full + std::string(1, '\0'));
    require_refused(path, "too long");
    write_file(path, full + std::string(4, '\0'));
    require_refused(path, "too long");
    write_file(path, full);
    CHECK_NOTHROW(Llama2cCheckpoint::read(path));
  }
}

TEST_CASE("llama2.c checkpoint: invalid header fields are refused naming the field", "[llama2c]") {
  TempDir dir("llamablocks_llama2c_");
  const std::string path = dir.file("bad.bin");
  const char* names[] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size",
                         "max_seq_len"};
  for (std::size_t field = 0; field < 7; ++field) {
    for (const std::int32_t value : {0, -1, std::numeric_limits<std::int32_t>::min()}) {
      if (field == 5 && value != 0) continue;  // a negative vocab_size means "untied"
      Header header = tiny_tied;
      header[field] = value;
      // The weights of the valid header follow, so only the field can be the reason.
      std::string bytes = make_checkpoint(tiny_tied);
      std::string head;
      for (const std::int32_t f : header) append_i32(head, f);
      bytes.replace(0, 28, head);
      write_file(path, bytes);
      INFO(names[field] << " = " << value);
      require_refused(path, names[field]);
    }
  }
  const auto refuse_header = [&](const Header& header, const std::string& what) {
    std::string bytes;
    for (const std::int32_t f : header) append_i32(bytes, f);
    bytes += std::string(4096, '\0');
    write_file(path, bytes);
    INFO(what);
    require_refused(path, what);
  };
  refuse_header({8, 12, 2, 3, 1, 5, 3}, "n_heads (3) must divide dim (8)");
  refuse_header({8, 12, 2, 4, 3, 5, 3}, "n_kv_heads (3) must divide n_heads (4)");
  refuse_header({12, 12, 2, 4, 2, 5, 3}, "head_dim = dim / n_heads = 3 must be even");
  constexpr std::int32_t huge = std::numeric_limits<std::int32_t>::max();
  // Products that overflow 64 bits (2^31 · 2^31 · 2^31) are caught before any size comparison.
  refuse_header({1 << 30, huge, huge, 2, 1, 5, 3}, "overflows 64 bits");
  // Sums that overflow, each product fitting.
  refuse_header({1 << 30, 12, 2, 2, 1, std::numeric_limits<std::int32_t>::min(), huge},
                "overflows 64 bits");
  refuse_header({huge - 1, huge, 1, 1, 1, huge, huge}, "overflows 64 bits");
  refuse_header({1 << 20, 12, 2, 2, 1, std::numeric_limits<std::int32_t>::min(), huge},
                "too short");
  refuse_header({8, 12, 2, 4, 2, huge, 3}, "file size");
  refuse_header({8, 12, huge, 4, 2, 5, huge}, "too short");
}

TEST_CASE("llama2.c checkpoint: random corruption never crashes", "[llama2c]") {
  TempDir dir("llamablocks_llama2c_");
  const std::string path = dir.file("fuzz.bin");
  const std::string good = make_checkpoint(tiny_untied);
  std::mt19937 generator(7);
  for (int trial = 0; trial < 300; ++trial) {
    std::string bytes = good;
    // Corrupt header bytes (the weights are arbitrary floats anyway) and sometimes the length.
    for (int flips = 0; flips < 3; ++flips)
      bytes[generator() % 28] = static_cast<char>(generator() & 0xFF);
    if (trial % 3 == 0) bytes.resize(generator() % (good.size() + 8));
    write_file(path, bytes);
    try {
      const auto checkpoint = Llama2cCheckpoint::read(path);
      const ModelConfig config = checkpoint.config();  // accepted: must be fully usable
      CHECK(checkpoint.wcls().size() == config.vocab_size * config.dim);
    } catch (const format_error& e) {
      CHECK(std::string(e.what()).find(path) != std::string::npos);
    }
  }
}
