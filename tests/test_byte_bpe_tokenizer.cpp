// ByteBpeTokenizer: GPT-2's byte-to-unicode alphabet, the merge order (rank, then leftmost),
// special tokens, ignore_merges, the unknown token and the argument checks on a small hand-made
// vocabulary; the three pre-tokenizers on sample strings with splits written out by hand; round
// trips of arbitrary bytes. Parity with Hugging Face tokenizers on SmolLM2's vocabulary is
// checked by tests/byte_bpe_parity.py.
#include "support/shared_files.hpp"
#include <catch2/catch.hpp>
#include <cstdint>
#include <llamablocks/text/byte_bpe_tokenizer.hpp>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

using llamablocks::test::message_of;
using llamablocks::test::shared_dir;

using Catch::Matchers::Contains;
using llamablocks::ByteBpeTokenizer;
using llamablocks::config_error;
using llamablocks::PreTokenizer;
using llamablocks::range_error;
using Ids = std::vector<std::int32_t>;
using Pieces = std::vector<std::string>;

// --- helpers -----------------------------------------------------------------------------------

std::string utf8(char32_t code_point) {
  std::string out;
  const auto byte = [](char32_t value) { return static_cast<char>(value); };
  if (code_point < 0x80) {
    out += byte(code_point);
  } else if (code_point < 0x800) {
    out += byte(0xC0 | (code_point >> 6));
    out += byte(0x80 | (code_point & 0x3F));
  } else {
    out += byte(0xE0 | (code_point >> 12));
    out += byte(0x80 | ((code_point >> 6) & 0x3F));
    out += byte(0x80 | (code_point & 0x3F));
  }
  return out;
}

/// The 256 one-byte tokens, token id == byte value, spelled in GPT-2's alphabet: the printable
/// bytes of Latin-1 stand for themselves, the others, in order, for U+0100, U+0101, ...
std::vector<std::string> byte_tokens() {
  std::vector<std::string> tokens;
  char32_t next = 0x100;
  for (char32_t byte = 0; byte < 256; ++byte) {
    const bool visible = (byte >= 0x21 && byte <= 0x7E) || (byte >= 0xA1 && byte <= 0xAC) ||
                         (byte >= 0xAE && byte <= 0xFF);
    tokens.push_back(utf8(visible ? byte : next++));
  }
  return tokens;
}

// Ids of the merged tokens of the test vocabulary.
constexpr std::int32_t id_space_t = 256;  // "Ġt"
constexpr std::int32_t id_he = 257;
constexpr std::int32_t id_space_the = 258;
constexpr std::int32_t id_in = 259;
constexpr std::int32_t id_ing = 260;
constexpr std::int32_t id_ll = 261;
constexpr std::int32_t id_im_start = 262;  // "<|im_start|>", special
constexpr std::int32_t id_im_end = 263;    // "<|im_end|>", special
constexpr std::int32_t id_aa = 264;
constexpr std::int32_t id_ab = 265;
constexpr std::int32_t id_bc = 266;
constexpr std::int32_t id_abc = 267;  // a token, but no merge makes it
constexpr std::int32_t id_im = 268;   // "<|im", a plain token that is a prefix of the specials

std::vector<std::string> test_tokens() {
  std::vector<std::string> tokens = byte_tokens();
  for (const char* token : {"Ġt", "he", "Ġthe", "in", "ing", "ll", "<|im_start|>", "<|im_end|>",
                            "aa", "ab", "bc", "abc", "<|im"}) {
    tokens.emplace_back(token);
  }
  return tokens;
}

// In rank order: "h e" merges before "Ġ t", "b c" before "a b".
const std::vector<std::string> test_merges = {"h e", "Ġ t", "Ġt he", "i n", "in g",
                                              "l l", "a a", "b c",   "a b"};

ByteBpeTokenizer test_tokenizer(PreTokenizer pre_tokenizer = PreTokenizer::gpt2,
                                bool ignore_merges = false) {
  return ByteBpeTokenizer(test_tokens(), test_merges, id_im_start, id_im_end, pre_tokenizer,
                          {id_im_start, id_im_end}, ByteBpeTokenizer::no_unk_id, ignore_merges);
}

