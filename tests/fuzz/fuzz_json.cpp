// Fuzz target: the JSON reader (io/json.hpp). Any byte string is parsed or refused with a
// llamablocks::error; a parsed document is walked completely (every accessor of every value), so
// ASan sees each string and container the parser built.
#include "fuzz_common.hpp"

#include "llamablocks/io/json.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace {

std::size_t walk(const llamablocks::io::JsonValue& value, int depth) {
  using llamablocks::io::JsonValue;
  if (depth > llamablocks::io::json_max_depth + 1)
    llamablocks::fuzz::broken_promise("a parsed document nests deeper than json_max_depth");
  std::size_t total = 1;
  switch (value.kind()) {
    case JsonValue::Kind::null: break;
    case JsonValue::Kind::boolean: total += value.as_boolean() ? 1 : 0; break;
    case JsonValue::Kind::number:
      if (value.is_integer()) total += static_cast<std::size_t>(value.as_integer() & 1);
      total += value.as_number() > 0 ? 1 : 0;
      break;
    case JsonValue::Kind::string: total += value.as_string().size(); break;
    case JsonValue::Kind::array:
      for (const JsonValue& element : value.elements()) total += walk(element, depth + 1);
      break;
    case JsonValue::Kind::object: {
      const auto& keys = value.keys();
      for (std::size_t i = 0; i < keys.size(); ++i) {
        // Every key must be found again, and at its own index.
        if (value.find(keys[i]) != &value.values()[i])
          llamablocks::fuzz::broken_promise("JsonValue::find does not return the member of key \"" +
                                            llamablocks::fuzz::escaped(keys[i]) + "\"");
        total += walk(value.values()[i], depth + 1);
      }
      break;
    }
  }
  return total;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto document = llamablocks::io::parse_json(
        std::string_view(reinterpret_cast<const char*>(data), size), "fuzz input");
    volatile std::size_t sink = walk(document, 0);
    (void)sink;
  } catch (const llamablocks::error&) {
    // Refused with a message.
  }
  return 0;
}
