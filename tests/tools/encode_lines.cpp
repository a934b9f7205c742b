// encode_lines: prints the token ids of each line of stdin, for the SentencePiece parity check
// (tests/sentencepiece_parity.py).
//
// Usage: encode_lines <tokenizer.bin> [vocab_size]
// Reads stdin line by line ('\n' separated; the '\n' is not part of the line) and writes, for each
// line, its ids without BOS or EOS, separated by single spaces, on one line (an empty line for an
// empty input line). vocab_size defaults to 0: every token of the file.
#include <llamablocks/text/sentencepiece_tokenizer.hpp>

#include <cstdint>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::cerr << "usage: " << argv[0] << " <tokenizer.bin> [vocab_size]\n";
    return 2;
  }
  try {
    const long vocab_size = argc == 3 ? std::stol(argv[2]) : 0;
    if (vocab_size < 0 || vocab_size > std::numeric_limits<std::int32_t>::max()) {
      std::cerr << "encode_lines: vocab_size must be in [0, INT32_MAX], got " << vocab_size << '\n';
      return 2;
    }
    const auto tokenizer = llamablocks::SentencePieceTokenizer::from_llama2c_file(
        argv[1], static_cast<std::int32_t>(vocab_size));
    std::ios::sync_with_stdio(false);
    std::string line;
    std::string out;
    while (std::getline(std::cin, line)) {
      out.clear();
      for (const std::int32_t id : tokenizer.encode(line, /*add_bos=*/false, /*add_eos=*/false)) {
        if (!out.empty()) out += ' ';
        out += std::to_string(id);
      }
      out += '\n';
      std::cout << out;
    }
    std::cout.flush();
    return std::cout ? EXIT_SUCCESS : EXIT_FAILURE;
  } catch (const std::exception& e) {
    std::cerr << "encode_lines: " << e.what() << '\n';
    return EXIT_FAILURE;
  }
}
