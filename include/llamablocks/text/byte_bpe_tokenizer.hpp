// ByteBpeTokenizer: the byte-level BPE tokenizer of GPT-2, used by LLaMA-3 and SmolLM2 (GGUF
// tokenizer.ggml.model = "gpt2"), built from a vocabulary and its ranked merges.
//
// Encoding, as Hugging Face tokenizers' ByteLevel BPE does it:
//   1. special tokens (the control tokens of the vocabulary, e.g. "<|im_start|>") are cut out of
//      the text where they appear verbatim, leftmost first and the longest at one position; each
//      gives its id, and the text between them is encoded by steps 2 to 4 independently;
//   2. the pre-tokenizer splits the text into pieces with the regex of the model (see
//      PreTokenizer), run here as a hand-written scanner over UTF-8 code points with the Unicode
//      classes \p{L}, \p{N} and \s of text/unicode_tables.hpp; a byte of malformed UTF-8 is a code
//      point of its own in none of those classes;
//   3. each piece starts as one symbol per byte: the token of that byte in GPT-2's byte-to-unicode
//      alphabet (bytes are spelled as visible characters, e.g. ' ' as "Ġ" U+0120), or the unknown
//      token for a byte the vocabulary lacks (SmolLM2 lacks 21 bytes, among them 0x04 and
//      0xC0, 0xC1, 0xF5-0xFF, which valid UTF-8 never holds);
//   4. repeatedly, among all adjacent pairs of symbols that form a merge, the pair of the lowest
//      merge rank (the leftmost on ties) is replaced by the merged token, until no pair is a merge.
//      A priority queue of candidate pairs over a linked list of symbols makes this O(n log n) for
//      a piece of n bytes. With ignore_merges (LLaMA-3), a piece that is itself a token gives that
//      token directly.
//
// Decoding maps each token back to its bytes through the inverse alphabet; a special token gives
// its text verbatim. Every token, BOS and EOS included, decodes to its text, as Hugging Face's
// decode(skip_special_tokens=False) and llama.cpp's token_to_piece(special=true) do. Hence
// decode(encode(text, false, false)) == text for every byte string, valid UTF-8 or not, whose
// bytes all have a token (every byte string for a vocabulary with all 256, as LLaMA-3's).
//
// On valid UTF-8 the ids are those of Hugging Face tokenizers with the same vocabulary, merges and
// pre-tokenizer (tests/byte_bpe_parity.py, on SmolLM2's vocabulary).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "llamablocks/core/error.hpp"
#include "llamablocks/text/sentencepiece_tokenizer.hpp"
#include "llamablocks/text/unicode_tables.hpp"
#include "llamablocks/text/utf8.hpp"

namespace llamablocks {

/// How the text is split into pieces before BPE; each piece is merged on its own.
enum class PreTokenizer {
  /// GPT-2's regex (GGUF tokenizer.ggml.pre "gpt2"; Hugging Face ByteLevel(use_regex=True)):
  /// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  gpt2,
  /// LLaMA-3's regex (GGUF "llama-bpe", also tiktoken's cl100k_base):
  /// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
  /// \s*[\r\n]+|\s+(?!\S)|\s+
  llama3,
  /// SmolLM2's (GGUF "smollm"; tokenizer.json: Sequence[Digits(individual_digits=true),
  /// ByteLevel(use_regex=true)], also llama.cpp's STARCODER family): every \p{N} code point is a
  /// piece of its own, and the text between them is split with the gpt2 regex.
  smollm,
};

namespace detail {

/// GPT-2's byte-to-unicode alphabet: the printable bytes '!'..'~', '¡'..'¬', '®'..'ÿ' stand for
/// themselves (as code points), every other byte b for the code point 256 + (its rank among them).
/// This gives each byte a visible, non-space character, so tokens never contain a raw space.
struct ByteAlphabet {
  std::array<char32_t, 256> code_point_of_byte{};
  /// Per code point below 324, its byte, or -1.
  std::array<std::int16_t, 324> byte_of_code_point{};

  ByteAlphabet() {
    byte_of_code_point.fill(-1);
    char32_t next_extra = 256;
    for (std::size_t byte = 0; byte < 256; ++byte) {
      const bool visible = (byte >= 0x21 && byte <= 0x7E) || (byte >= 0xA1 && byte <= 0xAC) ||
                           (byte >= 0xAE && byte <= 0xFF);
      const char32_t code_point = visible ? static_cast<char32_t>(byte) : next_extra++;
      code_point_of_byte[byte] = code_point;
      byte_of_code_point[code_point] = static_cast<std::int16_t>(byte);
    }
  }

