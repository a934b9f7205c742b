// GGUF reader and ggml dequantization.
//
// tests/gguf/fixture.gguf and linear_rope.gguf come from tests/gguf/make_fixtures.py (the PyPI
// package `gguf`, an independent writer and quantizer): metadata of every type, tensors of every
// supported type next to gguf's own dequantization of them, a tiny LLaMA config. Hostile files are
// built here byte by byte from a small valid one, so each corrupted field sits at a known offset.
#include "llamablocks/io/gguf.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

using namespace llamablocks;
using Catch::Matchers::Contains;

namespace {

const std::string fixture_dir = std::string(LLAMABLOCKS_TEST_DATA_DIR) + "/gguf/";

float half(std::uint16_t bits) { return io::fp16_to_float(bits); }

/// A temporary file removed at the end of the test.
struct TempFile {
  std::string path;
  explicit TempFile(const std::vector<unsigned char>& bytes) {
    static std::mt19937_64 rng{std::random_device{}()};
    path = (std::filesystem::temp_directory_path() /
            ("llamablocks_test_gguf_" + std::to_string(rng()) + ".gguf"))
               .string();
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  ~TempFile() {
    std::error_code ignored;
    std::filesystem::remove(path, ignored);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
};

/// Writes a GGUF file field by field and remembers where each named field starts.
struct Writer {
  std::vector<unsigned char> bytes;
  std::map<std::string, std::size_t> at;

  void mark(const std::string& name) { at[name] = bytes.size(); }
  void u8(std::uint8_t v) { bytes.push_back(v); }
  void u32(std::uint32_t v) {
    for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<unsigned char>(v >> (8 * i)));
  }
  void u64(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<unsigned char>(v >> (8 * i)));
  }
  void str(const std::string& s) {
    u64(s.size());
    bytes.insert(bytes.end(), s.begin(), s.end());
  }
  void pad(std::size_t alignment) {
    while (bytes.size() % alignment != 0) bytes.push_back(0);
  }
  void patch_u32(const std::string& name, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) bytes[at.at(name) + static_cast<std::size_t>(i)] = static_cast<unsigned char>(v >> (8 * i));
  }
  void patch_u64(const std::string& name, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) bytes[at.at(name) + static_cast<std::size_t>(i)] = static_cast<unsigned char>(v >> (8 * i));
  }
};

/// A small valid GGUF v3 file: three keys (a string, a uint32, an array of strings) and one F32
/// tensor "t" of shape [2, 4] (ne = {4, 2}) holding 0, 1, ..., 7. `data_end` is its last byte + 1.
Writer small_file() {
  Writer w;
  w.mark("magic");
  w.bytes.insert(w.bytes.end(), {'G', 'G', 'U', 'F'});
  w.mark("version");
  w.u32(3);
  w.mark("tensor_count");
  w.u64(1);
  w.mark("kv_count");
  w.u64(3);
  w.mark("key0");
  w.str("general.architecture");
  w.u32(8);
  w.str("llama");
  w.str("test.count");
  w.mark("type1");
  w.u32(4);
  w.u32(7);
  w.str("test.words");
  w.u32(9);
  w.mark("array_type");
  w.u32(8);
  w.mark("array_count");
  w.u64(2);
  w.mark("word0");
  w.str("ab");
  w.str("c");
  w.str("t");
  w.mark("n_dims");
  w.u32(2);
  w.mark("ne0");
  w.u64(4);
  w.mark("ne1");
  w.u64(2);
  w.mark("ggml_type");
  w.u32(0);
  w.mark("offset");
  w.u64(0);
  w.pad(32);
  w.mark("data");
  for (int i = 0; i < 8; ++i) {
    const float value = static_cast<float>(i);
    std::uint32_t bits;
    std::memcpy(&bits, &value, 4);
    w.u32(bits);
  }
  return w;
}

/// Opening `bytes` throws format_error whose message names the file and contains every `part`.
void expect_format_error(const std::vector<unsigned char>& bytes,
                         const std::vector<std::string>& parts) {
  TempFile file(bytes);
  try {
    io::GgufFile::open(file.path);
    FAIL("no format_error for a file expected to be refused (" << parts.front() << ")");
  } catch (const format_error& e) {
    const std::string message = e.what();
    INFO(message);
    CHECK_THAT(message, Contains(file.path));
    for (const std::string& part : parts) CHECK_THAT(message, Contains(part));
  }
}

}  // namespace

