// The cuda runner of the LLaMA example: LlamaModel<cuda, float> filled from host weights, with
// device buffers for the ids and the logits (the only copies per call: ids in, logits out).
#include "runner.hpp"

#include <llamablocks/cuda.cuh>

#include "llama_decoder.hpp"

#include <string>
#include <utility>

namespace llama2 {
namespace {

class CudaRunner final : public Runner {
 public:
  CudaRunner(const HostWeights& weights, index_t batch, int device)
      : ctx_(device), model_(weights.config, batch, weights.tied_output) {
    model_.token_embedding().weight().copy_from(weights.token_embedding);
    for (std::size_t layer = 0; layer < weights.layers.size(); ++layer) {
      const HostLayerWeights& w = weights.layers[layer];
      auto& block = model_.layers()[layer];
      block.attention_norm().weight().copy_from(w.attention_norm);
      block.attention().wq().copy_from(w.wq);
      block.attention().wk().copy_from(w.wk);
      block.attention().wv().copy_from(w.wv);
      block.attention().wo().copy_from(w.wo);
      block.ffn_norm().weight().copy_from(w.ffn_norm);
      block.feed_forward().w1().copy_from(w.w1);
      block.feed_forward().w2().copy_from(w.w2);
      block.feed_forward().w3().copy_from(w.w3);
    }
    model_.final_norm().weight().copy_from(weights.final_norm);
    // A tied head already shares the embedding's device storage (LlamaModel's constructor).
    if (!weights.tied_output) model_.output().weight().copy_from(weights.output);
    cudaDeviceProp properties{};
    LLAMABLOCKS_CUDA_CHECK(cudaGetDeviceProperties(&properties, device));
    name_ = std::string("cuda (") + properties.name + ")";
  }

  const ModelConfig& config() const override { return model_.config(); }
  std::string device() const override { return name_; }

  void forward(const TensorView<const std::int32_t, 2>& tokens, index_t start_pos,
               const TensorView<float, 2>& logits) override {
    detail::expect_shape("CudaRunner::forward", "logits", logits,
                         {tokens.shape(0), model_.config().vocab_size});
    const TensorView<float, 2> device_logits = run_on_device("CudaRunner::forward", tokens, start_pos);
    detail::allocator<cuda>::copy_to_host(logits.data(), device_logits.data(),
                                          static_cast<std::size_t>(logits.size()) * sizeof(float));
  }

  /// The argmax is taken on the device (greedy_tokens): one int32 per sequence comes back.
  void forward_greedy(const TensorView<const std::int32_t, 2>& tokens, index_t start_pos,
                      const TensorView<std::int32_t, 1>& ids) override {
    const index_t batch = tokens.shape(0);
    detail::expect_shape("CudaRunner::forward_greedy", "ids", ids, {batch});
    const TensorView<float, 2> device_logits =
        run_on_device("CudaRunner::forward_greedy", tokens, start_pos);
    const auto device_ids = ids_.get<1>({batch});
    greedy_tokens<float>(ctx_, device_logits, device_ids);
    detail::allocator<cuda>::copy_to_host(ids.data(), device_ids.data(),
                                          static_cast<std::size_t>(batch) * sizeof(std::int32_t));
    for (index_t b = 0; b < batch; ++b)
      detail::require<range_error>(ids(b) >= 0, "CudaRunner::forward_greedy: the logits of sequence ",
                                   b, ids(b) == greedy_bad_logit ? " hold NaN or +inf"
                                                                 : " are all -inf");
  }

 private:
  /// Copies the ids to the device and runs the model: the returned [batch, vocab] logits stay on
  /// the device (they live in logits_ until the next call).
  TensorView<float, 2> run_on_device(const char* where,
                                     const TensorView<const std::int32_t, 2>& tokens,
                                     index_t start_pos) {
    detail::expect_shape(where, "tokens", tokens, tokens.shape());  // contiguous: copied as one block
    const auto device_tokens = tokens_.get<2>(tokens.shape());
    const auto device_logits = logits_.get<2>({tokens.shape(0), model_.config().vocab_size});
    detail::allocator<cuda>::copy_from_host(device_tokens.data(), tokens.data(),
                                            static_cast<std::size_t>(tokens.size()) * sizeof(std::int32_t));
    model_.forward(ctx_, device_tokens, start_pos, device_logits);
    return device_logits;
  }

  Context<cuda> ctx_;
  LlamaModel<cuda, float> model_;
  Workspace<std::int32_t, cuda> tokens_;
  Workspace<float, cuda> logits_;
  Workspace<std::int32_t, cuda> ids_;
  std::string name_;
};

}  // namespace

bool cuda_available() { return true; }

std::unique_ptr<Runner> make_cuda_runner(const HostWeights& weights, index_t batch, int device) {
  const std::string no_device = cuda_unavailable_reason();
  if (!no_device.empty()) throw cuda_error(detail::concat("no CUDA device (", no_device, ")"));
  return std::make_unique<CudaRunner>(weights, batch, device);
}

}  // namespace llama2
