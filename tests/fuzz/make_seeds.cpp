// Writes the seed corpus of every fuzz target: make_seeds DIR creates DIR/<target>/ with small
// valid inputs (tests/fuzz/seeds.hpp), so no binary seed is committed. The GGUF target also gets
// the fixtures of tests/data/gguf, copied by scripts/run-fuzzers.sh.
#include "seeds.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace {

void write(const std::filesystem::path& dir, const std::string& name, const std::string& bytes) {
  std::filesystem::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  namespace fuzz = llamablocks::fuzz;
  const std::filesystem::path root = argv[1];
  write(root / "fuzz_llama2c_checkpoint", "tied.bin", fuzz::llama2c_checkpoint(5));
  write(root / "fuzz_llama2c_checkpoint", "untied.bin", fuzz::llama2c_checkpoint(-5));
  write(root / "fuzz_tokenizer_bin", "tokenizer.bin", fuzz::llama2c_tokenizer());
  write(root / "fuzz_gguf", "llama_vocab.gguf", fuzz::gguf_model("llama"));
  write(root / "fuzz_gguf", "gpt2_vocab.gguf", fuzz::gguf_model("gpt2"));
  write(root / "fuzz_gguf_vocab", "llama_vocab.gguf", fuzz::gguf_model("llama"));
  write(root / "fuzz_gguf_vocab", "gpt2_vocab.gguf", fuzz::gguf_model("gpt2"));
  write(root / "fuzz_safetensors", "three_dtypes.safetensors", fuzz::safetensors_file());
  write(root / "fuzz_hf_config", "llama3_config.json", fuzz::hf_config_json());
  write(root / "fuzz_json", "llama3_config.json", fuzz::hf_config_json());
  write(root / "fuzz_json", "nested.json", R"({"a": [[{"b": null}], true, false, "x\u0041"], "c": {}})");
  const std::string texts[] = {"Hello, the world!", " leading space", "\xFF\xFE invalid \x80",
                               "caf\xC3\xA9 \xE4\xBD\xA0\xE5\xA5\xBD \xE2\x96\x81",
                               "<|im_start|>user\nit's 12345<|endoftext|>", "  \n\n\t  x"};
  int n = 0;
  for (const std::string& text : texts) {
    for (const char selector : {'\x00', '\x19', '\x02', '\x03', '\x04', '\x05', '\x06', '\x07'})
      write(root / "fuzz_tokenizer_roundtrip", "text" + std::to_string(n++), selector + text);
  }
  return 0;
}