TEST_CASE("fp16 and bf16 decode every class of value exactly", "[gguf][dequantize]") {
  CHECK(half(0x0000) == 0.0f);
  CHECK(std::signbit(half(0x8000)));
  CHECK(half(0x3c00) == 1.0f);
  CHECK(half(0xc000) == -2.0f);
  CHECK(half(0x7bff) == 65504.0f);                    // largest finite half
  CHECK(half(0x0400) == std::ldexp(1.0f, -14));       // smallest normal
  CHECK(half(0x0001) == std::ldexp(1.0f, -24));       // smallest subnormal
  CHECK(half(0x03ff) == std::ldexp(1023.0f, -24));    // largest subnormal
  CHECK(half(0x8200) == -std::ldexp(512.0f, -24));
  CHECK(std::isinf(half(0x7c00)));
  CHECK(half(0xfc00) < 0);
  CHECK(std::isnan(half(0x7e00)));
  CHECK(std::isnan(half(0xfc01)));
  // Every finite half round-trips through float -> double and back to the same value.
  for (std::uint32_t bits = 0; bits < 0x10000; ++bits) {
    const auto h = static_cast<std::uint16_t>(bits);
    const std::uint32_t exponent = (bits >> 10) & 0x1f;
    if (exponent == 0x1f) continue;
    const double mantissa = static_cast<double>(bits & 0x3ff);
    const double magnitude = exponent == 0 ? std::ldexp(mantissa, -24)
                                           : std::ldexp(1024.0 + mantissa, static_cast<int>(exponent) - 25);
    const double expected = (bits & 0x8000) ? -magnitude : magnitude;
    if (static_cast<double>(half(h)) != expected) {
      FAIL("half 0x" << std::hex << bits << " decoded as " << half(h) << ", expected " << expected);
    }
  }
  CHECK(io::bf16_to_float(0x3f80) == 1.0f);
  CHECK(io::bf16_to_float(0xc0a0) == -5.0f);
  CHECK(std::isinf(io::bf16_to_float(0x7f80)));
}

TEST_CASE("hand-made Q8_0, Q4_0 and Q4_1 blocks dequantize to known values", "[gguf][dequantize]") {
  std::vector<float> out(32);
  SECTION("Q8_0: x = d * q") {
    std::vector<unsigned char> block = {0x00, 0x38};  // d = 0.5
    for (int i = 0; i < 32; ++i) block.push_back(static_cast<unsigned char>(static_cast<std::int8_t>(i - 16)));
    io::dequantize_row(io::GgmlType::q8_0, block.data(), out.data(), 32);
    for (int i = 0; i < 32; ++i) CHECK(out[static_cast<std::size_t>(i)] == 0.5f * static_cast<float>(i - 16));
  }
  SECTION("Q4_0: low nibbles are elements 0..15, high nibbles 16..31, x = d * (q - 8)") {
    std::vector<unsigned char> block = {0x00, 0x40};  // d = 2
    for (int j = 0; j < 16; ++j) block.push_back(static_cast<unsigned char>(j | ((15 - j) << 4)));
    io::dequantize_row(io::GgmlType::q4_0, block.data(), out.data(), 32);
    for (int j = 0; j < 16; ++j) {
      CHECK(out[static_cast<std::size_t>(j)] == 2.0f * static_cast<float>(j - 8));
      CHECK(out[static_cast<std::size_t>(j + 16)] == 2.0f * static_cast<float>(7 - j));
    }
  }
  SECTION("Q4_1: x = d * q + m") {
    std::vector<unsigned char> block = {0x00, 0x34, 0x00, 0xbc};  // d = 0.25, m = -1
    for (int j = 0; j < 16; ++j) block.push_back(static_cast<unsigned char>(j | (3 << 4)));
    io::dequantize_row(io::GgmlType::q4_1, block.data(), out.data(), 32);
    for (int j = 0; j < 16; ++j) {
      CHECK(out[static_cast<std::size_t>(j)] == 0.25f * static_cast<float>(j) - 1.0f);
      CHECK(out[static_cast<std::size_t>(j + 16)] == -0.25f);
    }
  }
  SECTION("unsupported types and partial blocks are refused") {
    std::vector<unsigned char> block(210);
    CHECK_THROWS_WITH(io::dequantize_row(io::GgmlType::q6_k, block.data(), out.data(), 256),
                      Contains("Q6_K"));
    CHECK_THROWS_WITH(io::dequantize_row(io::GgmlType::q8_0, block.data(), out.data(), 31),
                      Contains("block size 32"));
  }
}

