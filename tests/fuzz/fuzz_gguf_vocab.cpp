// Fuzz target: the tokenizer of a GGUF file (examples/llama2/gguf_loader.hpp load_gguf_tokenizer:
// tokenizer.ggml.model "llama" -> SentencePieceTokenizer, "gpt2" -> ByteBpeTokenizer). A vocabulary
// is refused with a llamablocks::error or gives a tokenizer that encodes any text and, where no
// byte fell back to the unknown token, decodes it back exactly.
#include "fuzz_common.hpp"

#include "gguf_loader.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace llamablocks;
  const std::string& path = fuzz::write_input(data, size);
  try {
    const io::GgufFile file = io::GgufFile::open(path);
    const auto tokenizer = llama2::load_gguf_tokenizer(file);
    const std::int64_t unk =
        file.get_optional_integer("tokenizer.ggml.unknown_token_id")
            .value_or(tokenizer->model() == "llama" ? 0 : -1);
    const std::string texts[] = {
        std::string(reinterpret_cast<const char*>(data), std::min<std::size_t>(size, 64)),
        "Hello, the world!\n\t 12345 \xC3\xA9\xFF\x80 <s> <|im_start|>it's"};
    for (const std::string& text : texts) {
      const auto ids = tokenizer->encode(text, tokenizer->add_bos(), false);
      for (const std::int32_t id : ids) (void)tokenizer->piece(id);
      const bool exact = std::find(ids.begin(), ids.end(), unk) == ids.end();
      if (exact) fuzz::require_round_trip("GGUF vocabulary", text, tokenizer->decode(ids));
    }
  } catch (const error&) {
  }
  return 0;
}
