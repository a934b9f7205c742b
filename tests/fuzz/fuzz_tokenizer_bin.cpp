// Fuzz target: llama2.c tokenizer.bin reader (SentencePieceTokenizer::from_llama2c_file). A file is
// refused with a llamablocks::error or gives a tokenizer; a tokenizer must then encode any text
// and, where no byte fell back to the unknown token, decode it back exactly.
#include "fuzz_common.hpp"

#include "llamablocks/text/sentencepiece_tokenizer.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace llamablocks;
  const std::string& path = fuzz::write_input(data, size);
  try {
    const SentencePieceTokenizer tokenizer =
        SentencePieceTokenizer::from_llama2c_file(path, SentencePieceTokenizer::vocab_size_from_file);
    // Text taken from the file itself (any bytes) plus a fixed sentence.
    const std::string texts[] = {
        std::string(reinterpret_cast<const char*>(data), std::min<std::size_t>(size, 64)),
        "Hello, the world! \xC3\xA9\xFF\x80 <s> <0x41>"};
    for (const std::string& text : texts) {
      const auto ids = tokenizer.encode(text, true, true);
      for (const std::int32_t id : ids) (void)tokenizer.piece(id);
      const bool exact = std::find(ids.begin(), ids.end(), tokenizer.unk_id()) == ids.end();
      if (exact) fuzz::require_round_trip("tokenizer.bin", text, tokenizer.decode(ids));
    }
  } catch (const error&) {
  }
  return 0;
}
