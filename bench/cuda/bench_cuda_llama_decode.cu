// Whole-model decode on the GPU: LlamaModel<cuda, bf16> (examples/llama2/llama_decoder.hpp) of the
// LLaMA-2-7B shape (dim 4096, 32 layers, 32 heads, ffn 11008, vocab 32000) with random weights,
// batch 1. After a 128-token prefill, each iteration is one decode step between CUDA events (ids in
// device memory, logits left on the device; 64 steps, 5 repetitions, median). Counters: tokens/s,
// and weight bytes read per token ÷ time ("GB/s") over the device-to-device copy bandwidth
// measured first in the run ("of_copy"; issue 4 target ≥ 0.8, about 175 tokens/s on an H100).
// Exit 77 without a CUDA device.
#include "cuda_bench_support.cuh"

#include "llama_decoder.hpp"

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

void BM_LlamaDecode7B(benchmark::State& state) {
  const auto& ctx = lb::bench::CudaBench::get().ctx();
  const lb::ModelConfig config = llama2_7b();
  llama2::LlamaModel<lb::cuda, T> model(config, 1, /*tie_output=*/false);
  double weight_bytes = 0;
  std::uint32_t seed = 1;
  auto randomize = [&](auto& parameter, float scale) {
    auto view = parameter.view();
    lb::bench::fill(view.data(), view.size(), seed++, scale);
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

  lb::Tensor<std::int32_t, 2, lb::cuda> prompt({1, 128});  // ids 0: any valid id will do
  lb::Tensor<std::int32_t, 2, lb::cuda> token({1, 1});
  lb::Tensor<T, 2, lb::cuda> logits({1, config.vocab_size});
  model.forward(ctx, prompt.cview(), 0, logits.view());
  ctx.synchronize();
  index_t position = 128;
  // The weights (13 GB) do not fit any cache: no flush needed between steps.
  const double seconds = lb::bench::time_with_events(state, false, [&] {
    if (position == config.max_seq_len) position = 128;  // rewind the caches, same work per step
    model.forward(ctx, token.cview(), position, logits.view());
    ++position;
  });
  lb::bench::report_bandwidth(state, weight_bytes, seconds);
  state.counters["tokens/s"] = static_cast<double>(state.iterations()) / seconds;
  state.counters["weight_GB"] = weight_bytes / 1e9;
}

}  // namespace

BENCHMARK(lb::bench::BM_CopyDeviceToDevice)->Arg(1024)->UseManualTime()->Repetitions(5)
    ->ReportAggregatesOnly(true)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_LlamaDecode7B)->Iterations(64)->UseManualTime()->Repetitions(5)
    ->ReportAggregatesOnly(true)->Unit(benchmark::kMillisecond);
