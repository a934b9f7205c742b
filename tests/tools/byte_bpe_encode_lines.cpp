// byte_bpe_encode_lines: prints the token ids of each line of stdin with a ByteBpeTokenizer, for
// the parity check against Hugging Face tokenizers (tests/byte_bpe_parity.py).
//
// Usage: byte_bpe_encode_lines <vocab dump> <gpt2|llama3|smollm> [--ignore-merges]
//
// The vocabulary dump is a text file (written by tests/byte_bpe_parity.py from a GGUF file):
//   tokens N            then N records
//   merges M            then M records
//   bos ID
//   eos ID
//   unk ID              -1 for none
//   special K ID...     the special (control) token ids, on one line
// where a record is "<byte length> <bytes>\n", so any byte may appear in a token.
//
// Each line of stdin ('\n' separated) is unescaped ("\\n" -> LF, "\\r" -> CR, "\\\\" -> '\'), so a
// line can hold line breaks, and its ids (no BOS or EOS) are written on one line, separated by
// single spaces. The tool also checks that decoding the ids gives the line back (unless they hold
// the unknown token); it exits 1 if not.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iostream>
#include <llamablocks/text/byte_bpe_tokenizer.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

std::vector<std::string> read_records(std::istream& in, const std::string& name) {
  std::string label;
  std::size_t count = 0;
  if (!(in >> label >> count) || label != name) {
    throw std::runtime_error("vocab dump: expected '" + name + " <count>'");
  }
  in.get();  // the '\n' after the count
  std::vector<std::string> records;
  records.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    std::size_t length = 0;
    if (!(in >> length) || in.get() != ' ') {
      throw std::runtime_error("vocab dump: " + name + " record " + std::to_string(i) +
                               ": expected '<length> '");
    }
    std::string record(length, '\0');
    in.read(record.data(), static_cast<std::streamsize>(length));
    if (!in || in.get() != '\n') {
      throw std::runtime_error("vocab dump: " + name + " record " + std::to_string(i) +
                               ": truncated");
    }
    records.push_back(std::move(record));
  }
  return records;
}

std::int32_t read_id(std::istream& in, const std::string& name) {
  std::string label;
  std::int32_t id = 0;
  if (!(in >> label >> id) || label != name) {
    throw std::runtime_error("vocab dump: expected '" + name + " <id>'");
  }
  return id;
}

std::string unescape(const std::string& line) {
  std::string text;
  for (std::size_t i = 0; i < line.size(); ++i) {
    if (line[i] != '\\' || i + 1 == line.size()) {
      text += line[i];
      continue;
    }
    const char next = line[++i];
    text += next == 'n' ? '\n' : next == 'r' ? '\r' : next;
  }
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4 || (argc == 4 && std::string(argv[3]) != "--ignore-merges")) {
    std::cerr << "usage: " << argv[0] << " <vocab dump> <gpt2|llama3|smollm> [--ignore-merges]\n";
    return 2;
  }
  const std::string pre_name = argv[2];
  llamablocks::PreTokenizer pre_tokenizer = llamablocks::PreTokenizer::gpt2;
  if (pre_name == "llama3") {
    pre_tokenizer = llamablocks::PreTokenizer::llama3;
  } else if (pre_name == "smollm") {
    pre_tokenizer = llamablocks::PreTokenizer::smollm;
  } else if (pre_name != "gpt2") {
    std::cerr << "byte_bpe_encode_lines: pre-tokenizer must be gpt2, llama3 or smollm, got '"
              << pre_name << "'\n";
    return 2;
  }
  try {
    std::ifstream dump(argv[1], std::ios::binary);
    if (!dump) throw std::runtime_error(std::string("cannot open ") + argv[1]);
    std::vector<std::string> tokens = read_records(dump, "tokens");
    const std::vector<std::string> merges = read_records(dump, "merges");
    const std::int32_t bos_id = read_id(dump, "bos");
    const std::int32_t eos_id = read_id(dump, "eos");
    const std::int32_t unk_id = read_id(dump, "unk");
    std::string label;
    std::size_t special_count = 0;
    if (!(dump >> label >> special_count) || label != "special") {
      throw std::runtime_error("vocab dump: expected 'special <count> <ids>'");
    }
    std::vector<std::int32_t> special_ids(special_count);
    for (std::int32_t& id : special_ids) {
      if (!(dump >> id)) throw std::runtime_error("vocab dump: special ids truncated");
    }
    const llamablocks::ByteBpeTokenizer tokenizer(std::move(tokens), merges, bos_id, eos_id,
                                                  pre_tokenizer, special_ids, unk_id, argc == 4);

    std::ios::sync_with_stdio(false);
    std::string line;
    std::string out;
    std::size_t line_number = 0;
    while (std::getline(std::cin, line)) {
      ++line_number;
      const std::string text = unescape(line);
      const std::vector<std::int32_t> ids = tokenizer.encode(text, false, false);
      const bool has_unknown =
          unk_id >= 0 && std::find(ids.begin(), ids.end(), unk_id) != ids.end();
      if (!has_unknown && tokenizer.decode(ids) != text) {
        std::cerr << "byte_bpe_encode_lines: line " << line_number
                  << ": decode(encode(line)) differs from the line\n";
        return EXIT_FAILURE;
      }
      out.clear();
      for (const std::int32_t id : ids) {
        if (!out.empty()) out += ' ';
        out += std::to_string(id);
      }
      out += '\n';
      std::cout << out;
    }
    std::cout.flush();
    return std::cout ? EXIT_SUCCESS : EXIT_FAILURE;
  } catch (const std::exception& e) {
    std::cerr << "byte_bpe_encode_lines: " << e.what() << '\n';
    return EXIT_FAILURE;
  }
}
