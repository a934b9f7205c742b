// SentencePieceTokenizer: the BPE merge order, byte fallback and decoding on small hand-made
// vocabularies; the llama2.c tokenizer.bin reader on synthetic files (every field, truncated or out
// of range); and, when the shared folder is present, LLaMA-2's tokenizer.bin (pinned ids, exact
// round trips, corrupted copies). Parity with Google's SentencePiece over a whole text is checked
// by tests/sentencepiece_parity.py.
//
// The shared folder is LLAMABLOCKS_SHARED_DIR: the compile definition if set, else the environment
// variable. Tests tagged [shared] pass with a warning "skipped: ..." when the file is not there.
#include "support/shared_files.hpp"
#include "support/temp_dir.hpp"
#include <llamablocks/io/format_error.hpp>
#include <llamablocks/text/sentencepiece_tokenizer.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace {

using llamablocks::test::message_of;
using llamablocks::test::shared_dir;

using llamablocks::config_error;
using llamablocks::format_error;
using llamablocks::range_error;
using llamablocks::SentencePieceTokenizer;
using Catch::Matchers::Contains;
using Ids = std::vector<std::int32_t>;
namespace fs = std::filesystem;

// --- helpers -----------------------------------------------------------------------------------

std::string byte_piece(int byte) {
  char text[8];
  std::snprintf(text, sizeof text, "<0x%02X>", byte);
  return text;
}

/// A vocabulary laid out like LLaMA-2's: <unk>, <s>, </s>, then (if `byte_tokens_first`) the 256
/// byte tokens, then `normal` (piece, score) in order, then (otherwise) the byte tokens.
SentencePieceTokenizer toy_tokenizer(const std::vector<std::pair<std::string, float>>& normal,
                                     bool with_byte_tokens = true, bool byte_tokens_first = true) {
  std::vector<std::string> pieces = {"<unk>", "<s>", "</s>"};
  std::vector<float> scores = {0.0f, 0.0f, 0.0f};
  const auto add_bytes = [&] {
    for (int byte = 0; byte < 256; ++byte) {
      pieces.push_back(byte_piece(byte));
      scores.push_back(0.0f);
    }
  };
  if (with_byte_tokens && byte_tokens_first) add_bytes();
  for (const auto& [piece, score] : normal) {
    pieces.push_back(piece);
    scores.push_back(score);
  }
  if (with_byte_tokens && !byte_tokens_first) add_bytes();
  return SentencePieceTokenizer(std::move(pieces), std::move(scores), 1, 2, 0);
}

std::vector<std::string> pieces_of(const SentencePieceTokenizer& tokenizer, const Ids& ids) {
  std::vector<std::string> pieces;
  for (const std::int32_t id : ids) pieces.push_back(tokenizer.piece(id));
  return pieces;
}

/// decode(encode(text)) == text with and without BOS / EOS, and token by token with decode(prev,
/// token) as a streaming caller does (starting after BOS).
void check_round_trip(const SentencePieceTokenizer& tokenizer, const std::string& text) {
  INFO("text: \"" << text << "\"");
  for (const bool add_bos : {false, true}) {
    for (const bool add_eos : {false, true}) {
      const Ids ids = tokenizer.encode(text, add_bos, add_eos);
      CHECK(tokenizer.decode(ids) == text);
      std::string streamed;
      std::int32_t previous = tokenizer.bos_id();
      for (const std::int32_t token : ids) {
        streamed += tokenizer.decode(previous, token);
        previous = token;
      }
      CHECK(streamed == text);
    }
  }
}