Pieces split(std::string_view text, PreTokenizer pre_tokenizer) {
  Pieces pieces;
  for (const std::string_view piece : llamablocks::pre_tokenize(text, pre_tokenizer)) {
    pieces.emplace_back(piece);
  }
  return pieces;
}

constexpr std::int32_t byte_id(char c) { return static_cast<unsigned char>(c); }

}  // namespace

// --- the byte alphabet and the merges ----------------------------------------------------------

TEST_CASE("ByteBpeTokenizer: bytes are spelled in GPT-2's alphabet", "[byte_bpe]") {
  const std::vector<std::string> tokens = byte_tokens();
  CHECK(tokens[' '] == "Ġ");   // U+0120
  CHECK(tokens['\n'] == "Ċ");  // U+010A
  CHECK(tokens['\t'] == "ĉ");  // U+0109
  CHECK(tokens[0] == "Ā");     // U+0100
  CHECK(tokens[0xAD] == "Ń");  // U+0143, the soft hyphen is not visible
  CHECK(tokens['A'] == "A");
  CHECK(tokens[0xE9] == "é");

  const ByteBpeTokenizer tokenizer = test_tokenizer();
  CHECK(tokenizer.encode(" ", false, false) == Ids{byte_id(' ')});
  CHECK(tokenizer.encode("\n\t", false, false) == Ids{byte_id('\n'), byte_id('\t')});
  CHECK(tokenizer.encode("\xE9", false, false) == Ids{0xE9});
  CHECK(tokenizer.decode(Ids{byte_id(' '), 0xC3, 0xA9}) == " \xC3\xA9");
}

TEST_CASE("ByteBpeTokenizer: merges apply by rank, the leftmost first on ties", "[byte_bpe]") {
  const ByteBpeTokenizer tokenizer = test_tokenizer();
  // Ġ t h e: "h e" (rank 0), then "Ġ t" (1), then "Ġt he" (2).
  CHECK(tokenizer.encode(" the", false, false) == Ids{id_space_the});
  // Ġ t h i n g: "Ġ t" (1), "i n" (3), "in g" (4); "Ġt h" is no merge.
  CHECK(tokenizer.encode(" thing", false, false) == Ids{id_space_t, byte_id('h'), id_ing});
  CHECK(tokenizer.encode(" the thing", false, false) ==
        Ids{id_space_the, id_space_t, byte_id('h'), id_ing});
  // "b c" ranks before "a b": a b c -> a bc, not ab c.
  CHECK(tokenizer.encode("abc", false, false) == Ids{byte_id('a'), id_bc});
  CHECK(tokenizer.encode("abab", false, false) == Ids{id_ab, id_ab});
  // Equal ranks: the leftmost pair first.
  CHECK(tokenizer.encode("aaa", false, false) == Ids{id_aa, byte_id('a')});
  CHECK(tokenizer.encode("aaaa", false, false) == Ids{id_aa, id_aa});
  CHECK(tokenizer.encode("hello", false, false) == Ids{id_he, id_ll, byte_id('o')});
  CHECK(tokenizer.encode("", false, false).empty());
}

TEST_CASE("ByteBpeTokenizer: merges do not cross pre-tokenizer pieces", "[byte_bpe]") {
  const ByteBpeTokenizer tokenizer = test_tokenizer();
  // "a b" would merge, but "a b" splits as "a", " b", and "Ġ b" is no merge.
  CHECK(tokenizer.encode("a b", false, false) == Ids{byte_id('a'), byte_id(' '), byte_id('b')});
  // gpt2: "in" + "1" are two pieces; "in" merges inside its piece only.
  CHECK(tokenizer.encode("in1", false, false) == Ids{id_in, byte_id('1')});
}