TEST_CASE("GGUF metadata of every type round-trips from the gguf package's writer", "[gguf]") {
  const auto file = io::GgufFile::open(fixture_dir + "fixture.gguf");
  CHECK(file.version() == 3);
  CHECK(file.alignment() == 32);
  CHECK(file.data_offset() % 32 == 0);
  CHECK(file.get<std::string>("general.architecture") == "llama");
  CHECK(file.get<std::uint8_t>("test.u8") == 200);
  CHECK(file.get<std::int8_t>("test.i8") == -100);
  CHECK(file.get<std::uint16_t>("test.u16") == 60000);
  CHECK(file.get<std::int16_t>("test.i16") == -30000);
  CHECK(file.get<std::uint32_t>("test.u32") == 4000000000u);
  CHECK(file.get<std::int32_t>("test.i32") == -2000000000);
  CHECK(file.get<std::uint64_t>("test.u64") == 18000000000000000000ull);
  CHECK(file.get<std::int64_t>("test.i64") == -9000000000000000000ll);
  CHECK(file.get<float>("test.f32") == 0.15625f);
  CHECK(file.get<double>("test.f64") == -1.0e300);
  CHECK(file.get<bool>("test.bool_true"));
  CHECK_FALSE(file.get<bool>("test.bool_false"));
  CHECK(file.get<std::string>("test.string") == "h\xc3\xa9llo, GGUF");
  CHECK(file.get_array<std::uint8_t>("test.arr_u8") == std::vector<std::uint8_t>{1, 2, 255});
  CHECK(file.get_array<std::int8_t>("test.arr_i8") == std::vector<std::int8_t>{-128, 0, 127});
  CHECK(file.get_array<std::uint16_t>("test.arr_u16") == std::vector<std::uint16_t>{0, 65535});
  CHECK(file.get_array<std::int16_t>("test.arr_i16") == std::vector<std::int16_t>{-32768, 32767});
  CHECK(file.get_array<std::uint32_t>("test.arr_u32") == std::vector<std::uint32_t>{7, 4294967295u});
  CHECK(file.get_array<std::int32_t>("test.arr_i32") == std::vector<std::int32_t>{-5, 2147483647});
  CHECK(file.get_array<std::uint64_t>("test.arr_u64") ==
        std::vector<std::uint64_t>{0, 18446744073709551615ull});
  CHECK(file.get_array<std::int64_t>("test.arr_i64") ==
        std::vector<std::int64_t>{INT64_MIN, 42});
  CHECK(file.get_array<float>("test.arr_f32") == std::vector<float>{0.5f, -2.25f, 1e-3f});
  const auto f64 = file.get_array<double>("test.arr_f64");
  REQUIRE(f64.size() == 2);
  CHECK(f64[0] == 3.141592653589793);
  CHECK((f64[1] == 0.0 && std::signbit(f64[1])));
  CHECK(file.get_array<bool>("test.arr_bool") == std::vector<bool>{true, false, true});
  CHECK(file.get_array<std::string>("test.arr_string") ==
        std::vector<std::string>{"a", "", "\xc4\xa0GGUF"});

  const io::GgufValue& nested = file.value("test.nested");
  CHECK(nested.element_type() == io::GgufType::array);
  const auto outer = nested.elements();
  REQUIRE(outer.size() == 2);
  CHECK(outer[0].as_array<std::string>() == std::vector<std::string>{"x", "yy"});
  CHECK(outer[1].as_array<std::string>() == std::vector<std::string>{"zzz"});

  // Tokenizer arrays.
  CHECK(file.get_array<std::string>("tokenizer.ggml.tokens").size() == 7);
  CHECK(file.get_array<float>("tokenizer.ggml.scores")[5] == -3.5f);
  CHECK(file.get_array<std::int32_t>("tokenizer.ggml.token_type")[1] == 3);
  CHECK(file.get_array<std::string>("tokenizer.ggml.merges") ==
        std::vector<std::string>{"a b", "\xc4\xa0 a"});

  SECTION("lenient integer and real getters, optional variants") {
    CHECK(file.get_integer("test.u16") == 60000);
    CHECK(file.get_integer("test.i8") == -100);
    CHECK(file.get_real("test.f32") == 0.15625);
    CHECK_FALSE(file.get_optional<std::uint32_t>("no.such.key"));
    CHECK(*file.get_optional<std::uint32_t>("test.u32") == 4000000000u);
    CHECK_FALSE(file.get_optional_integer("no.such.key"));
  }
  SECTION("type mismatches and missing keys name the file, the key and both types") {
    CHECK_THROWS_AS(file.get<std::uint32_t>("test.u64"), format_error);
    CHECK_THROWS_WITH(file.get<std::uint32_t>("test.u64"),
                      Contains("fixture.gguf") && Contains("'test.u64'") &&
                          Contains("has type uint64, expected uint32"));
    CHECK_THROWS_WITH(file.get_optional<std::string>("test.u8"), Contains("'test.u8'"));
    CHECK_THROWS_WITH(file.get_integer("test.u64"), Contains("does not fit in int64"));
    CHECK_THROWS_WITH(file.get<std::string>("no.such.key"),
                      Contains("fixture.gguf") && Contains("'no.such.key' is missing"));
    CHECK_THROWS_WITH(file.get_array<std::int32_t>("test.arr_f32"),
                      Contains("array of float32, expected an array of int32"));
    CHECK_THROWS_WITH(file.get_array<float>("test.f32"), Contains("expected array"));
  }
}

