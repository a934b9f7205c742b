// A decode step allocates nothing: once a LlamaBlock has run one step of each size, its later
// one-token steps (float32 or packed bf16 / Q8_0 projections, one or two threads) make no heap
// allocation. Every global operator new, aligned or not, is counted (support/counting_allocator.hpp);
// the buffers of this test stay under 1 MiB, so none of them comes from allocator<cpu>'s mmap path,
// which the count would not see.
#include "support/counting_allocator.hpp"
#include "support/helpers.hpp"
#include "support/random.hpp"

#include "llamablocks/llamablocks.hpp"

#include <catch2/catch.hpp>


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

      const std::size_t before = test::allocation_count;
      for (index_t position = 6; position < 16; ++position) block.forward(ctx, token.view(), cache, position);
      CHECK(test::allocation_count == before);
      // The counter sees the allocations a step would make: a new block's first step allocates.
      LlamaBlock<cpu> fresh(config);
      test::randomize_block(fresh, 153);
      KVCache<cpu> fresh_cache(config, 1);
      const std::size_t before_fresh = test::allocation_count;
      fresh.forward(ctx, token.view(), fresh_cache, 0);
      CHECK(test::allocation_count > before_fresh);
    }
  }
}
