// SentencePieceTokenizer: the byte-fallback BPE tokenizer of LLaMA / LLaMA-2 (SentencePiece "bpe"
// model, identity normalization), read from llama2.c's tokenizer.bin or built from a vocabulary.
//
// Encoding, as SentencePiece's bpe_model does it:
//   1. a dummy prefix: a space is prepended to non-empty text (SentencePiece's "▁");
//   2. the text is split into UTF-8 code points; each byte of malformed UTF-8 is a unit of its own;
//   3. repeatedly, among all adjacent pairs of units whose concatenation is a piece of the
//      vocabulary, the pair whose piece has the highest score (the leftmost on ties) is merged,
//      until no pair is a piece. A priority queue of candidate pairs over a linked list of units
//      makes this O(n log n), with O(n) hash look-ups, for n code points;
//   4. each unit that is a piece gives its id; any other unit gives one byte token <0xNN> per byte
//      (byte fallback), or the unknown token when the vocabulary has no such byte token.
// Only "normal" pieces take part in steps 3 and 4: never BOS, EOS, the unknown token or the byte
// tokens, so text that spells "<0x41>" or "<s>" is not mistaken for those tokens.
//
// Decoding concatenates the pieces, with llama2.c's rules: a byte token gives its raw byte, BOS
// and EOS give nothing, and the leading space (the dummy prefix) of a token that follows BOS is
// removed. Hence decode(encode(text, ...)) == text for every byte string, valid UTF-8 or not.
//
// Spaces: SentencePiece and GGUF spell them "▁" (U+2581) inside pieces, llama2.c's tokenizer.bin
// spells them ' '. Pieces are stored with ' ', so both vocabularies give the same tokenizer.
//
// On valid UTF-8 without U+2581 the ids are those of SentencePiece with LLaMA-2's tokenizer.model
// (tests/sentencepiece_parity.py). It differs, so that every byte string round-trips, in two
// places: malformed UTF-8 is kept byte by byte (SentencePiece replaces it by U+FFFD), and a "▁"
// in the text is an ordinary character (SentencePiece reads it as a space).
#pragma once

#include "llamablocks/core/error.hpp"
#include "llamablocks/io/format_error.hpp"
#include "llamablocks/text/utf8.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <queue>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace llamablocks {
namespace detail {

/// The byte a byte-token piece "<0xNN>" (two upper-case hex digits) stands for, or -1.
inline int byte_piece_value(std::string_view piece) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return -1;
  const auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  const int high = hex(piece[3]);
  const int low = hex(piece[4]);
  return high < 0 || low < 0 ? -1 : high * 16 + low;
}

/// Replaces every SentencePiece space marker "▁" (U+2581) by ' '.
inline std::string spaces_from_sentencepiece(std::string piece) {
  static constexpr std::string_view marker = "\xE2\x96\x81";
  for (std::size_t pos = piece.find(marker); pos != std::string::npos;
       pos = piece.find(marker, pos + 1)) {
    piece.replace(pos, marker.size(), " ");
  }
  return piece;
}

/// Hash index from piece to id over a subset of a vocabulary (open addressing, linear probing).
/// It stores ids only and compares keys against the vocabulary passed to find(), so it stays valid
/// when the owner of the vocabulary is copied or moved. The first of duplicate pieces wins.
class PieceIndex {
 public:
  PieceIndex() = default;

  /// Indexes `pieces[id]` for every id with `keep(id)`.
  template <class Keep>
  PieceIndex(const std::vector<std::string>& pieces, Keep keep) {
    std::size_t capacity = 8;
    while (capacity < 2 * pieces.size()) capacity *= 2;  // load factor <= 1/2
    slots_.assign(capacity, empty);
    mask_ = capacity - 1;
    for (std::size_t id = 0; id < pieces.size(); ++id) {
      if (!keep(id)) continue;
      std::size_t slot = std::hash<std::string_view>{}(pieces[id]) & mask_;
      while (slots_[slot] != empty &&
             pieces[static_cast<std::size_t>(slots_[slot])] != pieces[id]) {
        slot = (slot + 1) & mask_;
      }
      if (slots_[slot] == empty) slots_[slot] = static_cast<std::int32_t>(id);
    }
  }

  /// The id of `key` among the indexed pieces of `pieces` (the vocabulary given at construction),
  /// or -1.
  std::int32_t find(const std::vector<std::string>& pieces, std::string_view key) const {
    if (slots_.empty()) return empty;
    std::size_t slot = std::hash<std::string_view>{}(key) & mask_;
    while (slots_[slot] != empty) {
      if (pieces[static_cast<std::size_t>(slots_[slot])] == key) return slots_[slot];
      slot = (slot + 1) & mask_;
    }
    return empty;
  }