/// Byte strings to round-trip: ASCII, spaces, control characters, multi-byte UTF-8 (accents, CJK,
/// emoji with joiners), text spelling special pieces, and malformed UTF-8 of every kind.
const std::vector<std::string>& round_trip_texts() {
  static const std::vector<std::string> texts = {
      "Hello, world!",
      " ",
      "   leading and trailing   ",
      "multi\nline\ttext\r\n",
      std::string("nul \0 inside", 12),
      "caf\xC3\xA9 na\xC3\xAFve \xC3\xBC" "ber",
      "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xE4\xB8\xAD\xE6\x96\x87 "  // Japanese, Chinese, Korean
      "\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4",
      "emoji \xF0\x9F\x98\x80\xF0\x9F\x9A\x80 \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9",
      "<s> </s> <unk> <0x41> \xE2\x96\x81marker",
      "\xFF\xFE a \xC3",                       // bytes never in UTF-8; a truncated sequence
      "\x80\xBF",                              // stray continuation bytes
      "\xC0\xAF \xE0\x80\xAF",                 // overlong forms
      "\xED\xA0\x80 surrogate",                // UTF-16 surrogate
      "\xF4\x90\x80\x80 beyond U+10FFFF",
      "\xE4\xB8",                              // a CJK character cut short
  };
  return texts;
}

using llamablocks::test::TempDir;
using llamablocks::test::write_file;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.is_open());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void append_u32(std::string& bytes, std::uint32_t value) {
  for (int i = 0; i < 4; ++i) bytes += static_cast<char>((value >> (8 * i)) & 0xFFu);
}

void append_i32(std::string& bytes, std::int32_t value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  append_u32(bytes, bits);
}

void append_f32(std::string& bytes, float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  append_u32(bytes, bits);
}

/// Overwrites the 4 bytes at `offset` with a little-endian int32 / float32.
void put_i32(std::string& bytes, std::size_t offset, std::int32_t value) {
  std::string field;
  append_i32(field, value);
  bytes.replace(offset, 4, field);
}

void put_f32(std::string& bytes, std::size_t offset, float value) {
  std::string field;
  append_f32(field, value);
  bytes.replace(offset, 4, field);
}

/// A llama2.c tokenizer.bin: <unk>, "\n<s>\n", "\n</s>\n", the byte tokens, then `normal`.
std::string llama2c_file(const std::vector<std::pair<std::string, float>>& normal) {
  std::vector<std::pair<std::string, float>> tokens = {
      {"<unk>", 0.0f}, {"\n<s>\n", 0.0f}, {"\n</s>\n", 0.0f}};
  for (int byte = 0; byte < 256; ++byte) tokens.emplace_back(byte_piece(byte), 0.0f);
  tokens.insert(tokens.end(), normal.begin(), normal.end());
  std::size_t max_token_length = 0;
  for (const auto& token : tokens) {
    max_token_length = std::max(max_token_length, token.first.size());
  }
  std::string bytes;
  append_i32(bytes, static_cast<std::int32_t>(max_token_length));
  for (const auto& [piece, score] : tokens) {
    append_f32(bytes, score);
    append_i32(bytes, static_cast<std::int32_t>(piece.size()));
    bytes += piece;
  }
  return bytes;
}

/// Offset of token `index`'s score field in a llama2.c tokenizer file.
std::size_t token_offset(const std::string& bytes, std::int32_t index) {
  std::size_t offset = 4;
  for (std::int32_t i = 0; i < index; ++i) {
    std::int32_t len;
    std::memcpy(&len, bytes.data() + offset + 4, sizeof len);  // little-endian host, as llama2.c
    offset += 8 + static_cast<std::size_t>(len);
  }
  return offset;
}

/// The path of LLaMA-2's tokenizer.bin in the shared folder, or "" after a "skipped" warning.
std::string llama2_tokenizer_path() {
  const std::string dir = shared_dir();
  if (dir.empty()) {
    WARN("skipped: LLAMABLOCKS_SHARED_DIR is not set (compile definition or environment)");
    return {};
  }
  const std::string path = (fs::path(dir) / "models" / "llama2-tokenizer.bin").string();
  if (!fs::is_regular_file(path)) {
    WARN("skipped: " << path << " not found (set LLAMABLOCKS_SHARED_DIR)");
    return {};
  }
  return path;
}