TEST_CASE("GGUF tensors: F32 borrowed in place, other types equal gguf's dequantization", "[gguf]") {
  const auto file = io::GgufFile::open(fixture_dir + "fixture.gguf");
  const io::GgufTensorInfo& info = file.tensor("f32");
  CHECK(info.n_dims == 2);
  CHECK(info.ne[0] == 64);
  CHECK(info.ne[1] == 3);
  CHECK(info.shape() == std::vector<index_t>{3, 64});

  const Tensor<float, 2> f32 = file.load_f32<2>("f32", {3, 64});
  CHECK(static_cast<const void*>(f32.data()) == static_cast<const void*>(file.tensor_data(info)));
  for (index_t i = 0; i < 3 * 64; ++i) {
    const double x = static_cast<double>(i);
    double expected = 2.0 * std::sin(0.37 * x) * std::cos(0.011 * x);
    if (i == 5) expected = 0.0;
    if (i >= 32 && i < 64) expected = 0.75;
    CHECK(f32.data()[i] == Approx(expected).margin(1e-6));
  }
  // The borrowed tensor keeps the buffer alive after the file object is gone.
  {
    const float first = f32.data()[1];
    auto moved = std::make_unique<io::GgufFile>(io::GgufFile::open(fixture_dir + "fixture.gguf"));
    Tensor<float, 2> kept = moved->load_f32<2>("f32", {3, 64});
    moved.reset();
    CHECK(kept.data()[1] == first);
  }

  for (const char* name : {"f16", "bf16", "q8_0", "q4_0", "q4_1"}) {
    INFO("tensor " << name);
    CHECK(file.tensor(name).type_name != std::string("F32"));
    const Tensor<float, 2> got = file.load_f32<2>(name, {2, 64});
    const Tensor<float, 2> want = file.load_f32<2>(std::string("expect.") + name, {2, 64});
    CHECK(got.data() != static_cast<const float*>(static_cast<const void*>(file.tensor_data(file.tensor(name)))));
    double norm = 0;
    for (index_t i = 0; i < 128; ++i) {
      const float g = got.data()[i];
      const float w = want.data()[i];
      if (std::isnan(w)) {
        CHECK(std::isnan(g));
      } else {
        if (g != w) FAIL_CHECK("element " << i << ": " << g << " != " << w);
        if (std::isfinite(w)) norm += static_cast<double>(w) * static_cast<double>(w);
      }
    }
    CHECK(norm > 0);
  }
  // F16 special values written by numpy.
  const Tensor<float, 2> f16 = file.load_f32<2>("f16", {2, 64});
  const float* row1 = f16.data() + 64;
  CHECK((std::isinf(row1[0]) && row1[0] > 0));
  CHECK((std::isinf(row1[1]) && row1[1] < 0));
  CHECK(std::isnan(row1[2]));
  CHECK(row1[3] == std::ldexp(1.0f, -24));
  CHECK(row1[4] == -std::ldexp(1.0f, -20));
  CHECK((row1[5] == 0.0f && std::signbit(row1[5])));
  CHECK(row1[6] == 65504.0f);

  SECTION("shape checks name the tensor and both shapes; ranks pad with ones") {
    CHECK_THROWS_AS(file.load_f32<2>("q4_0", {64, 2}), shape_error);
    CHECK_THROWS_WITH(file.load_f32<2>("q4_0", {64, 2}),
                      Contains("'q4_0'") && Contains("[2, 64]") && Contains("expected [64, 2]"));
    CHECK(file.load_f32<3>("q8_0", {1, 2, 64}).shape(1) == 2);
    CHECK_THROWS_WITH(file.load_f32<1>("q8_0", {128}), Contains("'q8_0' has shape [2, 64]"));
    CHECK_THROWS_WITH(file.load_f32<2>("nope", {1, 1}), Contains("no tensor named 'nope'"));
  }
}

