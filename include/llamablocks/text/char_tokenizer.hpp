// CharTokenizer: the character-level tokenizer of the "LLaMA-3 from scratch" write-up, which trains a
// small LLaMA on Tiny Shakespeare with chars = sorted(set(text)), stoi and itos.
//
// The vocabulary is the sorted set of the distinct characters of a corpus; a token id is a
// character's position in it. A character is one Unicode code point of the UTF-8 text, so on valid
// UTF-8 the ids are those of Python's sorted(set(text)) (Tiny Shakespeare: 65 symbols, "\n" first).
//
// Malformed UTF-8: each byte that does not start a well-formed sequence (text/utf8.hpp) is a
// symbol of its own, a raw byte, distinct from the code point of the same number (the byte 0xE9 is
// not "é", U+00E9). Raw bytes sort after every code point. So every byte string has a vocabulary,
// and decode(encode(text)) == text exactly. The converse, encode(decode(ids)) == ids, fails only
// when the ids put raw bytes next to each other that together spell a well-formed character.
//
// Encoding is one pass over the bytes: an ASCII byte is looked up in a 128-entry table, any other
// character by binary search over the sorted non-ASCII symbols.
#pragma once

#include "llamablocks/core/error.hpp"
#include "llamablocks/text/utf8.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace llamablocks {
namespace detail {

/// A character as CharTokenizer orders them: a code point (< 0x110000), or raw_byte_base + b for a
/// byte b of malformed UTF-8, so raw bytes sort after every code point.
using CharUnit = std::uint32_t;
constexpr CharUnit raw_byte_base = 0x110000;

/// The character that starts at `text[pos]`; sets `length` to its size in bytes (1 to 4).
inline CharUnit char_unit_at(std::string_view text, std::size_t pos, std::size_t& length) {
  length = utf8_sequence_length(text, pos);
  if (length == 0) {
    length = 1;
    return raw_byte_base + static_cast<unsigned char>(text[pos]);
  }
  return decode_utf8(text, pos, length);
}

/// The bytes of `unit`: its UTF-8 encoding, or the raw byte.
inline std::string spell_char_unit(CharUnit unit) {
  if (unit >= raw_byte_base) return std::string(1, static_cast<char>(unit - raw_byte_base));
  std::string spelled;
  append_utf8(static_cast<char32_t>(unit), spelled);
  return spelled;
}

/// "U+00E9 'é'", "U+000A" or "byte 0xE9", for error messages: the glyph only where it prints.
inline std::string describe_char_unit(CharUnit unit) {
  char text[16];
  if (unit >= raw_byte_base) {
    std::snprintf(text, sizeof text, "byte 0x%02X", static_cast<unsigned>(unit - raw_byte_base));
    return text;
  }
  std::snprintf(text, sizeof text, "U+%04X", static_cast<unsigned>(unit));
  const bool prints = (unit >= 0x20 && unit < 0x7F) || unit >= 0xA0;
  return prints ? std::string(text) + " '" + spell_char_unit(unit) + "'" : std::string(text);
}

/// `bytes` in double quotes, with every byte outside printable ASCII written as \xNN.
inline std::string quoted_bytes(std::string_view bytes) {
  std::string quoted = "\"";
  for (const char c : bytes) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7F && c != '"' && c != '\\') {
      quoted += c;
    } else {
      char escape[8];
      std::snprintf(escape, sizeof escape, "\\x%02X", static_cast<unsigned>(byte));
      quoted += escape;
    }
  }
  return quoted + "\"";
}

}  // namespace detail

/// Character-level tokenizer: one token per Unicode code point (or per byte of malformed UTF-8).
///
/// `CharTokenizer::from_corpus(text)` builds the vocabulary as Python's `sorted(set(text))` does;
/// the vector constructor reloads a saved one, ids being positions in the vector. All member
/// functions are const after construction, so one tokenizer may be shared between threads.
///
/// Errors: a bad vocabulary throws `config_error`, an unknown character or an id outside
/// [0, vocab_size) throws `range_error`; a call that throws changes nothing.
class CharTokenizer {
 public:
  /// The tokenizer whose vocabulary is the distinct characters of `text` in code-point order, raw
  /// bytes of malformed UTF-8 last (in byte order).
  /// \param text the corpus, UTF-8; must not be empty.
  static CharTokenizer from_corpus(std::string_view text) {
    detail::require<config_error>(!text.empty(),
                                  "CharTokenizer::from_corpus: text must not be empty, got 0 bytes");
    std::array<bool, 128> seen_ascii{};
    std::vector<detail::CharUnit> non_ascii;
    for (std::size_t pos = 0; pos < text.size();) {
      const auto byte = static_cast<unsigned char>(text[pos]);
      if (byte < 0x80) {
        seen_ascii[byte] = true;
        ++pos;
        continue;
      }
      std::size_t length = 0;
      non_ascii.push_back(detail::char_unit_at(text, pos, length));
      pos += length;
    }
    std::sort(non_ascii.begin(), non_ascii.end());
    non_ascii.erase(std::unique(non_ascii.begin(), non_ascii.end()), non_ascii.end());

    std::vector<std::string> symbols;
    for (std::size_t byte = 0; byte < seen_ascii.size(); ++byte) {
      if (seen_ascii[byte]) symbols.emplace_back(1, static_cast<char>(byte));
    }
    for (const detail::CharUnit unit : non_ascii) symbols.push_back(detail::spell_char_unit(unit));
    return CharTokenizer(std::move(symbols));
  }