 private:
  static constexpr std::int32_t empty = -1;
  std::vector<std::int32_t> slots_;
  std::size_t mask_ = 0;
};

/// The whole content of the file `path`; format_error, prefixed by `where`, when the file cannot be
/// opened or read (C stdio: iostreams would throw std::ios_base::failure on a read error).
inline std::string read_file_bytes(const std::string& path, const std::string& where) {
  errno = 0;
  const std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                             &std::fclose);
  if (!file) {
    throw format_error(
        concat(where, "cannot open the file: ", std::system_category().message(errno)));
  }
  std::string bytes;
  std::array<char, 1 << 15> buffer;
  for (std::size_t count; (count = std::fread(buffer.data(), 1, buffer.size(), file.get())) > 0;) {
    bytes.append(buffer.data(), count);
  }
  if (std::ferror(file.get())) {
    throw format_error(concat(where, "reading the file failed after ", bytes.size(),
                              " bytes: ", std::system_category().message(errno)));
  }
  return bytes;
}

/// Little-endian int32 / float32 at `bytes[offset]` (the caller has checked the bounds).
inline std::uint32_t load_u32_le(const std::string& bytes, std::size_t offset) {
  std::uint32_t value = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    value |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[offset + i])) << (8 * i);
  }
  return value;
}

