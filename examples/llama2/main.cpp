// llama2: generates tokens with a LLaMA model assembled from llamablocks.
//
// This first version runs a model with random weights of a given shape, to exercise the whole
// pipeline (batched prefill, then one-token decode steps through the KV caches) and to report
// prefill and decode tokens/s. Checkpoint readers and tokenizers come with the io/ and text/ parts.
//
//   llama2 --shape stories15M|stories110M|tinyllama|DIM,LAYERS,HEADS,KV_HEADS,FFN,VOCAB
//          [-n STEPS] [--prompt-tokens N] [--threads N] [-s SEED] [--print-ids]
#include "llama_model.hpp"

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>

namespace {

using namespace llamablocks;

struct Options {
  ModelConfig config;
  std::string shape_name = "stories15M";
  index_t steps = 64;
  index_t prompt_tokens = 32;
  int threads = Context<cpu>::default_num_threads();
  unsigned seed = 42;
  bool print_ids = false;
};

[[noreturn]] void usage(const char* message) {
  std::fprintf(stderr,
               "error: %s\n"
               "usage: llama2 --shape stories15M|stories110M|tinyllama|DIM,LAYERS,HEADS,KV_HEADS,FFN,VOCAB\n"
               "              [-n STEPS] [--prompt-tokens N] [--threads N] [-s SEED] [--print-ids]\n",
               message);
  std::exit(2);
}

ModelConfig shape_config(const std::string& name) {
  ModelConfig config;
  std::int64_t dim = 0, layers = 0, heads = 0, kv_heads = 0, ffn = 0, vocab = 0;
  if (name == "stories15M") {
    dim = 288, layers = 6, heads = 6, kv_heads = 6, ffn = 768, vocab = 32000;
  } else if (name == "stories110M") {
    dim = 768, layers = 12, heads = 12, kv_heads = 12, ffn = 2048, vocab = 32000;
  } else if (name == "tinyllama") {
    dim = 2048, layers = 22, heads = 32, kv_heads = 4, ffn = 5632, vocab = 32000;
  } else {
    char comma[5];
    std::istringstream in(name);
    if (!(in >> dim >> comma[0] >> layers >> comma[1] >> heads >> comma[2] >> kv_heads >> comma[3] >>
          ffn >> comma[4] >> vocab))
      usage(("cannot parse --shape " + name).c_str());
  }
  config.dim = dim;
  config.n_layers = layers;
  config.n_heads = heads;
  config.n_kv_heads = kv_heads;
  config.head_dim = heads > 0 ? dim / heads : 0;
  config.ffn_hidden_dim = ffn;
  config.vocab_size = vocab;
  config.norm_eps = 1e-5;
  config.rope_theta = 10000;
  config.max_seq_len = 2048;
  return config;
}

Options parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value for " + flag).c_str());
      return argv[++i];
    };
    if (flag == "--shape") options.shape_name = value();
    else if (flag == "-n") options.steps = std::stoll(value());
    else if (flag == "--prompt-tokens") options.prompt_tokens = std::stoll(value());
    else if (flag == "--threads") options.threads = std::stoi(value());
    else if (flag == "-s") options.seed = static_cast<unsigned>(std::stoul(value()));
    else if (flag == "--print-ids") options.print_ids = true;
    else usage(("unknown flag " + flag).c_str());
  }
  options.config = shape_config(options.shape_name);
  if (options.prompt_tokens < 1 || options.steps < 0 ||
      options.prompt_tokens + options.steps > options.config.max_seq_len)
    usage("need 1 <= prompt tokens and prompt tokens + steps <= max_seq_len");
  return options;
}

template <class Model>
void randomize(Model& model, unsigned seed) {
  std::mt19937 generator(seed);
  auto fill = [&](auto& parameter, double stddev, double mean) {
    std::normal_distribution<float> distribution(static_cast<float>(mean), static_cast<float>(stddev));
    auto view = parameter.view();
    for (index_t i = 0; i < view.size(); ++i) view.data()[i] = distribution(generator);
  };
  const double scale = 1.0 / std::sqrt(static_cast<double>(model.config().dim));
  fill(model.token_embedding().weight(), 1.0, 0.0);
  for (auto& layer : model.layers()) {
    fill(layer.attention_norm().weight(), 0.1, 1.0);
    for (auto* w : {&layer.attention().wq(), &layer.attention().wk(), &layer.attention().wv(),
                    &layer.attention().wo(), &layer.feed_forward().w1(), &layer.feed_forward().w3()})
      fill(*w, scale, 0.0);
    fill(layer.feed_forward().w2(), 1.0 / std::sqrt(static_cast<double>(model.config().ffn_hidden_dim)), 0.0);
    fill(layer.ffn_norm().weight(), 0.1, 1.0);
  }
  fill(model.final_norm().weight(), 0.1, 1.0);
  fill(model.output().weight(), scale, 0.0);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options options = parse(argc, argv);
    const ModelConfig& config = options.config;
    Context<cpu> ctx(options.threads);
    llama2::LlamaModel<cpu> model(config, 1, /*tie_output=*/false);
    randomize(model, options.seed);
    std::fprintf(stderr, "model %s: dim %lld, %lld layers, %lld/%lld heads, ffn %lld, vocab %lld; %d threads\n",
                 options.shape_name.c_str(), static_cast<long long>(config.dim),
                 static_cast<long long>(config.n_layers), static_cast<long long>(config.n_heads),
                 static_cast<long long>(config.n_kv_heads), static_cast<long long>(config.ffn_hidden_dim),
                 static_cast<long long>(config.vocab_size), options.threads);

    std::vector<std::int32_t> prompt(static_cast<std::size_t>(options.prompt_tokens));
    std::mt19937 generator(options.seed + 1);
    for (auto& id : prompt) id = static_cast<std::int32_t>(generator() % static_cast<unsigned>(config.vocab_size));
    Tensor<float, 2> logits({1, config.vocab_size});
    auto argmax = [&] {
      const float* row = logits.data();
      return static_cast<std::int32_t>(std::max_element(row, row + config.vocab_size) - row);
    };
    using clock = std::chrono::steady_clock;

    const auto prefill_start = clock::now();
    model.forward(ctx, TensorView<const std::int32_t, 2>(prompt.data(), {1, options.prompt_tokens}), 0,
                  logits.view());
    const double prefill_seconds = std::chrono::duration<double>(clock::now() - prefill_start).count();

    std::int32_t token = argmax();
    const auto decode_start = clock::now();
    for (index_t step = 0; step < options.steps; ++step) {
      if (options.print_ids) std::printf("%d ", token);
      std::fflush(stdout);
      model.forward(ctx, TensorView<const std::int32_t, 2>(&token, {1, 1}), options.prompt_tokens + step,
                    logits.view());
      token = argmax();
    }
    const double decode_seconds = std::chrono::duration<double>(clock::now() - decode_start).count();
    if (options.print_ids) std::printf("\n");
    std::printf("prefill: %lld tokens at %.1f tokens/s; decode: %lld tokens at %.1f tokens/s\n",
                static_cast<long long>(options.prompt_tokens),
                static_cast<double>(options.prompt_tokens) / prefill_seconds,
                static_cast<long long>(options.steps),
                options.steps > 0 ? static_cast<double>(options.steps) / decode_seconds : 0.0);
    return 0;
  } catch (const llamablocks::error& e) {
    std::fprintf(stderr, "llama2: %s\n", e.what());
    return 1;
  }
}
