// Replaces every global operator new and delete, aligned or not, with versions that count the
// allocations, so that a test can prove a hot path allocates nothing:
//   const std::size_t before = test::allocation_count;  run();  CHECK(test::allocation_count == before);
// Each allocation and its release meet in malloc/aligned_alloc and free (AddressSanitizer checks
// that pairing). Replacement functions may be defined once per program: include this header in
// exactly one translation unit of a test executable. Memory that bypasses operator new (the mmap
// path of allocator<cpu> for large buffers) is not seen.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>

namespace llamablocks::test {

/// Calls of any global operator new since the program started.
inline std::size_t allocation_count = 0;

namespace detail {
inline void* counted_malloc(std::size_t size) noexcept {
  ++allocation_count;
  return std::malloc(size == 0 ? 1 : size);
}
inline void* counted_malloc_or_throw(std::size_t size) {
  if (void* memory = counted_malloc(size)) return memory;
  throw std::bad_alloc();
}
inline void* counted_aligned_or_throw(std::size_t size, std::align_val_t alignment) {
  ++allocation_count;
  const auto align = static_cast<std::size_t>(alignment);
  // aligned_alloc wants a size that is a positive multiple of the alignment.
  const std::size_t rounded = size == 0 ? align : (size + align - 1) / align * align;
  if (void* memory = std::aligned_alloc(align, rounded)) return memory;
  throw std::bad_alloc();
}
}  // namespace detail
}  // namespace llamablocks::test

void* operator new(std::size_t size) { return llamablocks::test::detail::counted_malloc_or_throw(size); }
void* operator new[](std::size_t size) { return llamablocks::test::detail::counted_malloc_or_throw(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  return llamablocks::test::detail::counted_malloc(size);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return llamablocks::test::detail::counted_malloc(size);
}
void* operator new(std::size_t size, std::align_val_t alignment) {
  return llamablocks::test::detail::counted_aligned_or_throw(size, alignment);
}
void* operator new[](std::size_t size, std::align_val_t alignment) {
  return llamablocks::test::detail::counted_aligned_or_throw(size, alignment);
}
void* operator new(std::size_t size, std::align_val_t alignment, const std::nothrow_t&) noexcept {
  try {
    return llamablocks::test::detail::counted_aligned_or_throw(size, alignment);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, std::align_val_t alignment, const std::nothrow_t&) noexcept {
  try {
    return llamablocks::test::detail::counted_aligned_or_throw(size, alignment);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void operator delete(void* memory) noexcept { std::free(memory); }
void operator delete[](void* memory) noexcept { std::free(memory); }
void operator delete(void* memory, std::size_t) noexcept { std::free(memory); }
void operator delete[](void* memory, std::size_t) noexcept { std::free(memory); }
void operator delete(void* memory, const std::nothrow_t&) noexcept { std::free(memory); }
void operator delete[](void* memory, const std::nothrow_t&) noexcept { std::free(memory); }
void operator delete(void* memory, std::align_val_t) noexcept { std::free(memory); }
void operator delete[](void* memory, std::align_val_t) noexcept { std::free(memory); }
void operator delete(void* memory, std::size_t, std::align_val_t) noexcept { std::free(memory); }
void operator delete[](void* memory, std::size_t, std::align_val_t) noexcept { std::free(memory); }
void operator delete(void* memory, std::align_val_t, const std::nothrow_t&) noexcept { std::free(memory); }
void operator delete[](void* memory, std::align_val_t, const std::nothrow_t&) noexcept { std::free(memory); }