constexpr std::int32_t llama2_vocab_size = 32000;

}  // namespace

// --- UTF-8 ---------------------------------------------------------------------------------------

TEST_CASE("utf8_sequence_length accepts well-formed UTF-8 only", "[tokenizer]") {
  using llamablocks::detail::utf8_sequence_length;
  CHECK(utf8_sequence_length("a", 0) == 1);
  CHECK(utf8_sequence_length(std::string_view("\0", 1), 0) == 1);
  CHECK(utf8_sequence_length("\xC3\xA9", 0) == 2);                // é
  CHECK(utf8_sequence_length("\xE2\x96\x81", 0) == 3);            // ▁
  CHECK(utf8_sequence_length("\xEF\xBF\xBF", 0) == 3);            // U+FFFF
  CHECK(utf8_sequence_length("\xF0\x9F\x98\x80", 0) == 4);        // 😀
  CHECK(utf8_sequence_length("\xF4\x8F\xBF\xBF", 0) == 4);        // U+10FFFF
  CHECK(utf8_sequence_length("x\xC3\xA9", 1) == 2);
  CHECK(utf8_sequence_length("\x80", 0) == 0);                    // stray continuation
  CHECK(utf8_sequence_length("\xC3", 0) == 0);                    // truncated
  CHECK(utf8_sequence_length("\xC3" "a", 0) == 0);                // bad continuation
  CHECK(utf8_sequence_length("\xC0\xAF", 0) == 0);                // overlong
  CHECK(utf8_sequence_length("\xE0\x80\xAF", 0) == 0);            // overlong
  CHECK(utf8_sequence_length("\xED\xA0\x80", 0) == 0);            // surrogate
  CHECK(utf8_sequence_length("\xF0\x8F\xBF\xBF", 0) == 0);        // overlong
  CHECK(utf8_sequence_length("\xF4\x90\x80\x80", 0) == 0);        // > U+10FFFF
  CHECK(utf8_sequence_length("\xF8\x88\x80\x80\x80", 0) == 0);    // 5-byte form
  CHECK(utf8_sequence_length("\xFF", 0) == 0);
}

// --- BPE on hand-made vocabularies -------------------------------------------------------------

TEST_CASE("BPE merges the highest-scoring pair first", "[tokenizer]") {
  // " abc": the pairs "ab" and "bc" overlap; the better one wins and the other never forms.
  const auto prefer_bc = toy_tokenizer({{" ", -1.0f}, {"a", -1.0f}, {"b", -1.0f}, {"c", -1.0f},
                                        {"ab", -2.0f}, {"bc", -1.5f}});
  CHECK(pieces_of(prefer_bc, prefer_bc.encode("abc", false, false)) ==
        std::vector<std::string>{" ", "a", "bc"});
  const auto prefer_ab = toy_tokenizer({{" ", -1.0f}, {"a", -1.0f}, {"b", -1.0f}, {"c", -1.0f},
                                        {"ab", -1.5f}, {"bc", -2.0f}});
  CHECK(pieces_of(prefer_ab, prefer_ab.encode("abc", false, false)) ==
        std::vector<std::string>{" ", "ab", "c"});
}

TEST_CASE("BPE keeps merging merged units, and only through pieces", "[tokenizer]") {
  // "abc" is reachable only as "ab" + "c"; " abc" then as " " + "abc". "bcd" is a piece but its
  // halves never both form, so it must not appear.
  const auto tokenizer = toy_tokenizer({{" ", -9.0f}, {"a", -9.0f}, {"b", -9.0f}, {"c", -9.0f},
                                        {"d", -9.0f}, {"ab", -1.0f}, {"abc", -2.0f},
                                        {" abc", -3.0f}, {"bcd", 0.0f}});
  CHECK(pieces_of(tokenizer, tokenizer.encode("abcd", false, false)) ==
        std::vector<std::string>{" abc", "d"});
  CHECK(pieces_of(tokenizer, tokenizer.encode("ab ab", false, false)) ==
        std::vector<std::string>{" ", "ab", " ", "ab"});
}

