// The cpu backend's training forward and backward in float, compiled by the host compiler (Eigen
// stays out of nvcc) and called from tests/cuda/test_cuda_backward.cu as the cross-backend
// reference of the cuda backward passes. Every pointer is host memory; every gradient a function
// writes starts from zero (one backward pass), except where it says otherwise.
#pragma once

#include "cpu_reference.hpp"

#include <cstdint>

namespace llamablocks::test {

/// RMSNorm<cpu, float>: x, d_out, d_x: [rows, dim]; weight, d_weight: [dim].
void cpu_rms_norm_backward(const float* x, const float* weight, const float* d_out, float* d_x,
                           float* d_weight, std::int64_t rows, std::int64_t dim, double norm_eps);

/// Linear<cpu, float>: x: [rows, in], weight: [out, in], d_out: [rows, out]; d_x: [rows, in],
/// d_weight: [out, in].
void cpu_linear_backward(const float* x, const float* weight, const float* d_out, float* d_x,
                         float* d_weight, std::int64_t rows, std::int64_t in_features,
                         std::int64_t out_features);

/// Embedding<cpu, float>: ids: [rows], d_out: [rows, dim]; d_table: [vocab_size, dim].
void cpu_embedding_backward(const std::int32_t* ids, const float* d_out, float* d_table,
                            std::int64_t rows, std::int64_t vocab_size, std::int64_t dim);

/// cross_entropy_backward<float> on the cpu: logits, d_logits: [rows, vocab_size]; returns the loss.
double cpu_cross_entropy_backward(const float* logits, const std::int32_t* targets, float* d_logits,
                                  std::int64_t rows, std::int64_t vocab_size);

/// The gradients of one layer, in the nn.Linear layouts of LayerWeights; unused ones may be null.
struct LayerGradients {
  float* wq;
  float* wk;
  float* wv;
  float* wo;
  float* w1;
  float* w2;
  float* w3;
  float* attention_norm;
  float* ffn_norm;
};

/// SwiGLUFeedForward<cpu, float>: training forward of x [rows, dim] into out, then backward of
/// d_out into d_x and grads.w1, w2, w3.
void cpu_swiglu_backward(const LayerShape& shape, const LayerWeights& weights, std::int64_t rows,
                         const float* x, const float* d_out, float* out, float* d_x,
                         const LayerGradients& grads);

/// GroupedQueryAttention<cpu, float>: training forward of x [batch, tokens, dim] into out, then
/// backward of d_out into d_x and grads.wq, wk, wv, wo.
void cpu_attention_backward(const LayerShape& shape, const LayerWeights& weights,
                            std::int64_t tokens, const float* x, const float* d_out, float* out,
                            float* d_x, const LayerGradients& grads);

/// LlamaBlock<cpu, float>: training forward of x into out (the updated residual stream), then
/// backward of d_out into d_x and all nine gradients.
void cpu_llama_block_backward(const LayerShape& shape, const LayerWeights& weights,
                              std::int64_t tokens, const float* x, const float* d_out, float* out,
                              float* d_x, const LayerGradients& grads);

}  // namespace llamablocks::test