  static const ByteAlphabet& instance() {
    static const ByteAlphabet alphabet;
    return alphabet;
  }
};

/// A code point of the text being pre-tokenized and its regex class.
struct ScannedCodePoint {
  enum class Kind : std::uint8_t { letter, number, space, other };
  std::size_t offset;  ///< its first byte in the text
  char32_t value;      ///< the code point; invalid_code_point for a byte of malformed UTF-8
  Kind kind;
};

inline constexpr char32_t invalid_code_point = 0x110000;

/// The code points of `text`, plus a sentinel whose offset is text.size().
inline std::vector<ScannedCodePoint> scan_code_points(std::string_view text) {
  std::vector<ScannedCodePoint> points;
  points.reserve(text.size() + 1);
  using Kind = ScannedCodePoint::Kind;
  for (std::size_t pos = 0; pos < text.size();) {
    const std::size_t length = utf8_sequence_length(text, pos);
    if (length == 0) {
      points.push_back({pos, invalid_code_point, Kind::other});
      ++pos;
      continue;
    }
    const char32_t value = decode_utf8(text, pos, length);
    Kind kind = Kind::other;
    if (is_unicode_whitespace(value)) {
      kind = Kind::space;
    } else {
      const CodePointClass value_class = classify(value);
      if (value_class == CodePointClass::letter) kind = Kind::letter;
      if (value_class == CodePointClass::number) kind = Kind::number;
    }
    points.push_back({pos, value, kind});
    pos += length;
  }
  points.push_back({text.size(), invalid_code_point, Kind::other});
  return points;
}

/// The pre-tokenizer regexes as scanners: each match_* returns the end (a code-point index) of the
/// regex match that starts at code point `i` < `end` of `points`, treating `end` as the end of the
/// text (for the lookahead (?!\S)). The regexes match every code point, so the end is > i.
class PreTokenizerScanner {
 public:
  using Kind = ScannedCodePoint::Kind;

  explicit PreTokenizerScanner(const std::vector<ScannedCodePoint>& points) : points_(points) {}

  /// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  std::size_t match_gpt2(std::size_t i, std::size_t end) const {
    if (const std::size_t length = contraction_length(i, end, /*ignore_case=*/false)) {
      return i + length;
    }
    // " ?X+" for X = \p{L}, \p{N}, [^\s\p{L}\p{N}]: one space joins a run of a non-space class.
    const std::size_t start =
        value(i) == U' ' && i + 1 < end && kind(i + 1) != Kind::space ? i + 1 : i;
    if (kind(start) != Kind::space) return run_end(start, end, kind(start));
    return whitespace_end(i, end);
  }

  /// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
  /// \s*[\r\n]+|\s+(?!\S)|\s+
  std::size_t match_llama3(std::size_t i, std::size_t end) const {
    if (const std::size_t length = contraction_length(i, end, /*ignore_case=*/true)) {
      return i + length;
    }
    if (kind(i) == Kind::letter) return run_end(i, end, Kind::letter);
    if (kind(i) != Kind::number && !is_line_break(i) && i + 1 < end &&
        kind(i + 1) == Kind::letter) {
      return run_end(i + 1, end, Kind::letter);
    }
    if (kind(i) == Kind::number) return std::min(run_end(i, end, Kind::number), i + 3);
    const std::size_t start =
        value(i) == U' ' && i + 1 < end && kind(i + 1) == Kind::other ? i + 1 : i;
    if (kind(start) == Kind::other) {
      std::size_t j = run_end(start, end, Kind::other);
      while (j < end && is_line_break(j)) ++j;
      return j;
    }
    // Whitespace. \s*[\r\n]+ : the longest run of whitespace that ends with its last line break.
    const std::size_t spaces_end = run_end(i, end, Kind::space);
    for (std::size_t j = spaces_end; j > i; --j) {
      if (is_line_break(j - 1)) return j;
    }
    return whitespace_end(i, end);
  }

 private:
  Kind kind(std::size_t i) const { return points_[i].kind; }
  char32_t value(std::size_t i) const { return points_[i].value; }
  bool is_line_break(std::size_t i) const { return value(i) == U'\r' || value(i) == U'\n'; }

