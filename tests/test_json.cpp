// io::parse_json: RFC 8259 values, exact integers, escapes and UTF-8, and every refusal (each with
// the document, line and column in the message).
#include "llamablocks/io/json.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>

using namespace llamablocks;
using Catch::Matchers::Contains;

TEST_CASE("json: a config-like document", "[json]") {
  const io::JsonValue doc = io::parse_json(R"({
    "hidden_size": 4096, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
    "tie_word_embeddings": false, "rope_scaling": null,
    "architectures": ["LlamaForCausalLM"], "nested": {"a": [1, [2, {"b": -3}]]}
  })", "test");
  REQUIRE(doc.is_object());
  CHECK(doc.keys().size() == 7);
  CHECK(doc.keys()[0] == "hidden_size");  // file order is kept
  CHECK(doc.find("hidden_size")->as_integer() == 4096);
  CHECK(doc.find("rms_norm_eps")->as_number() == 1e-5);
  CHECK(doc.find("rope_theta")->as_integer() == 500000);  // an integral double is an integer
  CHECK(doc.find("tie_word_embeddings")->as_boolean() == false);
  CHECK(doc.find("rope_scaling")->is_null());
  CHECK(doc.find("architectures")->elements()[0].as_string() == "LlamaForCausalLM");
  CHECK(doc.find("nested")->find("a")->elements()[1].elements()[1].find("b")->as_integer() == -3);
  CHECK(doc.find("missing") == nullptr);
}

TEST_CASE("json: numbers", "[json]") {
  // Integers beyond 2^53 stay exact when written as integers.
  CHECK(io::parse_json("9007199254740993", "t").as_integer() == 9007199254740993LL);
  CHECK(io::parse_json("-9223372036854775808", "t").as_integer() == INT64_MIN);
  CHECK(io::parse_json("0", "t").as_integer() == 0);
  CHECK(io::parse_json("-0.5e1", "t").as_number() == -5.0);
  CHECK(io::parse_json("2.5E+2", "t").as_number() == 250.0);
  CHECK(io::parse_json("1e-400", "t").as_number() == 0.0);  // underflow is zero
  CHECK_FALSE(io::parse_json("1.5", "t").is_integer());
  CHECK_THROWS_WITH(io::parse_json("1.5", "t").as_integer("\"x\""),
                    Contains("\"x\" must be an integer, got 1.5"));
  // An integer literal too large for int64 is still a number, not an integer.
  CHECK_FALSE(io::parse_json("99999999999999999999", "t").is_integer());
  CHECK_THROWS_WITH(io::parse_json("1e999", "t"), Contains("within the range of a double"));
  for (const char* bad : {"01", "-", "1.", ".5", "1e", "+1", "0x10", "NaN", "Infinity", "-Infinity"})
    CHECK_THROWS_AS(io::parse_json(bad, "t"), format_error);
}

TEST_CASE("json: strings, escapes and UTF-8", "[json]") {
  CHECK(io::parse_json(R"("a\"b\\c\/d\b\f\n\r\t")", "t").as_string() == "a\"b\\c/d\b\f\n\r\t");
  CHECK(io::parse_json(R"("\u00e9\u20ac")", "t").as_string() == "\xc3\xa9\xe2\x82\xac");
  CHECK(io::parse_json(R"("\ud83d\ude00")", "t").as_string() == "\xf0\x9f\x98\x80");
  CHECK(io::parse_json("\"h\xc3\xa9llo \xf0\x9f\x98\x80\"", "t").as_string() ==
        "h\xc3\xa9llo \xf0\x9f\x98\x80");
  CHECK(io::parse_json(R"("\u0000")", "t").as_string() == std::string(1, '\0'));
  CHECK_THROWS_WITH(io::parse_json(R"("\ud83d")", "t"), Contains("low surrogate"));
  CHECK_THROWS_WITH(io::parse_json(R"("\ude00")", "t"), Contains("lone low surrogate"));
  CHECK_THROWS_WITH(io::parse_json("\"a\nb\"", "t"), Contains("control character"));
  CHECK_THROWS_WITH(io::parse_json(R"("\x")", "t"), Contains("an escape"));
  CHECK_THROWS_WITH(io::parse_json(R"("\u12g4")", "t"), Contains("hex digit"));
  // Invalid UTF-8: a stray continuation byte, an overlong '/', an encoded surrogate, a truncated
  // sequence, a code point above U+10FFFF.
  for (const char* bad : {"\"\x80\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"\xe2\x82\"",
                          "\"\xf4\x90\x80\x80\""})
    CHECK_THROWS_WITH(io::parse_json(bad, "t"), Contains("valid UTF-8"));
  CHECK_THROWS_WITH(io::parse_json("\"open", "t"), Contains("closing a string"));
}

TEST_CASE("json: malformed documents name the line and column", "[json]") {
  CHECK_THROWS_WITH(io::parse_json("{\n  \"a\": 1,\n}", "config.json 'x'"),
                    Contains("config.json 'x': JSON line 3, column 1: expected a string key"));
  CHECK_THROWS_WITH(io::parse_json("[1, 2,]", "t"), Contains("column 7"));
  CHECK_THROWS_WITH(io::parse_json("{\"a\": 1} x", "t"), Contains("end of the document"));
  CHECK_THROWS_WITH(io::parse_json("{\"a\": 1, \"a\": 2}", "t"), Contains("the key \"a\" twice"));
  CHECK_THROWS_WITH(io::parse_json("", "t"), Contains("found end of input"));
  CHECK_THROWS_WITH(io::parse_json("tru", "t"), Contains("'true'"));
  CHECK_THROWS_WITH(io::parse_json("{\"a\" 1}", "t"), Contains("':'"));
  CHECK_THROWS_WITH(io::parse_json("[1 2]", "t"), Contains("',' or ']'"));
  CHECK_THROWS_WITH(io::parse_json("\x01", "t"), Contains("byte 0x01"));
}

TEST_CASE("json: nesting is bounded", "[json]") {
  const std::string ok = std::string(io::json_max_depth, '[') + std::string(io::json_max_depth, ']');
  CHECK(io::parse_json(ok, "t").is_array());
  const std::string deep(1000000, '[');
  CHECK_THROWS_WITH(io::parse_json(deep, "t"), Contains("nesting no deeper than 128"));
}

TEST_CASE("json: type mismatches name the value", "[json]") {
  const io::JsonValue doc = io::parse_json(R"({"n": "4096"})", "t");
  CHECK_THROWS_WITH(doc.find("n")->as_integer("\"n\""), Contains("\"n\" must be a JSON number, got string"));
  CHECK_THROWS_WITH(doc.elements(), Contains("must be a JSON array, got object"));
  CHECK_THROWS_AS(io::parse_json("[]", "t").find("x"), format_error);
}
