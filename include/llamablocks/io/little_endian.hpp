// Little-endian decoding shared by the checkpoint readers (GGUF and llama2.c files are
// little-endian whatever the host).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace llamablocks {
namespace detail {

/// The unsigned integer U stored little-endian at `bytes`.
template <class U>
U load_le(const unsigned char* bytes) {
  U value = 0;
  for (std::size_t i = sizeof(U); i-- > 0;) value = static_cast<U>((value << 8) | bytes[i]);
  return value;
}

/// Whether float32 data in a file can be used in place (no byte swapping).
inline bool host_is_little_endian() {
  const std::uint32_t probe = 1;
  unsigned char first;
  std::memcpy(&first, &probe, 1);
  return first == 1;
}

}  // namespace detail
}  // namespace llamablocks