  std::size_t run_end(std::size_t i, std::size_t end, Kind run_kind) const {
    while (i < end && kind(i) == run_kind) ++i;
    return i;
  }

  /// \s+(?!\S)|\s+ at a whitespace code point i: the whole run when it ends the text, else the run
  /// less its last code point (which then prefixes the next piece), else one code point.
  std::size_t whitespace_end(std::size_t i, std::size_t end) const {
    const std::size_t spaces_end = run_end(i, end, Kind::space);
    if (spaces_end == end || spaces_end - i == 1) return spaces_end;
    return spaces_end - 1;
  }

  /// The length in code points of 's|'t|'re|'ve|'m|'ll|'d at i, or 0. With `ignore_case`, letters
  /// match both ASCII cases and 's' also matches U+017F (ſ), whose simple case folding is 's', as
  /// in Oniguruma's (?i).
  std::size_t contraction_length(std::size_t i, std::size_t end, bool ignore_case) const {
    if (value(i) != U'\'' || i + 1 >= end) return 0;
    const auto is = [&](std::size_t j, char32_t lower) {
      if (j >= end) return false;
      const char32_t c = value(j);
      if (c == lower) return true;
      if (!ignore_case) return false;
      return c == lower - (U'a' - U'A') || (lower == U's' && c == 0x17F);
    };
    if (is(i + 1, U's') || is(i + 1, U't') || is(i + 1, U'm') || is(i + 1, U'd')) return 2;
    if ((is(i + 1, U'r') && is(i + 2, U'e')) || (is(i + 1, U'v') && is(i + 2, U'e')) ||
        (is(i + 1, U'l') && is(i + 2, U'l'))) {
      return 3;
    }
    return 0;
  }

  const std::vector<ScannedCodePoint>& points_;
};

}  // namespace detail

/// Splits `text` into the pieces of the pre-tokenizer `pre_tokenizer` (see PreTokenizer): views of
/// `text` in order whose concatenation is `text`; none for "". Any byte string is accepted; a byte
/// of malformed UTF-8 counts as a code point that is neither a letter, a number nor a space.
inline std::vector<std::string_view> pre_tokenize(std::string_view text,
                                                  PreTokenizer pre_tokenizer) {
  const std::vector<detail::ScannedCodePoint> points = detail::scan_code_points(text);
  const detail::PreTokenizerScanner scanner(points);
  const std::size_t count = points.size() - 1;  // without the sentinel
  std::vector<std::string_view> pieces;
  const auto add = [&](std::size_t first, std::size_t last) {
    pieces.push_back(text.substr(points[first].offset, points[last].offset - points[first].offset));
  };
  const auto split_gpt2 = [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end;) {
      const std::size_t next = scanner.match_gpt2(i, end);
      add(i, next);
      i = next;
    }
  };
  switch (pre_tokenizer) {
    case PreTokenizer::gpt2:
      split_gpt2(0, count);
      break;
    case PreTokenizer::llama3:
      for (std::size_t i = 0; i < count;) {
        const std::size_t next = scanner.match_llama3(i, count);
        add(i, next);
        i = next;
      }
      break;
    case PreTokenizer::smollm: {
      std::size_t begin = 0;
      for (std::size_t i = 0; i < count; ++i) {
        if (points[i].kind != detail::ScannedCodePoint::Kind::number) continue;
        split_gpt2(begin, i);
        add(i, i + 1);
        begin = i + 1;
      }
      split_gpt2(begin, count);
      break;
    }
  }
  return pieces;
}

/// The byte-level BPE tokenizer of GPT-2, LLaMA-3 and SmolLM2; see the top of this header for the
/// algorithm.
///
/// Immutable after construction: encode() and decode() are const and may run concurrently.
///
/// \code
/// // tokens, merges, token types from a GGUF file with tokenizer.ggml.model == "gpt2"
/// ByteBpeTokenizer tokenizer(tokens, merges, /*bos_id=*/1, /*eos_id=*/2, PreTokenizer::smollm,
///                            /*special_ids=*/control_token_ids);
/// std::vector<std::int32_t> ids = tokenizer.encode("<|im_start|>user\nHi", false, false);
/// std::string text = tokenizer.decode(ids);   // "<|im_start|>user\nHi"
/// \endcode
class ByteBpeTokenizer {
 public:
  /// Passed as `unk_id`: the vocabulary has no unknown token.
  static constexpr std::int32_t no_unk_id = -1;