TEST_CASE("ByteBpeTokenizer: ignore_merges takes a piece that is a token as it is", "[byte_bpe]") {
  // "abc" is a token that no merge sequence reaches: a b c -> a bc.
  CHECK(test_tokenizer(PreTokenizer::gpt2, false).encode("abc", false, false) ==
        Ids{byte_id('a'), id_bc});
  CHECK(test_tokenizer(PreTokenizer::llama3, true).encode("abc", false, false) == Ids{id_abc});
  CHECK(test_tokenizer(PreTokenizer::llama3, true).encode("abcd", false, false) ==
        Ids{byte_id('a'), id_bc, byte_id('d')});
}

TEST_CASE("ByteBpeTokenizer: special tokens are matched verbatim, the longest first",
          "[byte_bpe]") {
  const ByteBpeTokenizer tokenizer = test_tokenizer();
  CHECK(tokenizer.encode("<|im_start|>hello<|im_end|>", false, false) ==
        Ids{id_im_start, id_he, id_ll, byte_id('o'), id_im_end});
  CHECK(tokenizer.encode("<|im_start|><|im_start|>", false, false) ==
        Ids{id_im_start, id_im_start});
  // The text before a special token is a text of its own: " " ends it, so it is not joined to
  // anything after the special token.
  CHECK(tokenizer.encode("a <|im_end|> the", false, false) ==
        Ids{byte_id('a'), byte_id(' '), id_im_end, id_space_the});
  // An unfinished special token is plain text: "<|" then "im" then "_" ...
  const Ids partial = tokenizer.encode("<|im_start", false, false);
  CHECK(partial.front() == byte_id('<'));
  CHECK(tokenizer.decode(partial) == "<|im_start");
  CHECK(tokenizer.is_special(id_im_start));
  CHECK_FALSE(tokenizer.is_special(id_im));

  // Without special ids the same text is BPE-encoded byte by byte.
  const ByteBpeTokenizer plain(test_tokens(), test_merges, id_im_start, id_im_end,
                               PreTokenizer::gpt2);
  const Ids ids = plain.encode("<|im_end|>", false, false);
  CHECK(ids.size() > 1);
  CHECK(plain.decode(ids) == "<|im_end|>");
}

TEST_CASE("ByteBpeTokenizer: BOS and EOS are added on request and decode to their text",
          "[byte_bpe]") {
  const ByteBpeTokenizer tokenizer = test_tokenizer();
  CHECK(tokenizer.encode("", true, true) == Ids{id_im_start, id_im_end});
  CHECK(tokenizer.encode(" the", true, false) == Ids{id_im_start, id_space_the});
  CHECK(tokenizer.encode(" the", false, true) == Ids{id_space_the, id_im_end});
  CHECK(tokenizer.decode(Ids{id_im_start, id_space_the, id_im_end}) ==
        "<|im_start|> the<|im_end|>");
  CHECK(tokenizer.decode(id_im_start, id_space_the) == " the");
  CHECK(tokenizer.decode(id_space_the, id_space_t) == " t");
}

TEST_CASE("ByteBpeTokenizer: decode(encode(bytes)) == bytes for any bytes", "[byte_bpe]") {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> length(0, 64);
  // Bytes biased towards the ones the splitters branch on.
  const std::string favourites = " \t\n\r'sStT0123456789ab<|>\xC3\xA9\xE4\xB8\x96\xF0\x9F\x98\x80";
  std::uniform_int_distribution<std::size_t> favourite(0, favourites.size() - 1);
  for (const PreTokenizer pre_tokenizer :
       {PreTokenizer::gpt2, PreTokenizer::llama3, PreTokenizer::smollm}) {
    const ByteBpeTokenizer tokenizer = test_tokenizer(pre_tokenizer);
    for (int trial = 0; trial < 2000; ++trial) {
      std::string text;
      const int n = length(rng);
      for (int i = 0; i < n; ++i) {
        text += trial % 2 == 0 ? static_cast<char>(byte(rng)) : favourites[favourite(rng)];
      }
      const Ids ids = tokenizer.encode(text, false, false);
      REQUIRE(tokenizer.decode(ids) == text);
      std::string streamed;
      std::int32_t previous = id_im_start;
      for (const std::int32_t id : ids) {
        streamed += tokenizer.decode(previous, id);
        previous = id;
      }
      REQUIRE(streamed == text);
    }
    const std::string invalid = "\xFF\xFE\xC0\x80\xED\xA0\x80\xF4\x90\x80\x80 a\x80";
    CHECK(tokenizer.decode(tokenizer.encode(invalid, false, false)) == invalid);
  }
}

