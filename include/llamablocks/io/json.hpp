// JsonValue and parse_json: a strict RFC 8259 JSON reader for the small documents that come with
// checkpoints (a safetensors header, a Hugging Face config.json).
//
// Strict on purpose, because the input comes from strangers: UTF-8 is validated, control
// characters inside strings, lone surrogates, duplicate object keys, leading zeros, trailing
// commas, NaN/Infinity and anything after the top-level value are refused; nesting is limited to
// json_max_depth so a hostile "[[[[..." cannot exhaust the stack. Every error is a format_error
// naming the document (`where`), the line and column, and what was expected.
//
// Numbers keep both readings: as_number() is the nearest double (std::from_chars, so no locale
// dependence), as_integer() the exact int64 of an integer literal (or of an integral double below
// 2^53, as Python writes 1e5 or 2048.0).
#pragma once

#include "llamablocks/core/error.hpp"
#include "llamablocks/io/format_error.hpp"
#include "llamablocks/text/utf8.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace llamablocks::io {

/// Arrays and objects nested deeper than this are refused.
inline constexpr int json_max_depth = 128;

/// One parsed JSON value. Objects keep their members in file order and look keys up by binary
/// search over a sorted index.
class JsonValue {
 public:
  enum class Kind { null, boolean, number, string, array, object };

  JsonValue() = default;

  Kind kind() const { return kind_; }
  /// "null", "boolean", "number", "string", "array" or "object", for error messages.
  const char* kind_name() const {
    switch (kind_) {
      case Kind::null: return "null";
      case Kind::boolean: return "boolean";
      case Kind::number: return "number";
      case Kind::string: return "string";
      case Kind::array: return "array";
      case Kind::object: return "object";
    }
    return "(invalid)";
  }
  bool is_null() const { return kind_ == Kind::null; }
  bool is_boolean() const { return kind_ == Kind::boolean; }
  bool is_number() const { return kind_ == Kind::number; }
  bool is_string() const { return kind_ == Kind::string; }
  bool is_array() const { return kind_ == Kind::array; }
  bool is_object() const { return kind_ == Kind::object; }
  /// Whether as_integer() succeeds.
  bool is_integer() const {
    if (kind_ != Kind::number) return false;
    return integer_literal_ || (std::nearbyint(number_) == number_ && std::fabs(number_) <= 0x1p53);
  }

  /// \throws format_error naming `what` and the actual kind when the value is not of that kind.
  bool as_boolean(std::string_view what = "value") const {
    expect(Kind::boolean, what);
    return boolean_;
  }
  double as_number(std::string_view what = "value") const {
    expect(Kind::number, what);
    return number_;
  }
  std::int64_t as_integer(std::string_view what = "value") const {
    expect(Kind::number, what);
    if (integer_literal_) return integer_;
    if (!is_integer())
      throw format_error(detail::concat(what, " must be an integer, got ", number_));
    return static_cast<std::int64_t>(number_);
  }
  const std::string& as_string(std::string_view what = "value") const {
    expect(Kind::string, what);
    return string_;
  }
  /// Elements of an array.
  const std::vector<JsonValue>& elements(std::string_view what = "value") const {
    expect(Kind::array, what);
    return children_;
  }

  /// Members of an object, in file order: keys()[i] names values()[i].
  const std::vector<std::string>& keys(std::string_view what = "value") const {
    expect(Kind::object, what);
    return keys_;
  }
  const std::vector<JsonValue>& values(std::string_view what = "value") const {
    expect(Kind::object, what);
    return children_;
  }
  /// The member `key` of an object, or nullptr. \throws format_error when this is not an object.
  const JsonValue* find(std::string_view key) const {
    expect(Kind::object, "value");
    const auto it = std::lower_bound(order_.begin(), order_.end(), key,
                                     [this](std::size_t index, std::string_view wanted) {
                                       return keys_[index] < wanted;
                                     });
    if (it == order_.end() || keys_[*it] != key) return nullptr;
    return &children_[*it];
  }

 private:
  friend class JsonParser;

  void expect(Kind wanted, std::string_view what) const {
    if (kind_ == wanted) return;
    JsonValue probe;
    probe.kind_ = wanted;
    throw format_error(detail::concat(what, " must be a JSON ", probe.kind_name(), ", got ",
                                      kind_name()));
  }