  /// A tokenizer over a vocabulary, e.g. the tokenizer.ggml.tokens / .merges of a GGUF file.
  ///
  /// \param tokens         the text of each token id in GPT-2's byte-to-unicode alphabet (e.g.
  ///                       "Ġthe" for " the"); it must hold the 256 one-byte tokens. Special
  ///                       tokens are plain text ("<|im_start|>").
  /// \param merges         the merges in rank order (the first merges first), each "left right":
  ///                       two tokens separated by one space, whose concatenation is a token.
  /// \param bos_id         the begin-of-sequence token, added by encode(text, true, ...).
  /// \param eos_id         the end-of-sequence token, added by encode(text, ..., true).
  /// \param pre_tokenizer  the split applied before BPE (GGUF tokenizer.ggml.pre: "gpt2" -> gpt2,
  ///                       "llama-bpe" -> llama3, "smollm" -> smollm).
  /// \param special_ids    the tokens matched verbatim in the text before splitting (those of GGUF
  ///                       token_type == 3, control); each must be non-empty.
  /// \param unk_id         the token of a byte that has no one-byte token (GGUF
  ///                       tokenizer.ggml.unknown_token_id), or no_unk_id: encode() then throws on
  ///                       such a byte.
  /// \param ignore_merges  a piece that is a token gives that token without merging (Hugging Face
  ///                       BPE's ignore_merges, true for LLaMA-3).
  /// \throws config_error naming the argument and its value when the vocabulary is empty or larger
  ///         than INT32_MAX, a merge is malformed, names a token that is not in the vocabulary, or
  ///         gives a token that does not decode to the bytes of its two parts, or an id is out of
  ///         range. A byte without a one-byte token that decodes to it encodes as unk_id.
  ByteBpeTokenizer(std::vector<std::string> tokens, const std::vector<std::string>& merges,
                   std::int32_t bos_id, std::int32_t eos_id, PreTokenizer pre_tokenizer,
                   const std::vector<std::int32_t>& special_ids = {},
                   std::int32_t unk_id = no_unk_id, bool ignore_merges = false)
      : bos_id_(bos_id),
        eos_id_(eos_id),
        unk_id_(unk_id),
        pre_tokenizer_(pre_tokenizer),
        ignore_merges_(ignore_merges) {
    detail::require<config_error>(!tokens.empty(), "ByteBpeTokenizer: tokens must not be empty");
    detail::require<config_error>(
        tokens.size() <= static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()),
        "ByteBpeTokenizer: tokens must hold at most INT32_MAX tokens, got ", tokens.size());
    vocab_size_ = static_cast<std::int32_t>(tokens.size());
    const auto require_id = [&](std::int32_t id, const std::string& name) {
      detail::require<config_error>(id >= 0 && id < vocab_size_, "ByteBpeTokenizer: ", name,
                                    " must be in [0, vocab_size = ", vocab_size_, "), got ", id);
    };
    require_id(bos_id, "bos_id");
    require_id(eos_id, "eos_id");
    if (unk_id != no_unk_id) require_id(unk_id, "unk_id (or no_unk_id = -1)");

    ids_.reserve(tokens.size());
    for (std::size_t id = 0; id < tokens.size(); ++id) {
      ids_.emplace(tokens[id], static_cast<std::int32_t>(id));  // the first of duplicates wins
    }
    special_.assign(tokens.size(), false);
    for (std::size_t i = 0; i < special_ids.size(); ++i) {
      const std::int32_t id = special_ids[i];
      require_id(id, detail::concat("special_ids[", i, "]"));
      const std::string& text = tokens[static_cast<std::size_t>(id)];
      detail::require<config_error>(!text.empty(), "ByteBpeTokenizer: special_ids[", i, "] = ", id,
                                    " must name a non-empty token");
      if (special_[static_cast<std::size_t>(id)]) continue;
      special_[static_cast<std::size_t>(id)] = true;
      specials_by_first_byte_[static_cast<unsigned char>(text.front())].push_back(id);
    }