TEST_CASE("config_from_gguf reads the llama keys", "[gguf][config]") {
  const ModelConfig config = io::config_from_gguf(io::GgufFile::open(fixture_dir + "fixture.gguf"));
  CHECK(config.dim == 64);
  CHECK(config.n_layers == 2);
  CHECK(config.n_heads == 4);
  CHECK(config.n_kv_heads == 2);
  CHECK(config.head_dim == 16);
  CHECK(config.vocab_size == 7);
  CHECK(config.ffn_hidden_dim == 96);
  CHECK(config.norm_eps == Approx(1e-6).epsilon(1e-6));
  CHECK(config.rope_theta == 500000.0);
  CHECK(config.max_seq_len == 128);
  CHECK(config.rope_layout == RopeLayout::interleaved);
  CHECK(config.rope_scaling.type == RopeScaling::Type::none);

  const auto linear_file = io::GgufFile::open(fixture_dir + "linear_rope.gguf");
  CHECK(linear_file.alignment() == 64);
  CHECK(linear_file.data_offset() % 64 == 0);
  const ModelConfig linear = io::config_from_gguf(linear_file);
  CHECK(linear.rope_scaling.type == RopeScaling::Type::linear);
  CHECK(linear.rope_scaling.factor == 4.0);
  CHECK(linear.n_kv_heads == 4);       // default: head_count
  CHECK(linear.head_dim == 8);         // default: dim / heads
  CHECK(linear.rope_theta == 10000.0); // default
  CHECK(linear.vocab_size == 10);      // from llama.vocab_size, no tokens array
  CHECK(linear_file.load_f32<1>("norm", {32}).data()[31] == 31.0f);

  // Another architecture is refused by name.
  Writer w = small_file();
  auto bytes = w.bytes;
  const std::size_t value_at = w.at.at("key0") + 8 + std::strlen("general.architecture") + 4 + 8;
  std::memcpy(bytes.data() + value_at, "gpt2x", 5);
  TempFile other(bytes);
  CHECK_THROWS_WITH(io::config_from_gguf(io::GgufFile::open(other.path)),
                    Contains("'gpt2x'") && Contains("only 'llama'"));
}

TEST_CASE("GGUF: the small hand-written file is valid", "[gguf]") {
  TempFile file(small_file().bytes);
  const auto gguf = io::GgufFile::open(file.path);
  CHECK(gguf.keys() == std::vector<std::string>{"general.architecture", "test.count", "test.words"});
  CHECK(gguf.get<std::uint32_t>("test.count") == 7);
  CHECK(gguf.get_array<std::string>("test.words") == std::vector<std::string>{"ab", "c"});
  const auto t = gguf.load_f32<2>("t", {2, 4});
  CHECK(t.data()[7] == 7.0f);
}

TEST_CASE("GGUF: a file truncated at every byte throws format_error", "[gguf][hostile]") {
  const Writer w = small_file();
  const std::size_t data_end = w.bytes.size();
  for (std::size_t length = 0; length < data_end; ++length) {
    INFO("truncated to " << length << " bytes");
    std::vector<unsigned char> bytes(w.bytes.begin(),
                                     w.bytes.begin() + static_cast<std::ptrdiff_t>(length));
    TempFile file(bytes);
    CHECK_THROWS_AS(io::GgufFile::open(file.path), format_error);
  }
  // Trailing bytes after the last tensor are allowed (writers pad the last tensor).
  auto longer = w.bytes;
  longer.resize(longer.size() + 24, 0);
  TempFile padded(longer);
  CHECK_NOTHROW(io::GgufFile::open(padded.path));
}