// --- pre-tokenizers ----------------------------------------------------------------------------

TEST_CASE("pre_tokenize: gpt2", "[byte_bpe][pre_tokenize]") {
  const auto gpt2 = PreTokenizer::gpt2;
  CHECK(split("", gpt2).empty());
  CHECK(split("Hello world", gpt2) == Pieces{"Hello", " world"});
  CHECK(split("it's 12345 apples!!  ok\n", gpt2) ==
        Pieces{"it", "'s", " 12345", " apples", "!!", " ", " ok", "\n"});
  CHECK(split("I'M we'll they're I've 'd", gpt2) ==
        Pieces{"I", "'", "M", " we", "'ll", " they", "'re", " I", "'ve", " '", "d"});
  CHECK(split("a  1", gpt2) == Pieces{"a", " ", " 1"});
  CHECK(split("don't\tstop", gpt2) == Pieces{"don", "'t", "\t", "stop"});
  CHECK(split("x   ", gpt2) == Pieces{"x", "   "});
  CHECK(split("a\n\nb", gpt2) == Pieces{"a", "\n", "\n", "b"});
  CHECK(split("\xE4\xBD\xA0\xE5\xA5\xBD \xE4\xB8\x96\xE7\x95\x8C", gpt2) ==
        Pieces{"\xE4\xBD\xA0\xE5\xA5\xBD", " \xE4\xB8\x96\xE7\x95\x8C"});  // 你好 世界
  CHECK(split("hi \xF0\x9F\x98\x80\xF0\x9F\x98\x80", gpt2) ==
        Pieces{"hi", " \xF0\x9F\x98\x80\xF0\x9F\x98\x80"});  // emoji are not letters
  CHECK(split("a\xFF"
              "b",
              gpt2) == Pieces{"a", "\xFF", "b"});  // a malformed byte is "other"
  CHECK(split("3.14", gpt2) == Pieces{"3", ".", "14"});
}

TEST_CASE("pre_tokenize: llama3", "[byte_bpe][pre_tokenize]") {
  const auto llama3 = PreTokenizer::llama3;
  CHECK(split("Hello world", llama3) == Pieces{"Hello", " world"});
  CHECK(split("it's 12345 apples!!  ok\n", llama3) ==
        Pieces{"it", "'s", " ", "123", "45", " apples", "!!", " ", " ok", "\n"});
  CHECK(split("I'M HERE", llama3) == Pieces{"I", "'M", " HERE"});
  // U+017F (long s) case-folds to 's'.
  CHECK(split("'\xC5\xBFt", llama3) == Pieces{"'\xC5\xBF", "t"});
  CHECK(split("x.\n\ny", llama3) == Pieces{"x", ".\n\n", "y"});
  CHECK(split("a \n b", llama3) == Pieces{"a", " \n", " b"});
  CHECK(split("a\n\n\nb", llama3) == Pieces{"a", "\n\n\n", "b"});
  CHECK(split("$hello", llama3) == Pieces{"$hello"});
  CHECK(split("\thello", llama3) == Pieces{"\thello"});
  CHECK(split("\nhello", llama3) == Pieces{"\n", "hello"});
  CHECK(split("1234567", llama3) == Pieces{"123", "456", "7"});
  CHECK(split("x   ", llama3) == Pieces{"x", "   "});
}

TEST_CASE("pre_tokenize: smollm", "[byte_bpe][pre_tokenize]") {
  const auto smollm = PreTokenizer::smollm;
  CHECK(split("Hello world", smollm) == Pieces{"Hello", " world"});
  CHECK(split("it's 12345 apples!!  ok\n", smollm) ==
        Pieces{"it", "'s", " ", "1", "2", "3", "4", "5", " apples", "!!", " ", " ok", "\n"});
  // The whitespace before a digit ends a text of its own, so it stays whole.
  CHECK(split("a  1", smollm) == Pieces{"a", "  ", "1"});
  CHECK(split("x1y", smollm) == Pieces{"x", "1", "y"});
  CHECK(split("\xC2\xBD\xE2\x85\xA3", smollm) == Pieces{"\xC2\xBD", "\xE2\x85\xA3"});  // ½ Ⅳ
  CHECK(split("I'M", smollm) == Pieces{"I", "'", "M"});
}

