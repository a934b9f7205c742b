// UTF-8 helpers shared by the tokenizers: the length of the well-formed sequence at a position
// (Unicode table 3-7, so overlong forms, surrogates and code points above U+10FFFF are malformed),
// the code point it spells, and the encoding of a code point.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace llamablocks {
namespace detail {

/// Length (1 to 4) of the well-formed UTF-8 sequence that starts at `text[pos]`, or 0 when the
/// bytes there are not one (stray continuation byte, overlong form, surrogate, code point above
/// U+10FFFF, sequence cut short).
inline std::size_t utf8_sequence_length(std::string_view text, std::size_t pos) {
  const auto byte_at = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte_at(pos);
  if (lead < 0x80) return 1;
  // The ranges of the Unicode standard's table 3-7 (well-formed UTF-8 byte sequences).
  std::size_t length = 0;
  unsigned char second_min = 0x80;
  unsigned char second_max = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead == 0xE0) {
    length = 3;
    second_min = 0xA0;
  } else if ((lead >= 0xE1 && lead <= 0xEC) || lead == 0xEE || lead == 0xEF) {
    length = 3;
  } else if (lead == 0xED) {
    length = 3;
    second_max = 0x9F;
  } else if (lead == 0xF0) {
    length = 4;
    second_min = 0x90;
  } else if (lead >= 0xF1 && lead <= 0xF3) {
    length = 4;
  } else if (lead == 0xF4) {
    length = 4;
    second_max = 0x8F;
  } else {
    return 0;
  }
  if (text.size() - pos < length) return 0;
  if (byte_at(pos + 1) < second_min || byte_at(pos + 1) > second_max) return 0;
  for (std::size_t i = 2; i < length; ++i) {
    if (byte_at(pos + i) < 0x80 || byte_at(pos + i) > 0xBF) return 0;
  }
  return length;
}

/// Appends the UTF-8 encoding of `code_point` (<= U+10FFFF) to `out`.
inline void append_utf8(char32_t code_point, std::string& out) {
  const auto byte = [](char32_t value) {
    return static_cast<char>(static_cast<unsigned char>(value));
  };
  if (code_point < 0x80) {
    out += byte(code_point);
  } else if (code_point < 0x800) {
    out += byte(0xC0 | (code_point >> 6));
    out += byte(0x80 | (code_point & 0x3F));
  } else if (code_point < 0x10000) {
    out += byte(0xE0 | (code_point >> 12));
    out += byte(0x80 | ((code_point >> 6) & 0x3F));
    out += byte(0x80 | (code_point & 0x3F));
  } else {
    out += byte(0xF0 | (code_point >> 18));
    out += byte(0x80 | ((code_point >> 12) & 0x3F));
    out += byte(0x80 | ((code_point >> 6) & 0x3F));
    out += byte(0x80 | (code_point & 0x3F));
  }
}

/// The code point of the well-formed UTF-8 sequence of `length` bytes at `text[pos]`.
inline char32_t decode_utf8(std::string_view text, std::size_t pos, std::size_t length) {
  const auto at = [&](std::size_t i) {
    return static_cast<char32_t>(static_cast<unsigned char>(text[pos + i]));
  };
  switch (length) {
    case 1:
      return at(0);
    case 2:
      return ((at(0) & 0x1F) << 6) | (at(1) & 0x3F);
    case 3:
      return ((at(0) & 0x0F) << 12) | ((at(1) & 0x3F) << 6) | (at(2) & 0x3F);
    default:
      return ((at(0) & 0x07) << 18) | ((at(1) & 0x3F) << 12) | ((at(2) & 0x3F) << 6) |
             (at(3) & 0x3F);
  }
}

}  // namespace detail
}  // namespace llamablocks