TEST_CASE("BPE breaks ties between equal scores by taking the leftmost pair", "[tokenizer]") {
  const auto tokenizer = toy_tokenizer({{" ", -1.0f}, {"a", -1.0f}, {"aa", -1.0f}});
  CHECK(pieces_of(tokenizer, tokenizer.encode("aaa", false, false)) ==
        std::vector<std::string>{" ", "aa", "a"});
  CHECK(pieces_of(tokenizer, tokenizer.encode("aaaaa", false, false)) ==
        std::vector<std::string>{" ", "aa", "aa", "a"});
}

TEST_CASE("encode adds the dummy prefix, BOS and EOS, and no pieces for empty text",
          "[tokenizer]") {
  const auto tokenizer = toy_tokenizer({{" ", -1.0f}, {"a", -1.0f}, {" a", -0.5f}});
  CHECK(tokenizer.encode("", false, false).empty());
  CHECK(tokenizer.encode("", true, false) == Ids{1});
  CHECK(tokenizer.encode("", false, true) == Ids{2});
  CHECK(tokenizer.encode("", true, true) == Ids{1, 2});
  const std::int32_t space_a = tokenizer.encode("a", false, false).at(0);
  CHECK(tokenizer.piece(space_a) == " a");
  CHECK(tokenizer.encode("a", true, true) == Ids{1, space_a, 2});
}

TEST_CASE("byte fallback finds the <0xNN> tokens wherever they are", "[tokenizer]") {
  for (const bool byte_tokens_first : {true, false}) {
    const auto tokenizer =
        toy_tokenizer({{" ", -1.0f}, {"a", -1.0f}}, /*with_byte_tokens=*/true, byte_tokens_first);
    const Ids ids = tokenizer.encode("a\xC3\xA9\xFF", false, false);  // "aé" + an invalid byte
    CHECK(pieces_of(tokenizer, ids) ==
          std::vector<std::string>{" ", "a", "<0xC3>", "<0xA9>", "<0xFF>"});
    CHECK(tokenizer.decode(ids) == "a\xC3\xA9\xFF");
  }
}

TEST_CASE("a byte without a byte token gives the unknown token", "[tokenizer]") {
  const auto tokenizer = toy_tokenizer({{" ", -1.0f}, {"a", -1.0f}}, /*with_byte_tokens=*/false);
  CHECK(tokenizer.encode("a\xC3\xA9", false, false) ==
        Ids{tokenizer.encode(" ", false, false).at(0), 4, tokenizer.unk_id(), tokenizer.unk_id()});
}

TEST_CASE("text spelling BOS, EOS, <unk> or a byte token is encoded as text", "[tokenizer]") {
  // The special pieces are in the vocabulary, and so are the halves that would build them.
  const auto tokenizer = toy_tokenizer(
      {{" ", -1.0f}, {"<", -1.0f}, {">", -1.0f}, {"s", -1.0f}, {"/", -1.0f}, {"u", -1.0f},
       {"n", -1.0f}, {"k", -1.0f}, {"0", -1.0f}, {"x", -1.0f}, {"4", -1.0f}, {"1", -1.0f},
       {"<s", -1.0f}, {"</", -1.0f}, {"</s", -1.0f}, {"<u", -1.0f}, {"<un", -1.0f},
       {"<unk", -1.0f}, {"<0", -1.0f}, {"<0x", -1.0f}, {"<0x4", -1.0f}, {"<0x41", -1.0f}});
  for (const std::string text : {"<s>", "</s>", "<unk>", "<0x41>"}) {
    const Ids ids = tokenizer.encode(text, false, false);
    INFO(text);
    CHECK(ids.size() == 3);  // " ", the longest prefix piece, ">"
    CHECK(tokenizer.decode(ids) == text);
  }
}

