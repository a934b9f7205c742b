// Fuzz target: llama2.c checkpoint reader (io/llama2c_checkpoint.hpp). Any file is either refused
// with a llamablocks::error or read; a read checkpoint's config validates and every weight
// accessor stays inside the buffer (ASan checks each float touched).
#include "fuzz_common.hpp"

#include "llamablocks/io/llama2c_checkpoint.hpp"

#include <cstddef>
#include <cstdint>

namespace {

template <class Tensor>
float touch(const Tensor& tensor) {
  // First and last element: enough for ASan to catch a slice that runs past the buffer.
  if (tensor.size() == 0) return 0.0f;
  return tensor.data()[0] + tensor.data()[tensor.size() - 1];
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace llamablocks;
  const std::string& path = fuzz::write_input(data, size);
  try {
    const Llama2cCheckpoint checkpoint = Llama2cCheckpoint::read(path);
    const ModelConfig config = checkpoint.config();
    volatile float sink = touch(checkpoint.token_embedding()) + touch(checkpoint.rms_final()) +
                          touch(checkpoint.wcls());
    for (index_t layer = 0; layer < config.n_layers; ++layer) {
      sink = sink + touch(checkpoint.rms_att(layer)) + touch(checkpoint.wq(layer)) +
             touch(checkpoint.wk(layer)) + touch(checkpoint.wv(layer)) +
             touch(checkpoint.wo(layer)) + touch(checkpoint.rms_ffn(layer)) +
             touch(checkpoint.w1(layer)) + touch(checkpoint.w2(layer)) +
             touch(checkpoint.w3(layer));
    }
    (void)sink;
  } catch (const error&) {
    // Refused with a message: what a hostile file must get.
  }
  return 0;
}
