// A decode step allocates nothing: once a LlamaBlock has run one step of each size, its later
// one-token steps (float32 or packed bf16 / Q8_0 projections, one or two threads) make no heap
// allocation. Every global operator new, aligned or not, is counted here; the buffers of this
// test stay under 1 MiB, so none of them comes from allocator<cpu>'s mmap path, which the count
// would not see.
#include "support/helpers.hpp"
#include "support/random.hpp"

#include "llamablocks/llamablocks.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <new>

namespace {
std::size_t allocation_count = 0;

void* counted_malloc(std::size_t size) noexcept {
  ++allocation_count;
  return std::malloc(size == 0 ? 1 : size);
}
void* counted_malloc_or_throw(std::size_t size) {
  if (void* memory = counted_malloc(size)) return memory;
  throw std::bad_alloc();
}
void* counted_aligned_or_throw(std::size_t size, std::align_val_t alignment) {
  ++allocation_count;
  const auto align = static_cast<std::size_t>(alignment);
  // aligned_alloc wants a size that is a multiple of the alignment.
  if (void* memory = std::aligned_alloc(align, (size + align - 1) / align * align + (size == 0 ? align : 0)))
    return memory;
  throw std::bad_alloc();
}
}  // namespace

// Each allocation and its release meet in malloc/aligned_alloc and free (AddressSanitizer checks
// that pairing).
void* operator new(std::size_t size) { return counted_malloc_or_throw(size); }
void* operator new[](std::size_t size) { return counted_malloc_or_throw(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept { return counted_malloc(size); }
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept { return counted_malloc(size); }
void* operator new(std::size_t size, std::align_val_t alignment) {
  return counted_aligned_or_throw(size, alignment);
}
void* operator new[](std::size_t size, std::align_val_t alignment) {
  return counted_aligned_or_throw(size, alignment);
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

using namespace llamablocks;

namespace {

/// Replaces every projection of `block` by its rows packed in `type`.
void pack_block(LlamaBlock<cpu>& block, WeightType type, std::vector<PackedMatrix>& keep) {
  for (Parameter<float, 2, cpu>* weight :
       {&block.attention().wq(), &block.attention().wk(), &block.attention().wv(),
        &block.attention().wo(), &block.feed_forward().w1(), &block.feed_forward().w2(),
        &block.feed_forward().w3()}) {
    keep.push_back(pack_matrix(weight->view(), type));
    weight->assign_packed(keep.back().view, keep.back().owner);
  }
}

}  // namespace

TEST_CASE("A LlamaBlock decode step allocates nothing once its workspaces have grown",
          "[llama_block][allocation]") {
  const index_t dim = 64;
  const ModelConfig config = test::make_config(dim, 4, 2, 16, 96, 32);
  for (WeightType type : {WeightType::f32, WeightType::bf16, WeightType::q8_0}) {
    for (int threads : {1, 2}) {
      INFO(to_string(type) << " weights, " << threads << " thread(s)");
      Context<cpu> ctx(threads);
      LlamaBlock<cpu> block(config);
      test::randomize_block(block, 150);
      std::vector<PackedMatrix> packed;
      if (type != WeightType::f32) pack_block(block, type, packed);
      KVCache<cpu> cache(config, 1);
      auto prompt = test::random_tensor<float, 3>({1, 5, dim}, 151);
      auto token = test::random_tensor<float, 3>({1, 1, dim}, 152);
      block.forward(ctx, prompt.view(), cache, 0);
      block.forward(ctx, token.view(), cache, 5);  // the first step of this size grows the workspaces

      const std::size_t before = allocation_count;
      for (index_t position = 6; position < 16; ++position) block.forward(ctx, token.view(), cache, position);
      CHECK(allocation_count == before);
      // The counter sees the allocations a step would make: a new block's first step allocates.
      LlamaBlock<cpu> fresh(config);
      test::randomize_block(fresh, 153);
      KVCache<cpu> fresh_cache(config, 1);
      const std::size_t before_fresh = allocation_count;
      fresh.forward(ctx, token.view(), fresh_cache, 0);
      CHECK(allocation_count > before_fresh);
    }
  }
}