TEST_CASE("pieces may spell spaces as SentencePiece's U+2581", "[tokenizer]") {
  const auto spelled_marker = toy_tokenizer({{"\xE2\x96\x81", -1.0f}, {"a", -1.0f},
                                             {"\xE2\x96\x81" "a", -0.5f}, {"b", -1.0f}});
  const auto spelled_space = toy_tokenizer({{" ", -1.0f}, {"a", -1.0f}, {" a", -0.5f},
                                            {"b", -1.0f}});
  CHECK(spelled_marker.encode("a b a", true, false) == spelled_space.encode("a b a", true, false));
  CHECK(spelled_marker.piece(spelled_marker.encode("a", false, false).at(0)) == " a");
  CHECK(spelled_marker.decode(spelled_marker.encode("a b a", true, false)) == "a b a");
}

TEST_CASE("decode follows llama2.c: raw bytes, no leading space after BOS, nothing for BOS/EOS",
          "[tokenizer]") {
  const auto tokenizer = toy_tokenizer({{" ", -1.0f}, {"a", -1.0f}, {" a", -0.5f}});
  const std::int32_t space_a = tokenizer.encode("a", false, false).at(0);
  const std::int32_t byte_0a = 3 + 0x0A;
  CHECK(tokenizer.decode(tokenizer.bos_id(), space_a) == "a");
  CHECK(tokenizer.decode(space_a, space_a) == " a");
  CHECK(tokenizer.decode(space_a, byte_0a) == "\n");
  CHECK(tokenizer.decode(space_a, tokenizer.bos_id()).empty());
  CHECK(tokenizer.decode(space_a, tokenizer.eos_id()).empty());
  CHECK(tokenizer.decode(Ids{1, space_a, space_a, 2}) == "a a");
  CHECK(tokenizer.decode(Ids{space_a, space_a}) == "a a");  // as if after BOS, like SentencePiece
  CHECK(tokenizer.decode(Ids{}).empty());
  for (const std::string& text : round_trip_texts()) check_round_trip(tokenizer, text);
}

TEST_CASE("ids out of range are refused with range_error naming the id", "[tokenizer]") {
  const auto tokenizer = toy_tokenizer({{" ", -1.0f}});
  const std::int32_t vocab_size = tokenizer.vocab_size();
  CHECK(vocab_size == 3 + 256 + 1);
  CHECK_THAT(message_of<range_error>([&] { tokenizer.decode(1, vocab_size); }),
             Contains("token") && Contains(std::to_string(vocab_size)));
  CHECK_THAT(message_of<range_error>([&] { tokenizer.decode(1, -1); }),
             Contains("token") && Contains("-1"));
  CHECK_THAT(message_of<range_error>([&] { tokenizer.decode(-7, 3); }),
             Contains("previous") && Contains("-7"));
  CHECK_THAT(message_of<range_error>([&] { tokenizer.decode(Ids{1, 3, 99999}); }),
             Contains("tokens[2]") && Contains("99999"));
  CHECK_THAT(message_of<range_error>([&] { tokenizer.piece(vocab_size + 5); }),
             Contains(std::to_string(vocab_size + 5)));
  CHECK_THAT(message_of<range_error>([&] { tokenizer.score(-2); }), Contains("-2"));
}