  Kind kind_ = Kind::null;
  bool boolean_ = false;
  bool integer_literal_ = false;
  double number_ = 0;
  std::int64_t integer_ = 0;
  std::string string_;
  std::vector<JsonValue> children_;  // array elements, or object values
  std::vector<std::string> keys_;    // object keys, parallel to children_
  std::vector<std::size_t> order_;   // indices of keys_ in sorted key order
};

/// Recursive-descent parser behind parse_json (one instance per document).
class JsonParser {
 public:
  JsonParser(std::string_view text, std::string where) : text_(text), where_(std::move(where)) {}

  JsonValue parse_document() {
    skip_whitespace();
    JsonValue value = parse_value(0);
    skip_whitespace();
    if (position_ != text_.size()) fail("end of the document after the top-level value");
    return value;
  }

 private:
  [[noreturn]] void fail(std::string_view expected) const {
    std::size_t line = 1, column = 1;
    for (std::size_t i = 0; i < position_ && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    std::string found = "end of input";
    if (position_ < text_.size()) {
      const auto byte = static_cast<unsigned char>(text_[position_]);
      char buffer[16];
      if (byte >= 0x20 && byte < 0x7f)
        std::snprintf(buffer, sizeof buffer, "'%c'", static_cast<char>(byte));
      else
        std::snprintf(buffer, sizeof buffer, "byte 0x%02x", byte);
      found = buffer;
    }
    throw format_error(detail::concat(where_, ": JSON line ", line, ", column ", column,
                                      ": expected ", expected, ", found ", found));
  }

  bool at_end() const { return position_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[position_]; }

  void skip_whitespace() {
    while (!at_end()) {
      const char c = text_[position_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return;
      ++position_;
    }
  }

  void expect_literal(std::string_view literal) {
    if (text_.substr(position_, literal.size()) != literal)
      fail(detail::concat("'", literal, "'"));
    position_ += literal.size();
  }

  JsonValue parse_value(int depth) {
    JsonValue value;
    switch (peek()) {
      case '{':
        return parse_object(depth);
      case '[':
        return parse_array(depth);
      case '"':
        value.kind_ = JsonValue::Kind::string;
        value.string_ = parse_string();
        return value;
      case 't':
        expect_literal("true");
        value.kind_ = JsonValue::Kind::boolean;
        value.boolean_ = true;
        return value;
      case 'f':
        expect_literal("false");
        value.kind_ = JsonValue::Kind::boolean;
        return value;
      case 'n':
        expect_literal("null");
        return value;
      default:
        if (peek() == '-' || (peek() >= '0' && peek() <= '9')) return parse_number();
        fail("a value (object, array, string, number, true, false or null)");
    }
  }

  void enter(int depth) {
    if (depth >= json_max_depth)
      fail(detail::concat("nesting no deeper than ", json_max_depth, " levels"));
  }

  JsonValue parse_array(int depth) {
    enter(depth);
    ++position_;  // '['
    JsonValue array;
    array.kind_ = JsonValue::Kind::array;
    skip_whitespace();
    if (peek() == ']') {
      ++position_;
      return array;
    }
    for (;;) {
      skip_whitespace();
      array.children_.push_back(parse_value(depth + 1));
      skip_whitespace();
      if (peek() == ',') {
        ++position_;
        continue;
      }
      if (peek() == ']') {
        ++position_;
        return array;
      }
      fail("',' or ']' in an array");
    }
  }

  JsonValue parse_object(int depth) {
    enter(depth);
    ++position_;  // '{'
    JsonValue object;
    object.kind_ = JsonValue::Kind::object;
    skip_whitespace();
    if (peek() == '}') {
      ++position_;
      return object;
    }
    for (;;) {
      skip_whitespace();
      if (peek() != '"') fail("a string key in an object");
      std::string key = parse_string();
      skip_whitespace();
      if (peek() != ':') fail("':' after an object key");
      ++position_;
      skip_whitespace();
      JsonValue member = parse_value(depth + 1);
      object.keys_.push_back(std::move(key));
      object.children_.push_back(std::move(member));
      skip_whitespace();
      if (peek() == ',') {
        ++position_;
        continue;
      }
      if (peek() == '}') {
        ++position_;
        break;
      }
      fail("',' or '}' in an object");
    }
    auto& order = object.order_;
    order.resize(object.keys_.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    const auto& keys = object.keys_;
    std::stable_sort(order.begin(), order.end(),
                     [&keys](std::size_t a, std::size_t b) { return keys[a] < keys[b]; });
    for (std::size_t i = 1; i < order.size(); ++i)
      if (keys[order[i]] == keys[order[i - 1]])
        throw format_error(detail::concat(where_, ": JSON object has the key \"", keys[order[i]],
                                          "\" twice"));
    return object;
  }

  unsigned parse_hex4() {
    if (text_.size() - position_ < 4) fail("four hex digits after \\u");
    unsigned code = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[position_];
      unsigned digit;
      if (c >= '0' && c <= '9')
        digit = static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f')
        digit = static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        digit = static_cast<unsigned>(c - 'A' + 10);
      else
        fail("a hex digit in a \\u escape");
      code = code * 16 + digit;
      ++position_;
    }
    return code;
  }

  std::string parse_string() {
    ++position_;  // '"'
    std::string out;
    for (;;) {
      if (at_end()) fail("'\"' closing a string");
      const auto c = static_cast<unsigned char>(text_[position_]);
      if (c == '"') {
        ++position_;
        return out;
      }
      if (c < 0x20) fail("no raw control character inside a string (escape it)");
      if (c >= 0x80) {
        const std::size_t length = detail::utf8_sequence_length(text_, position_);
        if (length == 0) fail("valid UTF-8 in a string");
        out.append(text_.substr(position_, length));
        position_ += length;
        continue;
      }
      if (c != '\\') {
        out += static_cast<char>(c);
        ++position_;
        continue;
      }
      ++position_;
      const char escape = peek();
      ++position_;
      switch (escape) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned code = parse_hex4();
          if (code >= 0xDC00 && code <= 0xDFFF) fail("no lone low surrogate in a \\u escape");
          if (code >= 0xD800 && code <= 0xDBFF) {
            if (text_.substr(position_, 2) != "\\u") fail("a low surrogate \\uDC00-\\uDFFF");
            position_ += 2;
            const unsigned low = parse_hex4();
            if (low < 0xDC00 || low > 0xDFFF) fail("a low surrogate \\uDC00-\\uDFFF");
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
          }
          detail::append_utf8(static_cast<char32_t>(code), out);
          break;
        }
        default:
          --position_;
          fail("an escape: one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX");
      }
    }
  }