  /// The tokenizer whose token `id` is `symbols[id]`.
  /// \param symbols the vocabulary, not empty: each one UTF-8 code point, or one byte in
  ///        0x80..0xFF that stands for itself (a raw byte of malformed UTF-8); no duplicates.
  explicit CharTokenizer(std::vector<std::string> symbols) : symbols_(std::move(symbols)) {
    detail::require<config_error>(!symbols_.empty(),
                                  "CharTokenizer: symbols must not be empty, got 0 symbols");
    // Every symbol is a distinct CharUnit, so a longer vector must hold a duplicate; refusing it
    // here keeps every id within std::int32_t.
    detail::require<config_error>(symbols_.size() <= max_vocab_size,
                                  "CharTokenizer: symbols must hold at most ", max_vocab_size,
                                  " distinct characters, got ", symbols_.size());
    ascii_ids_.fill(-1);
    for (std::size_t id = 0; id < symbols_.size(); ++id) {
      const std::string& symbol = symbols_[id];
      detail::require<config_error>(!symbol.empty(), "CharTokenizer: symbols[", id,
                                    "] must be one character, got \"\"");
      std::size_t length = 0;
      const detail::CharUnit unit = detail::char_unit_at(symbol, 0, length);
      detail::require<config_error>(length == symbol.size(), "CharTokenizer: symbols[", id,
                                    "] must be one UTF-8 character or one byte, got ",
                                    detail::quoted_bytes(symbol), " (", symbol.size(), " bytes)");
      if (unit < ascii_ids_.size()) {
        const std::int32_t first = ascii_ids_[unit];
        detail::require<config_error>(first < 0, "CharTokenizer: symbols[", id, "] = ",
                                      detail::quoted_bytes(symbol), " duplicates symbols[", first,
                                      "]");
        ascii_ids_[unit] = static_cast<std::int32_t>(id);
      } else {
        non_ascii_ids_.emplace_back(unit, static_cast<std::int32_t>(id));
      }
    }
    std::sort(non_ascii_ids_.begin(), non_ascii_ids_.end());
    const auto duplicate = std::adjacent_find(
        non_ascii_ids_.begin(), non_ascii_ids_.end(),
        [](const auto& a, const auto& b) { return a.first == b.first; });
    if (duplicate != non_ascii_ids_.end()) {
      const std::int32_t first = duplicate->second;
      const std::int32_t second = std::next(duplicate)->second;  // sorted by (unit, id)
      throw config_error(detail::concat(
          "CharTokenizer: symbols[", second, "] = ",
          detail::quoted_bytes(symbols_[static_cast<std::size_t>(second)]), " duplicates symbols[",
          first, "]"));
    }
  }

  /// The vocabulary: `symbols()[id]` is the text of token `id`.
  const std::vector<std::string>& symbols() const { return symbols_; }

  /// The text of token `id`; throws range_error unless 0 <= id < vocab_size().
  const std::string& symbol(std::int32_t id) const {
    check_id(id, "id ", id);
    return symbols_[static_cast<std::size_t>(id)];
  }

  std::int32_t vocab_size() const { return static_cast<std::int32_t>(symbols_.size()); }

  /// One id per character of `text`. A character not in the vocabulary throws range_error naming
  /// it (U+XXXX or byte 0xNN) and its byte offset in `text`.
  std::vector<std::int32_t> encode(std::string_view text) const {
    std::vector<std::int32_t> ids;
    ids.reserve(text.size());
    for (std::size_t pos = 0; pos < text.size();) {
      const auto byte = static_cast<unsigned char>(text[pos]);
      if (byte < 0x80) {
        const std::int32_t id = ascii_ids_[byte];
        if (id < 0) throw_unknown(byte, pos);
        ids.push_back(id);
        ++pos;
        continue;
      }
      std::size_t length = 0;
      const detail::CharUnit unit = detail::char_unit_at(text, pos, length);
      const auto found = std::lower_bound(
          non_ascii_ids_.begin(), non_ascii_ids_.end(), unit,
          [](const std::pair<detail::CharUnit, std::int32_t>& entry, detail::CharUnit value) {
            return entry.first < value;
          });
      if (found == non_ascii_ids_.end() || found->first != unit) throw_unknown(unit, pos);
      ids.push_back(found->second);
      pos += length;
    }
    return ids;
  }

  /// The concatenated symbols of `ids`; an id outside [0, vocab_size) throws range_error.
  std::string decode(const std::vector<std::int32_t>& ids) const {
    std::string text;
    text.reserve(ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) {
      check_id(ids[i], "ids[", i, "] = ", ids[i]);
      text += symbols_[static_cast<std::size_t>(ids[i])];
    }
    return text;
  }

  /// The symbol of one id; an id outside [0, vocab_size) throws range_error.
  std::string decode(std::int32_t id) const { return symbol(id); }

 private:
  /// One symbol per code point and per raw byte 0x80..0xFF at most.
  static constexpr std::size_t max_vocab_size = detail::raw_byte_base + 256;

  template <class... Named>
  void check_id(std::int32_t id, const Named&... named) const {
    detail::require<range_error>(id >= 0 && id < vocab_size(), "CharTokenizer: ", named...,
                                 " is outside [0, vocab_size = ", vocab_size(), ")");
  }

  [[noreturn]] void throw_unknown(detail::CharUnit unit, std::size_t offset) const {
    throw range_error(detail::concat("CharTokenizer: character ", detail::describe_char_unit(unit),
                                     " at byte offset ", offset,
                                     " is not in the vocabulary (vocab_size = ", vocab_size(),
                                     ")"));
  }

  std::vector<std::string> symbols_;
  /// Id of each ASCII character, or -1 when it is not in the vocabulary.
  std::array<std::int32_t, 128> ascii_ids_{};
  /// (character, id) of every other symbol, sorted by character, for binary search.
  std::vector<std::pair<detail::CharUnit, std::int32_t>> non_ascii_ids_;
};

}  // namespace llamablocks