TEST_CASE("the vocabulary constructor validates its arguments", "[tokenizer]") {
  const auto make = [](std::vector<std::string> pieces, std::vector<float> scores,
                       std::int32_t bos_id, std::int32_t eos_id, std::int32_t unk_id) {
    return SentencePieceTokenizer(std::move(pieces), std::move(scores), bos_id, eos_id, unk_id);
  };
  const std::vector<std::string> pieces = {"<unk>", "<s>", "</s>", "a"};
  const std::vector<float> scores = {0.0f, 0.0f, 0.0f, -1.0f};
  CHECK_NOTHROW(make(pieces, scores, 1, 2, 0));
  CHECK_THAT(message_of<config_error>([&] { make({}, {}, 0, 0, 0); }), Contains("pieces"));
  CHECK_THAT(message_of<config_error>([&] { make(pieces, {0.0f}, 1, 2, 0); }),
             Contains("scores") && Contains("4") && Contains("got 1"));
  CHECK_THAT(message_of<config_error>([&] { make(pieces, scores, 4, 2, 0); }),
             Contains("bos_id") && Contains("got 4"));
  CHECK_THAT(message_of<config_error>([&] { make(pieces, scores, 1, -1, 0); }),
             Contains("eos_id") && Contains("got -1"));
  CHECK_THAT(message_of<config_error>([&] { make(pieces, scores, 1, 2, 9); }),
             Contains("unk_id") && Contains("got 9"));
  std::vector<float> nan_score = scores;
  nan_score[3] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THAT(message_of<config_error>([&] { make(pieces, nan_score, 1, 2, 0); }),
             Contains("score of token 3") && Contains("nan"));
}

// --- the llama2.c file reader on synthetic files -----------------------------------------------

TEST_CASE("from_llama2c_file reads a well-formed file", "[tokenizer]") {
  const TempDir dir("llamablocks_tokenizer_");
  const std::string path = dir.file("tokenizer.bin");
  write_file(path, llama2c_file({{" ", -1.0f}, {"a", -2.0f}, {" a", -0.5f}}));
  const std::int32_t vocab_size = 3 + 256 + 3;
  for (const std::int32_t requested : {vocab_size, SentencePieceTokenizer::vocab_size_from_file}) {
    const auto tokenizer = SentencePieceTokenizer::from_llama2c_file(path, requested);
    CHECK(tokenizer.vocab_size() == vocab_size);
    CHECK(tokenizer.bos_id() == 1);
    CHECK(tokenizer.eos_id() == 2);
    CHECK(tokenizer.unk_id() == 0);
    CHECK(tokenizer.piece(vocab_size - 1) == " a");
    CHECK(tokenizer.score(vocab_size - 2) == -2.0f);
    CHECK(tokenizer.encode("a a", true, false) == Ids{1, vocab_size - 1, vocab_size - 1});
    CHECK(tokenizer.decode(Ids{1, vocab_size - 1, vocab_size - 1}) == "a a");
  }
}

