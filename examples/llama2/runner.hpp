// The model behind one backend as the generation loop sees it: token ids in, logits out, both in
// host memory. The cpu runner (main.cpp) calls LlamaModel<cpu> directly; the cuda runner
// (cuda_runner.cu, built when the project finds nvcc) copies the ids to the device, runs
// LlamaModel<cuda> and copies the logits back.
#pragma once

#include <llamablocks/core/config.hpp>
#include <llamablocks/core/tensor.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace llama2 {

using namespace llamablocks;

class Runner {
 public:
  virtual ~Runner() = default;
  virtual const ModelConfig& config() const = 0;
  /// "cpu (2 threads)", "cuda (NVIDIA H100 ...)".
  virtual std::string device() const = 0;
  /// tokens: [batch, count] ids at positions start_pos .. start_pos + count − 1; logits:
  /// [batch, vocab_size] gets the last position's. Both in host memory.
  virtual void forward(const TensorView<const std::int32_t, 2>& tokens, index_t start_pos,
                       const TensorView<float, 2>& logits) = 0;
  /// forward(), then ids: [batch] (host) gets each sequence's greedy choice: the largest logit,
  /// the lowest id among equal ones (Sampler at temperature 0). Throws range_error for logits
  /// holding NaN or +inf, or only −inf.
  virtual void forward_greedy(const TensorView<const std::int32_t, 2>& tokens, index_t start_pos,
                              const TensorView<std::int32_t, 1>& ids) = 0;
};

/// float32 weights of one layer in host memory (views into a loaded cpu model).
struct HostLayerWeights {
  TensorView<const float, 1> attention_norm;
  TensorView<const float, 2> wq, wk, wv, wo;
  TensorView<const float, 1> ffn_norm;
  TensorView<const float, 2> w1, w2, w3;
};

/// A whole model's float32 weights in host memory, to be copied to a device.
struct HostWeights {
  ModelConfig config;
  bool tied_output = false;
  TensorView<const float, 2> token_embedding;
  std::vector<HostLayerWeights> layers;
  TensorView<const float, 1> final_norm;
  TensorView<const float, 2> output;
};

/// Whether this build has the cuda backend (cuda_runner.cu compiled in).
bool cuda_available();

/// A runner for `weights` on CUDA device `device` (float32 weights and activations, caches for
/// `batch` sequences). Throws llamablocks::error when the build has no cuda backend, there is no
/// device, or the device runs out of memory.
std::unique_ptr<Runner> make_cuda_runner(const HostWeights& weights, index_t batch, int device);

}  // namespace llama2
