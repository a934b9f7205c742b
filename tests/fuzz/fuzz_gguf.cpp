// Fuzz target: GGUF reader (io/gguf.hpp). Opens the input as a GGUF file, reads every metadata
// value with every getter, derives the ModelConfig (config_from_gguf) and loads every tensor as
// float32 with its own shape. Anything refused must be refused with a llamablocks::error.
#include "fuzz_common.hpp"

#include "llamablocks/io/gguf.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace {

using namespace llamablocks;

/// Reads `value` every way the API offers; type mismatches throw format_error, which is fine.
std::size_t read_value(const io::GgufValue& value) {
  std::size_t touched = 0;
  const auto attempt = [&](auto read) {
    try {
      read();
      ++touched;
    } catch (const error&) {
    }
  };
  attempt([&] { (void)value.as_integer(); });
  attempt([&] { (void)value.as_real(); });
  attempt([&] { touched += value.as<std::string>().size(); });
  attempt([&] { (void)value.as<bool>(); });
  if (value.is_array()) {
    attempt([&] {
      for (const io::GgufValue& element : value.elements()) touched += read_value(element);
    });
    attempt([&] { touched += value.as_array<std::string>().size(); });
    attempt([&] { touched += value.as_array<float>().size(); });
    attempt([&] { touched += value.as_array<std::int32_t>().size(); });
    attempt([&] { touched += value.as_array<std::uint8_t>().size(); });
    attempt([&] { touched += value.as_array<double>().size(); });
    attempt([&] { touched += value.as_array<bool>().size(); });
  }
  (void)value.where();
  return touched;
}

template <int Rank>
float load(const io::GgufFile& file, const io::GgufTensorInfo& info) {
  Shape<Rank> shape{};
  for (int i = 0; i < Rank; ++i)
    shape[static_cast<std::size_t>(Rank - 1 - i)] = info.ne[static_cast<std::size_t>(i)];
  const Tensor<float, Rank> tensor = file.load_f32<Rank>(info.name, shape);
  float sum = 0;
  for (index_t i = 0; i < tensor.size(); ++i) sum += tensor.data()[i];
  return sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& path = fuzz::write_input(data, size);
  try {
    const io::GgufFile file = io::GgufFile::open(path);
    volatile std::size_t sink = 0;
    for (const std::string& key : file.keys()) sink = sink + read_value(file.value(key));
    try {
      const ModelConfig config = io::config_from_gguf(file);
      sink = sink + static_cast<std::size_t>(config.dim);
    } catch (const error&) {
    }
    volatile float sum = 0;
    for (const io::GgufTensorInfo& info : file.tensors()) {
      try {
        switch (info.n_dims) {
          case 1: sum = sum + load<1>(file, info); break;
          case 2: sum = sum + load<2>(file, info); break;
          case 3: sum = sum + load<3>(file, info); break;
          default: sum = sum + load<4>(file, info); break;
        }
      } catch (const error&) {
      }
    }
    (void)sink;
    (void)sum;
  } catch (const error&) {
  }
  return 0;
}