    token_bytes_.reserve(tokens.size());
    for (std::size_t id = 0; id < tokens.size(); ++id) {
      token_bytes_.push_back(special_[id] ? tokens[id] : bytes_of(tokens[id]));
    }
    for (auto& candidates : specials_by_first_byte_) {
      // Longest first, so the first one that matches is the longest match.
      std::stable_sort(candidates.begin(), candidates.end(), [&](std::int32_t a, std::int32_t b) {
        return token_bytes_[static_cast<std::size_t>(a)].size() >
               token_bytes_[static_cast<std::size_t>(b)].size();
      });
    }
    // A byte's token must decode to that byte alone (a special token spelled like a byte decodes
    // to its own text): otherwise the byte has no token and falls back to unk_id.
    const auto& alphabet = detail::ByteAlphabet::instance();
    for (std::size_t byte = 0; byte < 256; ++byte) {
      std::string spelled;
      detail::append_utf8(alphabet.code_point_of_byte[byte], spelled);
      const auto found = ids_.find(spelled);
      const bool decodes_to_byte =
          found != ids_.end() &&
          token_bytes_[static_cast<std::size_t>(found->second)] == std::string(1, static_cast<char>(byte));
      byte_ids_[byte] = decodes_to_byte ? found->second : unk_id_;
    }

