// Fuzz target: the safetensors reader (io/safetensors.hpp). Any file is refused with a
// llamablocks::error or opened; every tensor of an opened file whose dtype load_f32 converts is
// read (its declared shape, Rank 1 to 3), so ASan checks that what the header promises lies in the
// file.
#include "fuzz_common.hpp"

#include "llamablocks/io/safetensors.hpp"

#include <cstddef>
#include <cstdint>

namespace {

template <int Rank>
float load(const llamablocks::io::SafetensorsFile& file, const llamablocks::io::SafetensorsTensorInfo& info) {
  llamablocks::Shape<Rank> shape{};
  for (int i = 0; i < Rank; ++i) shape[static_cast<std::size_t>(i)] = info.shape[static_cast<std::size_t>(i)];
  const auto tensor = file.load_f32<Rank>(info.name, shape);
  return tensor.size() == 0 ? 0.0f : tensor.cview().data()[tensor.size() - 1];
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace llamablocks;
  const std::string& path = fuzz::write_input(data, size);
  try {
    const auto file = io::SafetensorsFile::open(path);
    volatile float sink = 0;
    for (const auto& info : file.tensors()) {
      // Bounded work per input: tensors over 16 Mi elements are only described, not read.
      if (info.element_count > (std::int64_t{1} << 24)) continue;
      try {
        if (info.shape.size() == 1) sink = sink + load<1>(file, info);
        if (info.shape.size() == 2) sink = sink + load<2>(file, info);
        if (info.shape.size() == 3) sink = sink + load<3>(file, info);
      } catch (const format_error&) {
        // A dtype that load_f32 does not convert.
      }
    }
    (void)sink;
  } catch (const error&) {
    // Refused with a message.
  }
  return 0;
}