inline std::int32_t load_i32_le(const std::string& bytes, std::size_t offset) {
  const std::uint32_t bits = load_u32_le(bytes, offset);
  std::int32_t value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

inline float load_f32_le(const std::string& bytes, std::size_t offset) {
  static_assert(sizeof(float) == 4 && std::numeric_limits<float>::is_iec559,
                "llama2.c files hold IEEE-754 binary32 floats");
  const std::uint32_t bits = load_u32_le(bytes, offset);
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

}  // namespace detail

/// The SentencePiece BPE tokenizer of LLaMA-2 (byte fallback, dummy prefix, identity
/// normalization); see the top of this header for the algorithm.
///
/// Immutable after construction: encode() and decode() are const and may run concurrently.
///
/// \code
/// auto tokenizer = SentencePieceTokenizer::from_llama2c_file("tokenizer.bin", 32000);
/// std::vector<std::int32_t> ids = tokenizer.encode("I believe", /*add_bos=*/true, false);
/// // ids == {1, 306, 4658}
/// std::string text = tokenizer.decode(ids);   // "I believe"
/// \endcode
class SentencePieceTokenizer {
 public:
  /// Passed as `vocab_size` to from_llama2c_file(): read tokens until the end of the file.
  static constexpr std::int32_t vocab_size_from_file = 0;

  /// A tokenizer over a vocabulary, e.g. the tokenizer.ggml.tokens / .scores of a GGUF file.
  ///
  /// \param pieces  the piece of each token id; spaces may be spelled ' ' or "▁" (U+2581), and are
  ///                stored as ' '. Pieces "<0xNN>" (upper-case hex) are the byte-fallback tokens.
  /// \param scores  the score of each piece (SentencePiece's log-probability-like merge priority:
  ///                higher merges first); finite, as many as pieces.
  /// \param bos_id  the begin-of-sequence token (1 in LLaMA-2).
  /// \param eos_id  the end-of-sequence token (2 in LLaMA-2).
  /// \param unk_id  the unknown token (0 in LLaMA-2), emitted for a byte without a byte token.
  /// \throws config_error naming the argument when the sizes differ, the vocabulary is empty or
  ///         larger than INT32_MAX, a score is not finite, an id is out of range, a byte token
  ///         appears twice, or BOS or EOS is a byte token (it would decode to nothing). A
  ///         vocabulary without some byte tokens is accepted: those bytes encode as unk_id.
  SentencePieceTokenizer(std::vector<std::string> pieces, std::vector<float> scores,
                         std::int32_t bos_id, std::int32_t eos_id, std::int32_t unk_id = 0)
      : bos_id_(bos_id), eos_id_(eos_id), unk_id_(unk_id) {
    detail::require<config_error>(!pieces.empty(),
                                  "SentencePieceTokenizer: pieces must not be empty");
    detail::require<config_error>(
        pieces.size() == scores.size(), "SentencePieceTokenizer: scores must have one entry per "
        "piece (", pieces.size(), "), got ", scores.size());
    detail::require<config_error>(
        pieces.size() <= static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()),
        "SentencePieceTokenizer: pieces must hold at most INT32_MAX tokens, got ", pieces.size());
    vocab_size_ = static_cast<std::int32_t>(pieces.size());
    const auto require_id = [&](std::int32_t id, const char* name) {
      detail::require<config_error>(id >= 0 && id < vocab_size_, "SentencePieceTokenizer: ", name,
                                    " must be in [0, vocab_size = ", vocab_size_, "), got ", id);
    };
    require_id(bos_id, "bos_id");
    require_id(eos_id, "eos_id");
    require_id(unk_id, "unk_id");
    for (std::size_t id = 0; id < scores.size(); ++id) {
      detail::require<config_error>(std::isfinite(scores[id]), "SentencePieceTokenizer: score of "
                                    "token ", id, " must be finite, got ", scores[id]);
    }

    for (std::string& piece : pieces) piece = detail::spaces_from_sentencepiece(std::move(piece));
    pieces_ = std::move(pieces);
    scores_ = std::move(scores);

    byte_ids_.fill(-1);
    byte_values_.assign(pieces_.size(), -1);
    for (std::size_t id = 0; id < pieces_.size(); ++id) {
      const int byte = detail::byte_piece_value(pieces_[id]);
      if (byte < 0) continue;
      const auto token = static_cast<std::int32_t>(id);
      // BOS and EOS decode to nothing, so they cannot stand for a byte: encode() would lose it.
      detail::require<config_error>(token != bos_id_ && token != eos_id_,
                                    "SentencePieceTokenizer: byte token '", pieces_[id], "' (id ",
                                    id, ") is also the ", token == bos_id_ ? "bos_id" : "eos_id");
      auto& byte_id = byte_ids_[static_cast<std::size_t>(byte)];
      detail::require<config_error>(byte_id < 0, "SentencePieceTokenizer: byte token '",
                                    pieces_[id], "' appears twice, as id ", byte_id, " and id ",
                                    id);
      byte_values_[id] = static_cast<std::int16_t>(byte);
      byte_id = token;
    }
    normal_pieces_ = detail::PieceIndex(pieces_, [this](std::size_t id) {
      const auto token = static_cast<std::int32_t>(id);
      return byte_values_[id] < 0 && token != bos_id_ && token != eos_id_ && token != unk_id_;
    });
  }

  /// Reads llama2.c's tokenizer.bin (little-endian): int32 max_token_length, then per token
  /// float32 score, int32 len, len bytes of the piece. BOS = 1, EOS = 2, unknown = 0.
  ///
  /// \param path        the file.
  /// \param vocab_size  the number of tokens the file must hold exactly (32000 for LLaMA-2; the
  ///                    |vocab_size| of the checkpoint header), or vocab_size_from_file (0) to read
  ///                    tokens until the end of the file.
  /// \throws format_error naming the file, the token index, the field and its value when the file
  ///         cannot be read, is truncated, has bytes after the last token, or holds a field out of
  ///         range (max_token_length <= 0, len < 0 or > max_token_length, a score not finite,
  ///         fewer than 3 tokens), or a vocabulary the constructor refuses (its message follows the
  ///         file's name).
  /// \throws config_error when vocab_size < 0.
  static SentencePieceTokenizer from_llama2c_file(const std::string& path,
                                                  std::int32_t vocab_size) {
    detail::require<config_error>(vocab_size >= 0, "SentencePieceTokenizer::from_llama2c_file: "
                                  "vocab_size must be >= 0 (0 reads to the end of the file), got ",
                                  vocab_size);
    const std::string where = "llama2.c tokenizer '" + path + "': ";
    const std::string bytes = detail::read_file_bytes(path, where);

    std::size_t offset = 0;
    // Fails unless `count` more bytes for `field` (of `token`, when >= 0) lie within the file.
    const auto require_bytes = [&](std::size_t count, const char* field, std::int64_t token) {
      if (bytes.size() - offset >= count) return;
      throw format_error(detail::concat(
          where, token >= 0 ? detail::concat("token ", token, ": ") : std::string(), "truncated: ",
          field, " needs ", count, " bytes at offset ", offset, ", the file has ", bytes.size(),
          " bytes",
          vocab_size > 0 ? detail::concat(" (vocab_size = ", vocab_size, " tokens expected)")
                         : std::string()));
    };

    require_bytes(4, "max_token_length", -1);
    const std::int32_t max_token_length = detail::load_i32_le(bytes, offset);
    offset += 4;
    detail::require<format_error>(max_token_length > 0, where, "max_token_length must be > 0, got ",
                                  max_token_length);

    std::vector<std::string> pieces;
    std::vector<float> scores;
    // Every token takes at least 8 bytes: a huge vocab_size with a small file reserves little.
    const std::size_t expected_tokens = vocab_size > 0 ? static_cast<std::size_t>(vocab_size)
                                                       : bytes.size() / 8;
    pieces.reserve(std::min(expected_tokens, bytes.size() / 8));
    scores.reserve(pieces.capacity());
    const auto more_tokens = [&] {
      return vocab_size > 0 ? pieces.size() < static_cast<std::size_t>(vocab_size)
                            : offset < bytes.size();
    };
    while (more_tokens()) {
      const auto token = static_cast<std::int64_t>(pieces.size());
      detail::require<format_error>(
          token < std::numeric_limits<std::int32_t>::max(), where, "token ", token,
          ": more than INT32_MAX tokens");
      require_bytes(4, "score", token);
      const float score = detail::load_f32_le(bytes, offset);
      detail::require<format_error>(std::isfinite(score), where, "token ", token,
                                    ": score must be finite, got ", score);
      offset += 4;
      require_bytes(4, "len", token);
      const std::int32_t len = detail::load_i32_le(bytes, offset);
      detail::require<format_error>(len >= 0 && len <= max_token_length, where, "token ", token,
                                    ": len must be in [0, max_token_length = ", max_token_length,
                                    "], got ", len);
      offset += 4;
      const auto length = static_cast<std::size_t>(len);
      require_bytes(length, "piece", token);
      pieces.emplace_back(bytes, offset, length);
      scores.push_back(score);
      offset += length;
    }
    detail::require<format_error>(offset == bytes.size(), where, bytes.size() - offset,
                                  " trailing bytes at offset ", offset, " after the last token ",
                                  pieces.size() - 1, ": the file is longer than vocab_size = ",
                                  vocab_size, " tokens");
    detail::require<format_error>(pieces.size() >= 3, where, "the file holds ", pieces.size(),
                                  " tokens, fewer than the 3 of <unk> (0), BOS (1) and EOS (2)");
    try {
      return SentencePieceTokenizer(std::move(pieces), std::move(scores), 1, 2, 0);
    } catch (const config_error& e) {
      // A vocabulary the constructor refuses (e.g. a byte token twice) is a fault of the file.
      throw format_error(where + e.what());
    }
  }

  /// The token ids of `text`: BOS if `add_bos`, the BPE encoding of `text` (nothing for ""), EOS if
  /// `add_eos`. `text` may be any byte string; malformed UTF-8 is encoded byte by byte.
  std::vector<std::int32_t> encode(std::string_view text, bool add_bos, bool add_eos) const {
    std::vector<std::int32_t> ids;
    if (add_bos) ids.push_back(bos_id_);
    if (!text.empty()) encode_pieces(text, ids);
    if (add_eos) ids.push_back(eos_id_);
    return ids;
  }

  /// The text of `token` when it follows `previous` (llama2.c's decode): a byte token gives its
  /// raw byte, BOS and EOS give "", any other token its piece, without its leading space when
  /// `previous` is BOS (that space is the dummy prefix added by encode()).
  /// \throws range_error naming the argument when `previous` or `token` is not in [0, vocab_size).
  std::string decode(std::int32_t previous, std::int32_t token) const {
    check_id(previous, "previous");
    check_id(token, "token");
    if (token == bos_id_ || token == eos_id_) return {};
    const auto index = static_cast<std::size_t>(token);
    std::string text = byte_values_[index] >= 0
                           ? std::string(1, static_cast<char>(byte_values_[index]))
                           : pieces_[index];
    if (previous == bos_id_ && !text.empty() && text.front() == ' ') text.erase(0, 1);
    return text;
  }

  /// The text of a whole sequence: decode(previous, token) of each token, the first one decoded as
  /// if it followed BOS, so the dummy prefix is removed whether or not the sequence starts with BOS
  /// (as SentencePiece's decode does). decode(encode(text, b, e)) == text for every b, e.
  /// \throws range_error naming the position and the id of a token not in [0, vocab_size).
  std::string decode(const std::vector<std::int32_t>& tokens) const {
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      detail::require<range_error>(tokens[i] >= 0 && tokens[i] < vocab_size_,
                                   "SentencePieceTokenizer::decode: tokens[", i,
                                   "] must be in [0, vocab_size = ", vocab_size_, "), got ",
                                   tokens[i]);
    }
    std::string text;
    std::int32_t previous = bos_id_;
    for (const std::int32_t token : tokens) {
      text += decode(previous, token);
      previous = token;
    }
    return text;
  }

  std::int32_t vocab_size() const { return vocab_size_; }
  std::int32_t bos_id() const { return bos_id_; }
  std::int32_t eos_id() const { return eos_id_; }
  std::int32_t unk_id() const { return unk_id_; }

  /// The piece of `id`, spaces spelled ' '. \throws range_error when id is out of range.
  const std::string& piece(std::int32_t id) const {
    check_id(id, "id");
    return pieces_[static_cast<std::size_t>(id)];
  }

  /// The score of `id`. \throws range_error when id is out of range.
  float score(std::int32_t id) const {
    check_id(id, "id");
    return scores_[static_cast<std::size_t>(id)];
  }

 private:
  /// A unit of the text being merged: bytes [start, start + length) of the normalized text, in a
  /// doubly linked list. A unit merged into its left neighbour has length 0.
  struct Unit {
    std::size_t start;
    std::size_t length;
    std::size_t prev;
    std::size_t next;
  };

  /// Two adjacent units whose concatenation is the piece of score `score`, `length` bytes long.
  struct Candidate {
    float score;
    std::size_t left;
    std::size_t right;
    std::size_t length;
  };

  /// Highest score first, then the leftmost pair.
  struct LowerPriority {
    bool operator()(const Candidate& a, const Candidate& b) const {
      return a.score < b.score || (a.score == b.score && a.left > b.left);
    }
  };

  static constexpr std::size_t none = std::numeric_limits<std::size_t>::max();

  void check_id(std::int32_t id, const char* name) const {
    detail::require<range_error>(id >= 0 && id < vocab_size_, "SentencePieceTokenizer: ", name,
                                 " must be in [0, vocab_size = ", vocab_size_, "), got ", id);
  }

  /// Appends the BPE encoding of non-empty `text` to `ids`.
  void encode_pieces(std::string_view text, std::vector<std::int32_t>& ids) const {
    std::string normalized;
    normalized.reserve(text.size() + 1);
    normalized += ' ';  // the dummy prefix
    normalized += text;
    const std::string_view view = normalized;

    std::vector<Unit> units;
    units.reserve(view.size());
    for (std::size_t pos = 0; pos < view.size();) {
      const std::size_t length = std::max<std::size_t>(1, detail::utf8_sequence_length(view, pos));
      units.push_back({pos, length, units.empty() ? none : units.size() - 1, units.size() + 1});
      pos += length;
    }
    units.back().next = none;

    std::priority_queue<Candidate, std::vector<Candidate>, LowerPriority> candidates;
    const auto consider = [&](std::size_t left, std::size_t right) {
      if (left == none || right == none) return;
      const std::size_t length = units[left].length + units[right].length;
      const std::int32_t id = normal_pieces_.find(pieces_, view.substr(units[left].start, length));
      if (id >= 0) candidates.push({scores_[static_cast<std::size_t>(id)], left, right, length});
    };
    for (std::size_t i = 0; i + 1 < units.size(); ++i) consider(i, i + 1);

    while (!candidates.empty()) {
      const Candidate best = candidates.top();
      candidates.pop();
      Unit& left = units[best.left];
      Unit& right = units[best.right];
      // Stale when either unit was merged since: units only grow, and merged-away ones are empty.
      if (left.length == 0 || right.length == 0 || left.next != best.right ||
          left.length + right.length != best.length) {
        continue;
      }
      left.length = best.length;
      left.next = right.next;
      if (right.next != none) units[right.next].prev = best.left;
      right.length = 0;
      consider(left.prev, best.left);
      consider(best.left, left.next);
    }

    for (std::size_t i = 0; i != none; i = units[i].next) {
      const std::string_view unit = view.substr(units[i].start, units[i].length);
      const std::int32_t id = normal_pieces_.find(pieces_, unit);
      if (id >= 0) {
        ids.push_back(id);
        continue;
      }
      for (const char byte : unit) {
        const std::int32_t byte_id = byte_ids_[static_cast<unsigned char>(byte)];
        ids.push_back(byte_id >= 0 ? byte_id : unk_id_);
      }
    }
  }

  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::int32_t vocab_size_ = 0;
  std::int32_t bos_id_;
  std::int32_t eos_id_;
  std::int32_t unk_id_;
  /// Per byte value, the id of its byte token "<0xNN>", or -1.
  std::array<std::int32_t, 256> byte_ids_{};
  /// Per id, the byte its piece stands for when it is a byte token, else -1.
  std::vector<std::int16_t> byte_values_;
  /// The pieces that BPE may produce: all but byte tokens, BOS, EOS and the unknown token.
  detail::PieceIndex normal_pieces_;
};

}  // namespace llamablocks