    merges_.reserve(merges.size());
    for (std::size_t rank = 0; rank < merges.size(); ++rank) {
      const std::string& merge = merges[rank];
      const std::size_t space = merge.find(' ');
      detail::require<config_error>(
          space != std::string::npos && space > 0 && space + 1 < merge.size() &&
              merge.find(' ', space + 1) == std::string::npos,
          "ByteBpeTokenizer: merges[", rank, "] must be two tokens separated by one space, got '",
          merge, "'");
      const std::string left = merge.substr(0, space);
      const std::string right = merge.substr(space + 1);
      const auto token_id = [&](const std::string& text, const char* what) {
        const auto found = ids_.find(text);
        detail::require<config_error>(found != ids_.end(), "ByteBpeTokenizer: merges[", rank,
                                      "] = '", merge, "': its ", what, " '", text,
                                      "' is not a token");
        return found->second;
      };
      const std::int32_t left_id = token_id(left, "left part");
      const std::int32_t right_id = token_id(right, "right part");
      const std::int32_t merged_id = token_id(left + right, "concatenation");
      // decode() of the merged token must give the bytes of its parts, or merging would change
      // the text (e.g. parts that are halves of one UTF-8 character, or a special token).
      const auto bytes = [&](std::int32_t id) -> const std::string& {
        return token_bytes_[static_cast<std::size_t>(id)];
      };
      detail::require<config_error>(
          bytes(left_id) + bytes(right_id) == bytes(merged_id), "ByteBpeTokenizer: merges[", rank,
          "] = '", merge, "': token ", merged_id, " does not decode to the bytes of its parts ",
          left_id, " and ", right_id);
      merges_.emplace(
          pair_key(left_id, right_id),
          Merge{static_cast<std::int32_t>(std::min<std::size_t>(
                    rank, static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))),
                merged_id});
    }

    tokens_ = std::move(tokens);
  }

  /// The token ids of `text`: BOS if `add_bos`, the encoding of `text` (nothing for ""), EOS if
  /// `add_eos`. `text` may be any byte string.
  /// \throws range_error naming the byte and its offset when a byte has no token and there is no
  ///         unknown token (unk_id was no_unk_id).
  std::vector<std::int32_t> encode(std::string_view text, bool add_bos, bool add_eos) const {
    std::vector<std::int32_t> ids;
    if (add_bos) ids.push_back(bos_id_);
    std::size_t segment_start = 0;
    for (std::size_t pos = 0; pos < text.size();) {
      const std::int32_t special = special_at(text, pos);
      if (special < 0) {
        ++pos;
        continue;
      }
      encode_segment(text.substr(segment_start, pos - segment_start), ids);
      ids.push_back(special);
      pos += token_bytes_[static_cast<std::size_t>(special)].size();
      segment_start = pos;
    }
    encode_segment(text.substr(segment_start), ids);
    if (add_eos) ids.push_back(eos_id_);
    return ids;
  }

  /// The bytes of `token` (which, in byte-level BPE, do not depend on `previous`; it is checked
  /// so that streaming callers keep the shape of SentencePieceTokenizer::decode). A token may end
  /// in the middle of a UTF-8 character: concatenate before displaying.
  /// \throws range_error naming the argument when `previous` or `token` is not in [0, vocab_size).
  std::string decode(std::int32_t previous, std::int32_t token) const {
    check_id(previous, "previous");
    check_id(token, "token");
    return token_bytes_[static_cast<std::size_t>(token)];
  }

  /// The bytes of a whole sequence, every token included (BOS and EOS give their text).
  /// decode(encode(text, false, false)) == text for every byte string.
  /// \throws range_error naming the position and the id of a token not in [0, vocab_size).
  std::string decode(const std::vector<std::int32_t>& tokens) const {
    std::size_t size = 0;
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      detail::require<range_error>(
          tokens[i] >= 0 && tokens[i] < vocab_size_, "ByteBpeTokenizer::decode: tokens[", i,
          "] must be in [0, vocab_size = ", vocab_size_, "), got ", tokens[i]);
      size += token_bytes_[static_cast<std::size_t>(tokens[i])].size();
    }
    std::string text;
    text.reserve(size);
    for (const std::int32_t token : tokens) text += token_bytes_[static_cast<std::size_t>(token)];
    return text;
  }

  std::int32_t vocab_size() const { return vocab_size_; }
  std::int32_t bos_id() const { return bos_id_; }
  std::int32_t eos_id() const { return eos_id_; }
  /// The unknown token, or no_unk_id.
  std::int32_t unk_id() const { return unk_id_; }
  PreTokenizer pre_tokenizer() const { return pre_tokenizer_; }
  bool ignore_merges() const { return ignore_merges_; }

  /// The token `id` as given to the constructor (byte-level alphabet, e.g. "Ġthe").
  /// \throws range_error when id is out of range.
  const std::string& token(std::int32_t id) const {
    check_id(id, "id");
    return tokens_[static_cast<std::size_t>(id)];
  }

  /// Whether `id` is a special token (matched verbatim in encode()). \throws range_error.
  bool is_special(std::int32_t id) const {
    check_id(id, "id");
    return special_[static_cast<std::size_t>(id)];
  }

 private:
  struct Merge {
    std::int32_t rank;
    std::int32_t merged_id;
  };

  /// A symbol of the piece being merged, in a doubly linked list; merged-away symbols have id -1.
  struct Symbol {
    std::int32_t id;
    std::size_t prev;
    std::size_t next;
  };

  /// Symbols `left` and its successor `right`, with ids `left_id` and `right_id` when pushed,
  /// merge into `merged_id` at rank `rank`.
  struct Candidate {
    std::int32_t rank;
    std::size_t left;
    std::size_t right;
    std::int32_t left_id;
    std::int32_t right_id;
    std::int32_t merged_id;
  };

  /// Lowest rank first, then the leftmost pair.
  struct LowerPriority {
    bool operator()(const Candidate& a, const Candidate& b) const {
      return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
    }
  };

  static constexpr std::size_t none = std::numeric_limits<std::size_t>::max();

  static std::uint64_t pair_key(std::int32_t left, std::int32_t right) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) |
           static_cast<std::uint32_t>(right);
  }

  /// The bytes a token spelled in the byte-level alphabet stands for; a character outside the
  /// alphabet (an added token's text) stands for its own UTF-8 bytes.
  static std::string bytes_of(std::string_view spelled) {
    const auto& alphabet = detail::ByteAlphabet::instance();
    std::string bytes;
    for (std::size_t pos = 0; pos < spelled.size();) {
      const std::size_t length = detail::utf8_sequence_length(spelled, pos);
      if (length == 0) {
        bytes += spelled[pos++];
        continue;
      }
      const char32_t code_point = detail::decode_utf8(spelled, pos, length);
      if (code_point < alphabet.byte_of_code_point.size() &&
          alphabet.byte_of_code_point[code_point] >= 0) {
        bytes +=
            static_cast<char>(static_cast<unsigned char>(alphabet.byte_of_code_point[code_point]));
      } else {
        bytes.append(spelled.substr(pos, length));
      }
      pos += length;
    }
    return bytes;
  }

  void check_id(std::int32_t id, const char* name) const {
    detail::require<range_error>(id >= 0 && id < vocab_size_, "ByteBpeTokenizer: ", name,
                                 " must be in [0, vocab_size = ", vocab_size_, "), got ", id);
  }

  /// The longest special token whose text starts at text[pos], or -1.
  std::int32_t special_at(std::string_view text, std::size_t pos) const {
    for (const std::int32_t id : specials_by_first_byte_[static_cast<unsigned char>(text[pos])]) {
      const std::string& special = token_bytes_[static_cast<std::size_t>(id)];
      if (text.compare(pos, special.size(), special) == 0) return id;
    }
    return -1;
  }

  /// Appends the ids of `text`, which holds no special token, to `ids`.
  void encode_segment(std::string_view text, std::vector<std::int32_t>& ids) const {
    if (text.empty()) return;
    std::vector<Symbol> symbols;
    std::priority_queue<Candidate, std::vector<Candidate>, LowerPriority> candidates;
    std::string spelled;
    for (const std::string_view piece : pre_tokenize(text, pre_tokenizer_)) {
      if (ignore_merges_) {
        spelled.clear();
        for (const char byte : piece) {
          detail::append_utf8(
              detail::ByteAlphabet::instance().code_point_of_byte[static_cast<unsigned char>(byte)],
              spelled);
        }
        const auto found = ids_.find(spelled);
        if (found != ids_.end() && token_bytes_[static_cast<std::size_t>(found->second)] == piece) {
          ids.push_back(found->second);
          continue;
        }
      }
      merge_piece(piece, symbols, candidates);
      for (std::size_t i = 0; i != none; i = symbols[i].next) ids.push_back(symbols[i].id);
    }
  }

  /// Leaves in `symbols` the merged symbols of non-empty `piece`, a list that starts at index 0.
  void merge_piece(
      std::string_view piece, std::vector<Symbol>& symbols,
      std::priority_queue<Candidate, std::vector<Candidate>, LowerPriority>& candidates) const {
    symbols.clear();
    for (std::size_t i = 0; i < piece.size(); ++i) {
      const std::int32_t id = byte_ids_[static_cast<unsigned char>(piece[i])];
      detail::require<range_error>(id != no_unk_id, "ByteBpeTokenizer::encode: byte 0x", std::hex,
                                   static_cast<unsigned>(static_cast<unsigned char>(piece[i])),
                                   std::dec, " of piece '", piece,
                                   "' has no token, and the vocabulary has no unknown token "
                                   "(unk_id = no_unk_id)");
      symbols.push_back({id, i == 0 ? none : i - 1, i + 1 == piece.size() ? none : i + 1});
    }
    const auto consider = [&](std::size_t left) {
      if (left == none) return;
      const std::size_t right = symbols[left].next;
      if (right == none) return;
      const auto found = merges_.find(pair_key(symbols[left].id, symbols[right].id));
      if (found == merges_.end()) return;
      candidates.push({found->second.rank, left, right, symbols[left].id, symbols[right].id,
                       found->second.merged_id});
    };
    for (std::size_t i = 0; i + 1 < symbols.size(); ++i) consider(i);

    while (!candidates.empty()) {
      const Candidate best = candidates.top();
      candidates.pop();
      Symbol& left = symbols[best.left];
      Symbol& right = symbols[best.right];
      // Stale when either symbol changed since: a merged symbol gets a longer token, so its id
      // differs from any id it had before, and a merged-away one has id -1.
      if (left.id != best.left_id || right.id != best.right_id || left.next != best.right) {
        continue;
      }
      left.id = best.merged_id;
      left.next = right.next;
      if (right.next != none) symbols[right.next].prev = best.left;
      right.id = -1;
      consider(left.prev);
      consider(best.left);
    }
  }

  std::vector<std::string> tokens_;
  /// Per id, the bytes it decodes to.
  std::vector<std::string> token_bytes_;
  /// Token text (byte-level alphabet) -> id, the first of duplicates.
  std::unordered_map<std::string, std::int32_t> ids_;
  /// (left id, right id) -> rank and merged id.
  std::unordered_map<std::uint64_t, Merge> merges_;
  /// Per byte value, the id of its one-byte token, else unk_id_.
  std::array<std::int32_t, 256> byte_ids_{};
  /// Per id, whether it is special.
  std::vector<bool> special_;
  /// Per first byte, the special tokens that start with it, longest first.
  std::array<std::vector<std::int32_t>, 256> specials_by_first_byte_;
  std::int32_t vocab_size_ = 0;
  std::int32_t bos_id_;
  std::int32_t eos_id_;
  std::int32_t unk_id_;
  PreTokenizer pre_tokenizer_;
  bool ignore_merges_;
};

}  // namespace llamablocks