// --- errors ------------------------------------------------------------------------------------

TEST_CASE("ByteBpeTokenizer: unknown ids are range errors naming the value", "[byte_bpe]") {
  const ByteBpeTokenizer tokenizer = test_tokenizer();
  const std::int32_t n = tokenizer.vocab_size();
  CHECK(n == 269);
  CHECK_THAT(message_of<range_error>([&] { tokenizer.decode(0, n); }),
             Contains("token must be in [0, vocab_size = 269), got 269"));
  CHECK_THAT(message_of<range_error>([&] { tokenizer.decode(-1, 5); }),
             Contains("previous must be in [0, vocab_size = 269), got -1"));
  CHECK_THAT(message_of<range_error>([&] {
               tokenizer.decode(Ids{1, -7});
             }),
             Contains("tokens[1] must be in [0, vocab_size = 269), got -7"));
  CHECK_THROWS_AS(tokenizer.token(n), range_error);
  CHECK_THROWS_AS(tokenizer.is_special(-1), range_error);
  CHECK(tokenizer.token(id_space_the) == "Ġthe");
}

TEST_CASE("ByteBpeTokenizer: invalid vocabularies are config errors naming the argument",
          "[byte_bpe]") {
  const auto make = [](std::vector<std::string> merges, std::int32_t bos = 0,
                       std::vector<std::int32_t> special = {}) {
    return ByteBpeTokenizer(test_tokens(), merges, bos, 0, PreTokenizer::gpt2, special);
  };
  CHECK_THAT(message_of<config_error>([&] {
               make({"h e", "ab"});
             }),
             Contains("merges[1] must be two tokens separated by one space, got 'ab'"));
  CHECK_THAT(message_of<config_error>([&] { make({"a  b"}); }), Contains("merges[0]"));
  CHECK_THAT(message_of<config_error>([&] { make({"x y"}); }),
             Contains("merges[0] = 'x y': its concatenation 'xy' is not a token"));
  CHECK_THAT(message_of<config_error>([&] { make({"Ġthe q"}); }), Contains("not a token"));
  CHECK_THAT(message_of<config_error>([&] { make({}, 300); }),
             Contains("bos_id must be in [0, vocab_size = 269), got 300"));
  CHECK_THAT(message_of<config_error>([&] {
               make({}, 0, {5, 9999});
             }),
             Contains("special_ids[1] must be in [0, vocab_size = 269), got 9999"));
  CHECK_THAT(message_of<config_error>([&] { ByteBpeTokenizer({}, {}, 0, 0, PreTokenizer::gpt2); }),
             Contains("tokens must not be empty"));
  CHECK_THAT(message_of<config_error>(
                 [&] { ByteBpeTokenizer(test_tokens(), {}, 0, 0, PreTokenizer::gpt2, {}, 400); }),
             Contains("unk_id"));
}

TEST_CASE("ByteBpeTokenizer: a byte without a token gives the unknown token, or an error",
          "[byte_bpe]") {
  std::vector<std::string> tokens = test_tokens();
  tokens[0x04] = "<unk>";  // the vocabulary now lacks byte 0x04 ("Ą")
  const ByteBpeTokenizer with_unk(tokens, test_merges, 0, 0, PreTokenizer::gpt2, {}, 0x04);
  CHECK(with_unk.encode("a\x04"
                        "b",
                        false, false) == Ids{byte_id('a'), 0x04, byte_id('b')});
  const ByteBpeTokenizer without_unk(tokens, test_merges, 0, 0, PreTokenizer::gpt2);
  CHECK_THAT(message_of<range_error>([&] { without_unk.encode("a\x04", false, false); }),
             Contains("byte 0x4 of piece"));
  CHECK(without_unk.encode("ab", false, false) == Ids{id_ab});
}
