// The cpu backend's training forward and backward in float, compiled by the host compiler (Eigen
// stays out of nvcc) and called from tests/cuda/test_cuda_backward.cu as the cross-backend
// reference of the cuda backward passes. Every pointer is host memory; every gradient a function
// writes starts from zero (one backward pass), except where it says otherwise.
#pragma once

#include "cpu_reference.hpp"

#include <cstdint>
#include <vector>

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

/// AdamW<float> on the cpu over two host parameters: a matrix [rows, cols] (weight decay applied)
/// and a gain [cols] (none). Step s sets the gradients to matrix_grads[s] and gain_grads[s], runs
/// clip_grad_norm(max_norm) (its norm into norms[s]) and step(). The weights, m and v are updated
/// in place (m and v start at zero, sized by the caller).
struct AdamWRun {
  double lr, beta1, beta2, eps, weight_decay, max_norm;
  std::int64_t rows, cols;
  std::vector<float> matrix, gain;                            // in: initial, out: final weights
  std::vector<std::vector<float>> matrix_grads, gain_grads;  // per step
  std::vector<float> matrix_m, matrix_v, gain_m, gain_v;     // out: the final moments
  std::vector<double> norms;                                 // out: per step
};
void cpu_adamw_steps(AdamWRun& run);

}  // namespace llamablocks::test
