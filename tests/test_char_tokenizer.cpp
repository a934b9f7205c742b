// CharTokenizer: a hand-written non-ASCII corpus with ids written out; malformed UTF-8 kept byte by
// byte; every error (message and no change to the tokenizer); and, when the shared folder is
// present, Tiny Shakespeare against an independent reference: the sorted set of its bytes (it is
// ASCII), which the "LLaMA-3 from scratch" write-up reports as 65 characters.
//
// The shared folder is LLAMABLOCKS_SHARED_DIR: the compile definition if set, else the environment
// variable. Tests tagged [shared] pass with a warning "skipped: ..." when the file is not there.
#include "support/shared_files.hpp"
#include <llamablocks/text/char_tokenizer.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

using llamablocks::test::message_of;
using llamablocks::test::shared_dir;

using llamablocks::CharTokenizer;
using llamablocks::config_error;
using llamablocks::range_error;
using Catch::Matchers::Contains;
using Ids = std::vector<std::int32_t>;
using Symbols = std::vector<std::string>;
namespace fs = std::filesystem;

/// The bytes of data/tinyshakespeare.txt in the shared folder, or "" after a "skipped" warning.
std::string read_tinyshakespeare() {
  const std::string dir = shared_dir();
  if (dir.empty()) {
    WARN("skipped: LLAMABLOCKS_SHARED_DIR is not set (compile definition or environment)");
    return {};
  }
  const fs::path path = fs::path(dir) / "data" / "tinyshakespeare.txt";
  if (!fs::is_regular_file(path)) {
    WARN("skipped: " << path.string() << " not found (set LLAMABLOCKS_SHARED_DIR)");
    return {};
  }
  std::ifstream file(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << file.rdbuf();
  return bytes.str();
}

// "héllo wörld ✓ 😀": h é l l o ␠ w ö r l d ␠ ✓ ␠ 😀, 15 characters in 22 bytes.
const std::string hello = "h\xC3\xA9llo w\xC3\xB6rld \xE2\x9C\x93 \xF0\x9F\x98\x80";
// Its distinct characters in code-point order: U+0020, d, h, l, o, r, w, U+00E9, U+00F6, U+2713,
// U+1F600.
const Symbols hello_symbols = {" ", "d", "h", "l", "o", "r", "w", "\xC3\xA9", "\xC3\xB6",
                               "\xE2\x9C\x93", "\xF0\x9F\x98\x80"};
const Ids hello_ids = {2, 7, 3, 3, 4, 0, 6, 8, 5, 3, 1, 0, 9, 0, 10};

// --- vocabulary and ids --------------------------------------------------------------------------

TEST_CASE("CharTokenizer: a non-ASCII corpus gives code-point order and the ids written out",
          "[tokenizer]") {
  const auto tokenizer = CharTokenizer::from_corpus(hello);
  CHECK(tokenizer.vocab_size() == 11);
  CHECK(tokenizer.symbols() == hello_symbols);
  CHECK(tokenizer.encode(hello) == hello_ids);
  CHECK(tokenizer.decode(hello_ids) == hello);
  CHECK(tokenizer.encode("") == Ids{});
  CHECK(tokenizer.decode(Ids{}).empty());
  CHECK(tokenizer.encode("\xF0\x9F\x98\x80h\xC3\xA9") == Ids{10, 2, 7});
  CHECK(tokenizer.decode(9) == "\xE2\x9C\x93");
  CHECK(tokenizer.symbol(10) == "\xF0\x9F\x98\x80");
}

TEST_CASE("CharTokenizer: a saved vocabulary reloads, ids being positions in it", "[tokenizer]") {
  const auto built = CharTokenizer::from_corpus(hello);
  const CharTokenizer reloaded(built.symbols());
  CHECK(reloaded.symbols() == built.symbols());
  CHECK(reloaded.encode(hello) == hello_ids);

  // Not sorted: the given order is kept.
  const CharTokenizer unsorted(Symbols{"b", "\xC3\xA9", "a"});
  CHECK(unsorted.encode("ab\xC3\xA9") == Ids{2, 0, 1});
  CHECK(unsorted.decode(Ids{1, 0, 2}) == "\xC3\xA9" "ba");
}

// --- malformed UTF-8 -----------------------------------------------------------------------------

TEST_CASE("CharTokenizer: each byte of malformed UTF-8 is a raw-byte symbol after all code points",
          "[tokenizer]") {
  // a, b, 0xFF (never UTF-8), "é", 0xC3 cut short by '(', '(', 0xE9 cut short by the end.
  const std::string corpus = "ab\xFF\xC3\xA9\xC3(\xE9";
  const auto tokenizer = CharTokenizer::from_corpus(corpus);
  CHECK(tokenizer.symbols() == Symbols{"(", "a", "b", "\xC3\xA9", "\xC3", "\xE9", "\xFF"});
  CHECK(tokenizer.encode(corpus) == Ids{1, 2, 6, 3, 4, 0, 5});
  CHECK(tokenizer.decode(tokenizer.encode(corpus)) == corpus);

  // The raw byte 0xE9 and the code point U+00E9 are different symbols.
  const auto only_e_acute = CharTokenizer::from_corpus("\xC3\xA9");
  CHECK_THAT(message_of<range_error>([&] { only_e_acute.encode("\xE9"); }),
             Contains("byte 0xE9") && Contains("byte offset 0"));

  // Overlong forms, surrogates and code points above U+10FFFF are malformed: one symbol per byte.
  for (const std::string& malformed : {std::string("\xC0\xAF"), std::string("\xED\xA0\x80"),
                                       std::string("\xF4\x90\x80\x80"), std::string("\x80\x80")}) {
    const auto bytewise = CharTokenizer::from_corpus(malformed);
    CHECK(bytewise.encode(malformed).size() == malformed.size());
    CHECK(bytewise.decode(bytewise.encode(malformed)) == malformed);
  }
}

TEST_CASE("CharTokenizer: random byte strings round-trip, also through a reloaded vocabulary",
          "[tokenizer]") {
  std::mt19937 random(7);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> length(1, 300);
  for (int trial = 0; trial < 200; ++trial) {
    std::string text(static_cast<std::size_t>(length(random)), '\0');
    for (char& c : text) c = static_cast<char>(byte(random));
    const auto tokenizer = CharTokenizer::from_corpus(text);
    const Ids ids = tokenizer.encode(text);
    REQUIRE(tokenizer.decode(ids) == text);
    REQUIRE(CharTokenizer(tokenizer.symbols()).encode(text) == ids);
  }
}

// --- errors --------------------------------------------------------------------------------------

TEST_CASE("CharTokenizer: an unknown character throws range_error naming it and its offset",
          "[tokenizer]") {
  const auto tokenizer = CharTokenizer::from_corpus(hello);
  CHECK_THAT(message_of<range_error>([&] { tokenizer.encode("h\xC3\xA9!"); }),
             Contains("U+0021 '!'") && Contains("byte offset 3") && Contains("vocab_size = 11"));
  // w ö r l d ␠ ü: the ü (U+00FC) starts at byte 7.
  CHECK_THAT(message_of<range_error>([&] { tokenizer.encode("w\xC3\xB6rld \xC3\xBC"); }),
             Contains("U+00FC") && Contains("byte offset 7"));
  CHECK_THAT(message_of<range_error>([&] { tokenizer.encode("h\xC3\xA9llo\n"); }),
             Contains("U+000A") && Contains("byte offset 6"));
  CHECK_THAT(message_of<range_error>([&] { tokenizer.encode("\xFF"); }),
             Contains("byte 0xFF") && Contains("byte offset 0"));

  // Nothing changed.
  CHECK(tokenizer.symbols() == hello_symbols);
  CHECK(tokenizer.encode(hello) == hello_ids);
}

TEST_CASE("CharTokenizer: an id below 0 or not below vocab_size throws range_error naming it",
          "[tokenizer]") {
  const auto tokenizer = CharTokenizer::from_corpus(hello);
  CHECK_THAT(message_of<range_error>([&] { tokenizer.decode(Ids{0, 11}); }),
             Contains("ids[1] = 11") && Contains("vocab_size = 11"));
  CHECK_THAT(message_of<range_error>([&] { tokenizer.decode(Ids{-1}); }),
             Contains("ids[0] = -1"));
  CHECK_THAT(message_of<range_error>([&] { tokenizer.decode(11); }),
             Contains("id 11") && Contains("vocab_size = 11"));
  CHECK_THAT(message_of<range_error>([&] { tokenizer.symbol(-2); }), Contains("id -2"));
  CHECK(tokenizer.decode(hello_ids) == hello);
}

TEST_CASE("CharTokenizer: a bad vocabulary throws config_error naming the index and value",
          "[tokenizer]") {
  CHECK_THAT(message_of<config_error>([] { CharTokenizer::from_corpus(""); }),
             Contains("text must not be empty"));
  CHECK_THAT(message_of<config_error>([] { CharTokenizer(Symbols{}); }),
             Contains("symbols must not be empty"));
  CHECK_THAT(message_of<config_error>([] { CharTokenizer(Symbols{"a", ""}); }),
             Contains("symbols[1]") && Contains("got \"\""));
  CHECK_THAT(message_of<config_error>([] { CharTokenizer(Symbols{"a", "bc"}); }),
             Contains("symbols[1]") && Contains("\"bc\""));
  CHECK_THAT(message_of<config_error>([] { CharTokenizer(Symbols{"\xFF\xFE"}); }),
             Contains("symbols[0]") && Contains("\"\\xFF\\xFE\""));
  CHECK_THAT(message_of<config_error>([] { CharTokenizer(Symbols{"\xC3\xA9x"}); }),
             Contains("symbols[0]"));
  CHECK_THAT(message_of<config_error>([] { CharTokenizer(Symbols{"a", "b", "a"}); }),
             Contains("symbols[2] = \"a\" duplicates symbols[0]"));
  CHECK_THAT(message_of<config_error>([] { CharTokenizer(Symbols{"\xC3\xA9", "x", "\xC3\xA9"}); }),
             Contains("symbols[2] = \"\\xC3\\xA9\" duplicates symbols[0]"));
  // A raw byte and the code point of the same number are not duplicates.
  CHECK(CharTokenizer(Symbols{"\xE9", "\xC3\xA9"}).vocab_size() == 2);
}

// --- Tiny Shakespeare from the shared folder -----------------------------------------------------

TEST_CASE("CharTokenizer: Tiny Shakespeare has the 65 characters of its sorted byte set "
          "(skipped without the shared folder)", "[tokenizer][shared]") {
  const std::string text = read_tinyshakespeare();
  if (text.empty()) return;

  // The independent reference: the file is ASCII, so its characters are its distinct bytes.
  const std::set<unsigned char> distinct_bytes(text.begin(), text.end());
  REQUIRE(*distinct_bytes.rbegin() < 0x80);
  Symbols expected;
  for (const unsigned char byte : distinct_bytes) expected.emplace_back(1, static_cast<char>(byte));
  const auto position_of = [&](char c) {
    return static_cast<std::int32_t>(
        std::distance(distinct_bytes.begin(), distinct_bytes.find(static_cast<unsigned char>(c))));
  };

  const auto tokenizer = CharTokenizer::from_corpus(text);
  CHECK(tokenizer.vocab_size() == 65);
  CHECK(tokenizer.symbols() == expected);
  CHECK(tokenizer.symbol(0) == "\n");
  CHECK(tokenizer.symbol(1) == " ");
  CHECK(tokenizer.symbol(2) == "!");

  // The same characters and ids as Karpathy's nanoGPT walkthrough (gpt-dev.ipynb), which prints
  // them and encodes "hii there".
  std::string all_symbols;
  for (const std::string& symbol : tokenizer.symbols()) all_symbols += symbol;
  CHECK(all_symbols == "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
  CHECK(tokenizer.encode("hii there") == Ids{46, 47, 47, 1, 58, 46, 43, 56, 43});

  const std::string first_citizen = "First Citizen";
  Ids first_citizen_ids;
  for (const char c : first_citizen) first_citizen_ids.push_back(position_of(c));
  CHECK(tokenizer.encode(first_citizen) == first_citizen_ids);

  const Ids ids = tokenizer.encode(text);
  CHECK(ids.size() == text.size());
  CHECK(tokenizer.decode(ids) == text);
}

}  // namespace
