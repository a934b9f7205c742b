// Fuzz target: encode / decode of both tokenizers on any byte string, with fixed vocabularies that
// hold every byte token (tests/fuzz/seeds.hpp). What the headers promise:
//   SentencePieceTokenizer: decode(encode(text, bos, eos)) == text for every bos, eos (the dummy
//     prefix that encode() adds is removed by decode());
//   ByteBpeTokenizer: decode(encode(text, false, false)) == text, for every pre-tokenizer, with and
//     without ignore_merges;
// and both decode every id that encode() gave, also one at a time (streaming).
// The first input byte picks the tokenizer and its options; the rest is the text.
#include "fuzz_common.hpp"
#include "seeds.hpp"

#include "llamablocks/text/byte_bpe_tokenizer.hpp"
#include "llamablocks/text/sentencepiece_tokenizer.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

using namespace llamablocks;

const SentencePieceTokenizer& sentencepiece() {
  static const SentencePieceTokenizer tokenizer = [] {
    auto [pieces, scores] = fuzz::sentencepiece_vocabulary();
    return SentencePieceTokenizer(std::move(pieces), std::move(scores), 1, 2, 0);
  }();
  return tokenizer;
}

ByteBpeTokenizer make_byte_bpe(PreTokenizer pre, bool ignore_merges) {
  const fuzz::ByteBpeVocabulary v = fuzz::byte_bpe_vocabulary();
  return ByteBpeTokenizer(v.tokens, v.merges, v.special_ids[0], v.special_ids[0], pre,
                          v.special_ids, ByteBpeTokenizer::no_unk_id, ignore_merges);
}

const ByteBpeTokenizer& byte_bpe(unsigned choice) {
  static const ByteBpeTokenizer tokenizers[6] = {
      make_byte_bpe(PreTokenizer::gpt2, false),   make_byte_bpe(PreTokenizer::llama3, false),
      make_byte_bpe(PreTokenizer::smollm, false), make_byte_bpe(PreTokenizer::gpt2, true),
      make_byte_bpe(PreTokenizer::llama3, true),  make_byte_bpe(PreTokenizer::smollm, true)};
  return tokenizers[choice % 6];
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const unsigned choice = data[0];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  if (choice % 8 < 2) {
    const SentencePieceTokenizer& tokenizer = sentencepiece();
    const bool bos = (choice & 8) != 0, eos = (choice & 16) != 0;
    const auto ids = tokenizer.encode(text, bos, eos);
    fuzz::require_round_trip("SentencePieceTokenizer", std::string(text), tokenizer.decode(ids));
    std::string streamed;
    std::int32_t previous = tokenizer.bos_id();
    for (const std::int32_t id : ids) {
      streamed += tokenizer.decode(previous, id);
      previous = id;
    }
    fuzz::require_round_trip("SentencePieceTokenizer, streamed", std::string(text), streamed);
  } else {
    const ByteBpeTokenizer& tokenizer = byte_bpe(choice);
    const auto ids = tokenizer.encode(text, false, false);
    fuzz::require_round_trip("ByteBpeTokenizer", std::string(text), tokenizer.decode(ids));
  }
  return 0;
}
