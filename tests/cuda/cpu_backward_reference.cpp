#include "cpu_backward_reference.hpp"
#include "cpu_layer_loading.hpp"

#include "llamablocks/llamablocks.hpp"

#include <algorithm>

namespace llamablocks::test {

namespace {

template <class T, int Rank>
void copy_out(const TensorView<const T, Rank>& source, T* destination) {
  if (destination != nullptr) std::copy_n(source.data(), source.size(), destination);
}

template <class Attention>
void copy_attention_grads(const Attention& attention, const LayerGradients& g) {
  copy_out(attention.wq().grad(), g.wq);
  copy_out(attention.wk().grad(), g.wk);
  copy_out(attention.wv().grad(), g.wv);
  copy_out(attention.wo().grad(), g.wo);
}

template <class FeedForward>
void copy_feed_forward_grads(const FeedForward& feed_forward, const LayerGradients& g) {
  copy_out(feed_forward.w1().grad(), g.w1);
  copy_out(feed_forward.w2().grad(), g.w2);
  copy_out(feed_forward.w3().grad(), g.w3);
}

}  // namespace

void cpu_rms_norm_backward(const float* x, const float* weight, const float* d_out, float* d_x,
                           float* d_weight, std::int64_t rows, std::int64_t dim, double norm_eps) {
  Context<cpu> ctx;
  RMSNorm<cpu, float> norm(dim, norm_eps);
  norm.weight().copy_from(TensorView<const float, 1>(weight, {dim}));
  norm.enable_grad();
  RMSNorm<cpu, float>::Activations saved;
  Tensor<float, 3> out({1, rows, dim});
  norm.forward(ctx, TensorView<const float, 3>(x, {1, rows, dim}), out.view(), saved);
  norm.backward(ctx, saved, TensorView<const float, 3>(d_out, {1, rows, dim}),
                TensorView<float, 3>(d_x, {1, rows, dim}));
  copy_out(TensorView<const float, 1>(norm.weight().grad()), d_weight);
}

void cpu_linear_backward(const float* x, const float* weight, const float* d_out, float* d_x,
                         float* d_weight, std::int64_t rows, std::int64_t in_features,
                         std::int64_t out_features) {
  Context<cpu> ctx;
  Linear<cpu, float> linear(in_features, out_features);
  linear.weight().copy_from(TensorView<const float, 2>(weight, {out_features, in_features}));
  linear.enable_grad();
  Linear<cpu, float>::Activations saved;
  Tensor<float, 3> out({1, rows, out_features});
  linear.forward(ctx, TensorView<const float, 3>(x, {1, rows, in_features}), out.view(), saved);
  linear.backward(ctx, saved, TensorView<const float, 3>(d_out, {1, rows, out_features}),
                  TensorView<float, 3>(d_x, {1, rows, in_features}));
  copy_out(TensorView<const float, 2>(linear.weight().grad()), d_weight);
}

void cpu_embedding_backward(const std::int32_t* ids, const float* d_out, float* d_table,
                            std::int64_t rows, std::int64_t vocab_size, std::int64_t dim) {
  Context<cpu> ctx;
  Embedding<cpu, float> embedding(vocab_size, dim);
  embedding.enable_grad();
  Embedding<cpu, float>::Activations saved;
  Tensor<float, 3> out({1, rows, dim});
  embedding.forward(ctx, TensorView<const std::int32_t, 2>(ids, {1, rows}), out.view(), saved);
  embedding.backward(ctx, saved, TensorView<const float, 3>(d_out, {1, rows, dim}));
  copy_out(TensorView<const float, 2>(embedding.weight().grad()), d_table);
}

double cpu_cross_entropy_backward(const float* logits, const std::int32_t* targets, float* d_logits,
                                  std::int64_t rows, std::int64_t vocab_size) {
  Context<cpu> ctx;
  return cross_entropy_backward<float>(ctx, TensorView<const float, 2>(logits, {rows, vocab_size}),
                                       TensorView<const std::int32_t, 1>(targets, {rows}),
                                       TensorView<float, 2>(d_logits, {rows, vocab_size}));
}

void cpu_swiglu_backward(const LayerShape& shape, const LayerWeights& weights, std::int64_t rows,
                         const float* x, const float* d_out, float* out, float* d_x,
                         const LayerGradients& grads) {
  Context<cpu> ctx;
  SwiGLUFeedForward<cpu, float> feed_forward(shape.dim, shape.ffn_hidden_dim);
  load_feed_forward(feed_forward, shape, weights);
  feed_forward.enable_grad();
  SwiGLUFeedForward<cpu, float>::Activations saved;
  const Shape<3> io{1, rows, shape.dim};
  feed_forward.forward(ctx, TensorView<const float, 3>(x, io), TensorView<float, 3>(out, io), saved);
  feed_forward.backward(ctx, saved, TensorView<const float, 3>(d_out, io),
                        TensorView<float, 3>(d_x, io));
  copy_feed_forward_grads(feed_forward, grads);
}

void cpu_attention_backward(const LayerShape& shape, const LayerWeights& weights,
                            std::int64_t tokens, const float* x, const float* d_out, float* out,
                            float* d_x, const LayerGradients& grads) {
  Context<cpu> ctx;
  GroupedQueryAttention<cpu, float> attention(config_of(shape));
  load_attention(attention, shape, weights);
  attention.enable_grad();
  GroupedQueryAttention<cpu, float>::Activations saved;
  const Shape<3> io{shape.batch, tokens, shape.dim};
  attention.forward(ctx, TensorView<const float, 3>(x, io), TensorView<float, 3>(out, io), saved);
  attention.backward(ctx, saved, TensorView<const float, 3>(d_out, io),
                     TensorView<float, 3>(d_x, io));
  copy_attention_grads(attention, grads);
}

void cpu_llama_block_backward(const LayerShape& shape, const LayerWeights& weights,
                              std::int64_t tokens, const float* x, const float* d_out, float* out,
                              float* d_x, const LayerGradients& grads) {
  Context<cpu> ctx;
  LlamaBlock<cpu, float> block(config_of(shape));
  load_attention(block.attention(), shape, weights);
  load_feed_forward(block.feed_forward(), shape, weights);
  block.attention_norm().weight().copy_from(TensorView<const float, 1>(weights.attention_norm, {shape.dim}));
  block.ffn_norm().weight().copy_from(TensorView<const float, 1>(weights.ffn_norm, {shape.dim}));
  block.enable_grad();
  LlamaBlock<cpu, float>::Activations saved;
  const std::int64_t count = shape.batch * tokens * shape.dim;
  const Shape<3> io{shape.batch, tokens, shape.dim};
  std::copy_n(x, count, out);
  block.forward(ctx, TensorView<float, 3>(out, io), saved);
  std::copy_n(d_out, count, d_x);
  block.backward(ctx, saved, TensorView<float, 3>(d_x, io));
  copy_attention_grads(block.attention(), grads);
  copy_feed_forward_grads(block.feed_forward(), grads);
  copy_out(TensorView<const float, 1>(block.attention_norm().weight().grad()), grads.attention_norm);
  copy_out(TensorView<const float, 1>(block.ffn_norm().weight().grad()), grads.ffn_norm);
}

void cpu_adamw_steps(AdamWRun& run) {
  Parameter<float, 2> matrix("matrix", {run.rows, run.cols});
  Parameter<float, 1> gain("gain", {run.cols});
  matrix.copy_from(TensorView<const float, 2>(run.matrix.data(), {run.rows, run.cols}));
  gain.copy_from(TensorView<const float, 1>(run.gain.data(), {run.cols}));
  matrix.enable_grad();
  gain.enable_grad();
  AdamWConfig config;
  config.lr = run.lr;
  config.beta1 = run.beta1;
  config.beta2 = run.beta2;
  config.eps = run.eps;
  config.weight_decay = run.weight_decay;
  AdamW<float> optimizer(config);
  optimizer.add(matrix);
  optimizer.add(gain);
  run.norms.clear();
  for (std::size_t s = 0; s < run.matrix_grads.size(); ++s) {
    std::copy(run.matrix_grads[s].begin(), run.matrix_grads[s].end(), matrix.grad().data());
    std::copy(run.gain_grads[s].begin(), run.gain_grads[s].end(), gain.grad().data());
    run.norms.push_back(optimizer.clip_grad_norm(run.max_norm));
    optimizer.step();
  }
  copy_out(TensorView<const float, 2>(matrix.view()), run.matrix.data());
  copy_out(TensorView<const float, 1>(gain.view()), run.gain.data());
  run.matrix_m = optimizer.exp_avg(0);
  run.matrix_v = optimizer.exp_avg_sq(0);
  run.gain_m = optimizer.exp_avg(1);
  run.gain_v = optimizer.exp_avg_sq(1);
}

}  // namespace llamablocks::test