TEST_CASE("GGUF: hostile fields are refused, naming the file and the field", "[gguf][hostile]") {
  const Writer w = small_file();
  auto with = [&](auto patch) {
    Writer copy = w;
    patch(copy);
    return copy.bytes;
  };
  SECTION("wrong magic") {
    expect_format_error(with([](Writer& c) { c.bytes[3] = 'X'; }), {"magic", "0x47 0x47 0x55 0x58"});
  }
  SECTION("version 99") {
    expect_format_error(with([](Writer& c) { c.patch_u32("version", 99); }),
                        {"version", "unsupported version 99"});
  }
  SECTION("tensor_count 2^63") {
    expect_format_error(with([](Writer& c) { c.patch_u64("tensor_count", 1ull << 63); }),
                        {"tensor_count", "9223372036854775808"});
  }
  SECTION("metadata_kv_count 2^63") {
    expect_format_error(with([](Writer& c) { c.patch_u64("kv_count", 1ull << 63); }),
                        {"metadata_kv_count", "9223372036854775808"});
  }
  SECTION("string length past the end") {
    expect_format_error(with([](Writer& c) { c.patch_u64("key0", 1ull << 40); }),
                        {"metadata entry 0 key", "string length 1099511627776"});
    expect_format_error(with([](Writer& c) { c.patch_u64("word0", ~0ull); }),
                        {"'test.words'", "[0]", "string length 18446744073709551615"});
  }
  SECTION("array count 2^63") {
    expect_format_error(with([](Writer& c) { c.patch_u64("array_count", 1ull << 63); }),
                        {"'test.words'", "array count 9223372036854775808"});
  }
  SECTION("invalid value and element types") {
    expect_format_error(with([](Writer& c) { c.patch_u32("type1", 13); }),
                        {"'test.count'", "invalid value type 13"});
    expect_format_error(with([](Writer& c) { c.patch_u32("array_type", 77); }),
                        {"'test.words'", "invalid array element type 77"});
  }
  SECTION("negative or huge dims") {
    expect_format_error(with([](Writer& c) { c.patch_u64("ne0", ~0ull); }),
                        {"tensor 0 ('t') ne[0]", "18446744073709551615", "-1"});
    expect_format_error(with([](Writer& c) {
                          c.patch_u64("ne0", 1ull << 40);
                          c.patch_u64("ne1", 1ull << 40);
                        }),
                        {"tensor 0 ('t') ne[1]", "overflow"});
    expect_format_error(with([](Writer& c) { c.patch_u64("ne1", 1ull << 40); }),
                        {"tensor 't'", "runs past the end of the file"});
    expect_format_error(with([](Writer& c) { c.patch_u32("n_dims", 5); }),
                        {"tensor 0 ('t')", "n_dims must be in [1, 4], got 5"});
  }
  SECTION("tensor offset past the end, or misaligned") {
    expect_format_error(with([](Writer& c) { c.patch_u64("offset", 1ull << 62); }),
                        {"tensor 't'", "offset 4611686018427387904", "past the end"});
    expect_format_error(with([](Writer& c) { c.patch_u64("offset", ~0ull - 31); }),
                        {"tensor 't'", "past the end"});
    expect_format_error(with([](Writer& c) { c.patch_u64("offset", 4); }),
                        {"tensor 't'", "not a multiple of the alignment 32"});
  }
  SECTION("unknown tensor type") {
    expect_format_error(with([](Writer& c) { c.patch_u32("ggml_type", 200); }),
                        {"tensor 0 ('t') type", "unknown ggml type id 200"});
  }
  SECTION("a row length that is not a whole number of blocks") {
    expect_format_error(with([](Writer& c) { c.patch_u32("ggml_type", 8); }),
                        {"tensor 0 ('t')", "not a multiple of the Q8_0 block size 32"});
  }
  SECTION("arrays nested too deeply") {
    Writer d;
    d.bytes = {'G', 'G', 'U', 'F'};
    d.u32(3);
    d.u64(0);
    d.u64(1);
    d.str("deep");
    d.u32(9);
    for (int i = 0; i < 20; ++i) {
      d.u32(9);
      d.u64(1);
    }
    d.u32(4);
    d.u64(0);
    expect_format_error(d.bytes, {"'deep'", "nested deeper than 8"});
  }
  SECTION("a missing file") {
    CHECK_THROWS_WITH(io::GgufFile::open("/nonexistent/model.gguf"),
                      Contains("/nonexistent/model.gguf") && Contains("cannot open"));
  }
}
