// Fuzz target: config.json → ModelConfig (io::config_from_hf_json). Any text is refused with a
// llamablocks::error or gives a config that validates (validate() is called again here, and the
// sizes it implies must not overflow when a loader computes them).
#include "fuzz_common.hpp"

#include "llamablocks/io/hf_checkpoint.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace llamablocks;
  try {
    const auto json = io::parse_json(std::string_view(reinterpret_cast<const char*>(data), size),
                                     "config.json");
    const ModelConfig config = io::config_from_hf_json(json, "config.json");
    config.validate();
    if (config.n_heads % config.n_kv_heads != 0)
      fuzz::broken_promise("a validated config whose n_kv_heads does not divide n_heads");
  } catch (const error&) {
    // Refused with a message.
  }
  return 0;
}
