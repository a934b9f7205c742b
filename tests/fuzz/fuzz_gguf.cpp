// Fuzz target: GGUF reader (io/gguf.hpp). Opens the input as a GGUF file, reads every metadata
// value (with its own getter, and once with a wrong one), derives the ModelConfig
// (config_from_gguf) and loads every tensor as float32 with its own shape. Anything refused must
// be refused with a llamablocks::error.
#include "fuzz_common.hpp"

#include "llamablocks/io/gguf.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace {

using namespace llamablocks;

/// Reads `value` with the getter of its type, and an array element by element and whole.
std::size_t read_value(const io::GgufValue& value) {
  switch (value.type()) {
    case io::GgufType::string: return value.as<std::string>().size();
    case io::GgufType::boolean: return value.as<bool>() ? 1 : 0;
    case io::GgufType::float32:
    case io::GgufType::float64: return value.as_real() > 0 ? 1 : 0;
    case io::GgufType::array: {
      std::size_t touched = 0;
      for (const io::GgufValue& element : value.elements()) touched += read_value(element);
      switch (value.element_type()) {
        case io::GgufType::string: return touched + value.as_array<std::string>().size();
        case io::GgufType::float32: return touched + value.as_array<float>().size();
        case io::GgufType::int32: return touched + value.as_array<std::int32_t>().size();
        case io::GgufType::uint8: return touched + value.as_array<std::uint8_t>().size();
        case io::GgufType::float64: return touched + value.as_array<double>().size();
        case io::GgufType::boolean: return touched + value.as_array<bool>().size();
        default: return touched;
      }
    }
    default: return static_cast<std::size_t>(value.as_integer() & 1);
  }
}

/// Every metadata value read its own way, and each key once the wrong way (which must throw a
/// llamablocks::error, not crash): the getters of config_from_gguf meet such values.
std::size_t read_metadata(const io::GgufFile& file) {
  std::size_t touched = 0;
  for (const std::string& key : file.keys()) {
    const io::GgufValue& value = file.value(key);
    try {
      touched += read_value(value);
    } catch (const error&) {
    }
    try {
      touched += value.type() == io::GgufType::string ? static_cast<std::size_t>(value.as_integer())
                                                      : value.as<std::string>().size();
    } catch (const error&) {
    }
  }
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
    volatile std::size_t sink = read_metadata(file);
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
