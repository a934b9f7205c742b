// Whole-model decode on the GPU: LlamaModel<cuda, bf16> (examples/llama2/llama_decoder.hpp) of the
// LLaMA-2-7B shape (dim 4096, 32 layers, 32 heads, ffn 11008, vocab 32000) with random weights,
// batch 1. After a 128-token prefill, each of `steps` decode steps is timed with CUDA events
// (ids in device memory, logits left on the device); the median step is reported as tokens/s and
// as weight bytes read per token ÷ time, against the device-to-device copy bandwidth measured in
// the same run (issue target: ≥ 80 %, about 175 tokens/s on an H100).
//
// Usage: bench_cuda_llama_decode [steps]   (default 64). Exit 77 without a CUDA device.
#include "cuda_bench_support.cuh"

#include "llama_decoder.hpp"

#include <cstdio>
#include <cstdlib>
#include <vector>

namespace lb = llamablocks;
using lb::index_t;
using T = __nv_bfloat16;

namespace {

lb::ModelConfig llama2_7b() {
  lb::ModelConfig config;
  config.dim = 4096;
  config.n_layers = 32;
  config.n_heads = 32;
  config.n_kv_heads = 32;
  config.head_dim = 128;
  config.ffn_hidden_dim = 11008;
  config.vocab_size = 32000;
  config.max_seq_len = 512;
  config.norm_eps = 1e-5;
  config.rope_theta = 10000.0;
  return config;
}

}  // namespace

int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::atoi(argv[1]) : 64;
  return lb::bench::run_cuda_bench(std::size_t{1} << 30, 20, [&](const lb::Context<lb::cuda>& ctx,
                                                                 const cudaDeviceProp& properties,
                                                                 lb::bench::Timer& timer,
                                                                 const lb::bench::L2Flush&,
                                                                 double copy_gbs) {
    const lb::ModelConfig config = llama2_7b();
    llama2::LlamaModel<lb::cuda, T> model(config, 1, /*tie_output=*/false);
    double weight_bytes = 0;
    std::uint32_t seed = 1;
    auto randomize = [&](auto& parameter, float scale) {
      auto view = parameter.view();
      lb::bench::fill(ctx, view.data(), view.size(), seed++, scale);
      weight_bytes += static_cast<double>(view.size()) * sizeof(T);
    };
    const float projection = 1.0f / 64.0f;  // about 1/sqrt(dim)·sqrt(3) for uniform noise
    randomize(model.token_embedding().weight(), 1.0f);
    weight_bytes -= static_cast<double>(config.vocab_size * config.dim) * sizeof(T);  // one row read
    for (auto& block : model.layers()) {
      randomize(block.attention_norm().weight(), 1.0f);
      randomize(block.ffn_norm().weight(), 1.0f);
      for (auto* w : {&block.attention().wq(), &block.attention().wk(), &block.attention().wv(),
                      &block.attention().wo(), &block.feed_forward().w1(),
                      &block.feed_forward().w2(), &block.feed_forward().w3()})
        randomize(*w, projection);
    }
    randomize(model.final_norm().weight(), 1.0f);
    randomize(model.output().weight(), projection);

    lb::Tensor<std::int32_t, 2, lb::cuda> prompt({1, 128});
    lb::Tensor<std::int32_t, 2, lb::cuda> token({1, 1});
    lb::Tensor<T, 2, lb::cuda> logits({1, config.vocab_size});
    model.forward(ctx, prompt.cview(), 0, logits.view());  // ids 0: any valid id will do
    ctx.synchronize();
    index_t position = 128;
    const auto no_flush = [] {};
    const double step_ms = timer.median_ms(steps, no_flush, [&] {
      model.forward(ctx, token.cview(), position, logits.view());
      ++position;
    });
    const double tokens_per_second = 1e3 / step_ms;
    const double gbs = weight_bytes / (step_ms * 1e-3) / 1e9;
    std::printf("LLaMA-2-7B shape, bf16, batch 1: %.3f ms per token (median of %d), %.1f tokens/s, "
                "%.2f GB of weights per token -> %.1f GB/s = %.1f%% of copy bandwidth (target 80%%)\n",
                step_ms, steps, tokens_per_second, weight_bytes / 1e9, gbs, 100.0 * gbs / copy_gbs);
    std::printf("{\"device\": \"%s\", \"ms_per_token\": %.4f, \"tokens_per_s\": %.2f, "
                "\"weight_gb\": %.3f, \"gbs\": %.1f, \"copy_gbs\": %.1f, \"fraction_of_copy\": %.4f}\n",
                properties.name, step_ms, tokens_per_second, weight_bytes / 1e9, gbs, copy_gbs,
                gbs / copy_gbs);
  });
}
