// A downstream program built against the installed llamablocks package: one LLaMA block with
// constant weights, run on two tokens. Exits non-zero unless the result is finite and non-zero.
#include <llamablocks/llamablocks.hpp>

#include <cmath>
#include <cstdio>

int main() {
  using namespace llamablocks;
  ModelConfig config;
  config.dim = 32;
  config.n_layers = 1;
  config.n_heads = 4;
  config.n_kv_heads = 2;
  config.head_dim = 8;
  config.vocab_size = 16;
  config.ffn_hidden_dim = llama_ffn_hidden_dim(config.dim, 16);
  config.norm_eps = 1e-5;
  config.rope_theta = 10000;
  config.max_seq_len = 8;
  config.validate();

  Context<cpu> ctx(1);
  LlamaBlock<cpu> block(config);
  for (auto* weight : {&block.attention().wq(), &block.attention().wk(), &block.attention().wv(),
                       &block.attention().wo(), &block.feed_forward().w1(),
                       &block.feed_forward().w2(), &block.feed_forward().w3()}) {
    auto view = weight->view();
    for (index_t i = 0; i < view.size(); ++i) view.data()[i] = 0.01f * static_cast<float>(i % 7);
  }
  KVCache<cpu> cache(config, 1);
  Tensor<float, 3> x({1, 2, config.dim});
  for (index_t i = 0; i < x.size(); ++i) x.data()[i] = 1.0f;
  block.forward(ctx, x.view(), cache, 0);

  double sum = 0;
  for (index_t i = 0; i < x.size(); ++i) sum += x.data()[i];
  std::printf("consumer: cache length %lld, output sum %.6f\n",
              static_cast<long long>(cache.length()), sum);
  return (cache.length() == 2 && std::isfinite(sum) && sum != 2.0 * config.dim) ? 0 : 1;
}