TEST_CASE("from_llama2c_file refuses a malformed file, naming the file, token and field",
          "[tokenizer]") {
  const TempDir dir("llamablocks_tokenizer_");
  const std::string path = dir.file("tokenizer.bin");
  const std::string good = llama2c_file({{" ", -1.0f}, {"abc", -2.0f}});
  const std::int32_t vocab_size = 3 + 256 + 2;
  const std::int32_t last = vocab_size - 1;  // "abc", the last 11 bytes of the file
  const auto refusal_with = [&](const std::string& bytes, std::int32_t requested) {
    write_file(path, bytes);
    return message_of<format_error>(
        [&] { SentencePieceTokenizer::from_llama2c_file(path, requested); });
  };
  const auto refusal = [&](const std::string& bytes) { return refusal_with(bytes, vocab_size); };

  SECTION("missing file") {
    const std::string missing = dir.file("absent.bin");
    CHECK_THAT(message_of<format_error>(
                   [&] { SentencePieceTokenizer::from_llama2c_file(missing, vocab_size); }),
               Contains(missing) && Contains("cannot open"));
  }
  SECTION("a folder instead of a file") {
    const std::string folder = dir.file("folder.bin");
    fs::create_directory(folder);
    CHECK_THAT(message_of<format_error>(
                   [&] { SentencePieceTokenizer::from_llama2c_file(folder, vocab_size); }),
               Contains(folder));
  }
  SECTION("empty file") {
    CHECK_THAT(refusal(""), Contains(path) && Contains("truncated") &&
                                Contains("max_token_length") && Contains("has 0 bytes"));
  }
  SECTION("max_token_length <= 0") {
    std::string bytes = good;
    put_i32(bytes, 0, 0);
    CHECK_THAT(refusal(bytes), Contains(path) && Contains("max_token_length") && Contains("got 0"));
    put_i32(bytes, 0, -5);
    CHECK_THAT(refusal(bytes), Contains("max_token_length") && Contains("got -5"));
  }
  SECTION("truncated in each field of the last token") {
    const std::size_t offset = token_offset(good, last);
    CHECK_THAT(refusal(good.substr(0, offset + 2)),
               Contains(path) && Contains("token " + std::to_string(last)) && Contains("score") &&
                   Contains("truncated"));
    CHECK_THAT(refusal(good.substr(0, offset + 6)),
               Contains("token " + std::to_string(last)) && Contains("len") &&
                   Contains("truncated"));
    CHECK_THAT(refusal(good.substr(0, good.size() - 1)),
               Contains("token " + std::to_string(last)) && Contains("piece") &&
                   Contains("piece needs 3 bytes"));
  }
  SECTION("fewer tokens than vocab_size") {
    CHECK_THAT(refusal_with(good, vocab_size + 1),
               Contains("token " + std::to_string(vocab_size)) && Contains("truncated") &&
                   Contains("score") && Contains(std::to_string(vocab_size + 1)));
  }
  SECTION("more tokens than vocab_size") {
    CHECK_THAT(refusal_with(good, vocab_size - 1),
               Contains(path) && Contains("trailing") && Contains(std::to_string(vocab_size - 1)));
  }
  SECTION("trailing bytes that are not a whole token") {
    CHECK_THAT(refusal(good + "xy"), Contains("2 trailing bytes"));
    CHECK_THAT(refusal_with(good + "xy", SentencePieceTokenizer::vocab_size_from_file),
               Contains("token " + std::to_string(vocab_size)) && Contains("truncated"));
  }
  SECTION("len out of range") {
    std::string bytes = good;
    const std::size_t offset = token_offset(good, 7);
    put_i32(bytes, offset + 4, -1);
    CHECK_THAT(refusal(bytes), Contains(path) && Contains("token 7") && Contains("len") &&
                                   Contains("got -1"));
    put_i32(bytes, offset + 4, 1000);
    CHECK_THAT(refusal(bytes), Contains("token 7") && Contains("max_token_length = 6") &&
                                   Contains("got 1000"));
  }
  SECTION("score not finite") {
    std::string bytes = good;
    put_f32(bytes, token_offset(good, 12), std::numeric_limits<float>::infinity());
    CHECK_THAT(refusal(bytes), Contains(path) && Contains("token 12") && Contains("score") &&
                                   Contains("inf"));
  }
  SECTION("fewer than 3 tokens") {
    CHECK_THAT(refusal_with(good.substr(0, token_offset(good, 2)),
                            SentencePieceTokenizer::vocab_size_from_file),
               Contains(path) && Contains("2 tokens"));
  }
  SECTION("negative vocab_size is a caller error") {
    write_file(path, good);
    CHECK_THAT(message_of<config_error>(
                   [&] { SentencePieceTokenizer::from_llama2c_file(path, -vocab_size); }),
               Contains("vocab_size") && Contains(std::to_string(-vocab_size)));
  }
}

// --- LLaMA-2's tokenizer.bin from the shared folder ---------------------------------------------