  JsonValue parse_number() {
    const std::size_t start = position_;
    bool integer = true;
    if (peek() == '-') ++position_;
    if (peek() == '0') {
      ++position_;
      if (peek() >= '0' && peek() <= '9') fail("no leading zero in a number");
    } else if (peek() >= '1' && peek() <= '9') {
      while (peek() >= '0' && peek() <= '9') ++position_;
    } else {
      fail("a digit");
    }
    if (peek() == '.') {
      integer = false;
      ++position_;
      if (!(peek() >= '0' && peek() <= '9')) fail("a digit after the decimal point");
      while (peek() >= '0' && peek() <= '9') ++position_;
    }
    if (peek() == 'e' || peek() == 'E') {
      integer = false;
      ++position_;
      if (peek() == '+' || peek() == '-') ++position_;
      if (!(peek() >= '0' && peek() <= '9')) fail("a digit in the exponent");
      while (peek() >= '0' && peek() <= '9') ++position_;
    }
    const char* first = text_.data() + start;
    const char* last = text_.data() + position_;
    JsonValue value;
    value.kind_ = JsonValue::Kind::number;
    const auto parsed = std::from_chars(first, last, value.number_);
    if (parsed.ec == std::errc::result_out_of_range) {
      // A magnitude beyond double (1e999) is refused; one below its smallest (1e-999) is zero.
      const std::string_view literal(first, static_cast<std::size_t>(last - first));
      const bool underflow = literal.find("e-") != std::string_view::npos ||
                             literal.find("E-") != std::string_view::npos;
      if (!underflow) {
        position_ = start;
        fail("a number within the range of a double");
      }
      value.number_ = 0;
    } else if (parsed.ec != std::errc() || parsed.ptr != last) {
      position_ = start;
      fail("a number");
    }
    if (integer) {
      const auto exact = std::from_chars(first, last, value.integer_);
      value.integer_literal_ = exact.ec == std::errc() && exact.ptr == last;
    }
    return value;
  }

  std::string_view text_;
  std::string where_;
  std::size_t position_ = 0;
};

/// Parses `text` as one JSON document. \param where names the document in error messages
/// (e.g. "config.json '/models/x/config.json'"). \throws format_error.
inline JsonValue parse_json(std::string_view text, const std::string& where) {
  return JsonParser(text, where).parse_document();
}

}  // namespace llamablocks::io