TEST_CASE("LLaMA-2 tokenizer.bin: pinned encodings (skipped without the shared folder)",
          "[tokenizer][shared]") {
  const std::string path = llama2_tokenizer_path();
  if (path.empty()) return;
  const auto tokenizer = SentencePieceTokenizer::from_llama2c_file(path, llama2_vocab_size);
  CHECK(tokenizer.vocab_size() == llama2_vocab_size);
  CHECK(tokenizer.encode("I believe the meaning of life is", true, false) ==
        Ids{1, 306, 4658, 278, 6593, 310, 2834, 338});
  CHECK(tokenizer.encode("", true, false) == Ids{1});
  CHECK(tokenizer.encode("", false, false).empty());
  CHECK(tokenizer.encode("\n", false, false) == Ids{29871, 13});  // " " then the byte token 0x0A
  CHECK(tokenizer.encode(" ", false, false) == Ids{259});          // "  " from two spaces
  // Invalid bytes fall back to their byte tokens; " a" is still one piece.
  CHECK(tokenizer.encode("\xFF\xFE a \xC3", true, false) ==
        Ids{1, 29871, 3 + 0xFF, 3 + 0xFE, 263, 29871, 3 + 0xC3});
  CHECK(tokenizer.decode(Ids{1, 306, 4658, 278, 6593, 310, 2834, 338}) ==
        "I believe the meaning of life is");
  const auto whole_file =
      SentencePieceTokenizer::from_llama2c_file(path, SentencePieceTokenizer::vocab_size_from_file);
  CHECK(whole_file.vocab_size() == llama2_vocab_size);
}

TEST_CASE("LLaMA-2 tokenizer.bin: exact round trip of any bytes (skipped without the shared "
          "folder)", "[tokenizer][shared]") {
  const std::string path = llama2_tokenizer_path();
  if (path.empty()) return;
  const auto tokenizer = SentencePieceTokenizer::from_llama2c_file(path, llama2_vocab_size);
  for (const std::string& text : round_trip_texts()) check_round_trip(tokenizer, text);

  std::mt19937 random(2024);
  std::uniform_int_distribution<int> byte(0, 255);
  std::string noise;
  for (int i = 0; i < 4096; ++i) noise += static_cast<char>(byte(random));
  check_round_trip(tokenizer, noise);
}

TEST_CASE("LLaMA-2 tokenizer.bin: ids out of range (skipped without the shared folder)",
          "[tokenizer][shared]") {
  const std::string path = llama2_tokenizer_path();
  if (path.empty()) return;
  const auto tokenizer = SentencePieceTokenizer::from_llama2c_file(path, llama2_vocab_size);
  CHECK_THAT(message_of<range_error>([&] { tokenizer.decode(1, 32000); }),
             Contains("token") && Contains("32000"));
  CHECK_THAT(message_of<range_error>([&] { tokenizer.decode(Ids{1, 306, -3}); }),
             Contains("tokens[2]") && Contains("-3"));
}

TEST_CASE("LLaMA-2 tokenizer.bin: truncated or corrupted copies are refused (skipped without the "
          "shared folder)", "[tokenizer][shared]") {
  const std::string path = llama2_tokenizer_path();
  if (path.empty()) return;
  const std::string good = read_file(path);
  const TempDir dir("llamablocks_tokenizer_");
  const std::string copy = dir.file("llama2-tokenizer-copy.bin");
  const auto refusal = [&](const std::string& bytes) {
    write_file(copy, bytes);
    return message_of<format_error>(
        [&] { SentencePieceTokenizer::from_llama2c_file(copy, llama2_vocab_size); });
  };

  CHECK_THAT(refusal(good.substr(0, good.size() - 1)),
             Contains(copy) && Contains("token 31999") && Contains("piece") &&
                 Contains("truncated"));
  CHECK_THAT(refusal(good.substr(0, good.size() / 2)), Contains(copy) && Contains("truncated"));

  std::string bad_len = good;
  put_i32(bad_len, token_offset(good, 5) + 4, 1000);
  CHECK_THAT(refusal(bad_len), Contains(copy) && Contains("token 5") && Contains("len") &&
                                   Contains("max_token_length = 27") && Contains("got 1000"));

  std::string bad_score = good;
  put_f32(bad_score, token_offset(good, 300), std::numeric_limits<float>::quiet_NaN());
  CHECK_THAT(refusal(bad_score), Contains(copy) && Contains("token 300") && Contains("score"));

  CHECK_THAT(refusal(good + std::string(8, '\0')), Contains(copy) && Contains("8 trailing bytes"));
}
