// packed_matmul, y = x · Wᵀ with W kept as stored (f32, f16, bf16, Q8_0), against the float32
// Linear (Eigen) on the same shape: W is a model's FFN up-projection [ffn, dim] (the most common
// large matrix of a layer). Decode (1 token) streams W once, so bytes_per_second there is the
// weight bytes read per second, to compare with the machine's read bandwidth; prefill
// (128 tokens) is arithmetic, reported in flops.
// Names: BM_PackedMatmul<cpu,TYPE,FAMILY>/SHAPE/tokens:N; FAMILY is the kernel family
// (avx512_amx, avx512_bf16, avx512_vnni, avx512, avx2, scalar); families the CPU lacks are not registered.
#include "bench_support.hpp"

#include "llamablocks/backends/cpu/packed_matmul.hpp"

#include <vector>

namespace llamablocks::bench {
namespace {

/// `rows` × `cols` random weights in `type` (Q8_0: random int8 and a scale of about 1/127 per block).
std::vector<std::uint8_t> random_packed(WeightType type, index_t rows, index_t cols, Random& random) {
  std::vector<std::uint8_t> bytes(weight_row_bytes(type, cols) * static_cast<std::size_t>(rows));
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::uint8_t>(random.next());
  const std::size_t row_bytes = weight_row_bytes(type, cols);
  for (index_t r = 0; r < rows; ++r) {
    std::uint8_t* row = bytes.data() + row_bytes * static_cast<std::size_t>(r);
    for (index_t c = 0; c < cols / weight_block_elements(type); ++c) {
      // Finite values of a plausible size: overwrite each element (or block scale) with one.
      const float value = static_cast<float>(random.uniform() * 0.05);
      if (type == WeightType::f32) std::memcpy(row + 4 * c, &value, 4);
      std::uint16_t bits = 0;
      if (type == WeightType::f16) bits = detail::float_to_half_bits(value);
      if (type == WeightType::bf16) bits = detail::float_to_bf16_bits(value);
      if (type == WeightType::q8_0) bits = detail::float_to_half_bits(1.0f / 127.0f);
      if (type != WeightType::f32) {
        std::uint8_t* at = type == WeightType::q8_0 ? row + 34 * c : row + 2 * c;
        at[0] = static_cast<std::uint8_t>(bits & 0xff);
        at[1] = static_cast<std::uint8_t>(bits >> 8);
      }
    }
  }
  return bytes;
}

void BM_PackedMatmul(benchmark::State& state, const ModelShape& shape, WeightType type, CpuIsa isa,
                     index_t tokens, bool bf16_activations) {
  auto ctx = make_context<cpu>();
  ctx.set_bf16_activations(bf16_activations);
  Random random;
  const index_t rows = shape.ffn_hidden_dim, cols = shape.dim;
  const auto packed = random_packed(type, rows, cols, random);
  const PackedMatrixView weight{type, packed.data(), rows, cols, weight_row_bytes(type, cols)};
  const auto x = random_tensor<float, 2, cpu>({tokens, cols}, random);
  Tensor<float, 2> y({tokens, rows});
  Workspace<std::uint8_t, cpu> scratch;
  packed_matmul(ctx, weight, x.cview(), y.view(), scratch, isa);
  for (auto _ : state) {
    packed_matmul(ctx, weight, x.cview(), y.view(), scratch, isa);
    benchmark::ClobberMemory();
  }
  Cost cost;
  cost.flop = 2 * real(tokens) * real(rows) * real(cols);
  cost.weight_bytes = static_cast<double>(packed.size());
  cost.activation_bytes = bytes_of<float>(real(tokens) * real(rows + cols));
  report(state, cost, tokens);
}

void register_benchmarks() {
  for (const ModelShape& shape : model_shapes)
    for (const index_t tokens : {index_t{1}, index_t{128}})
      for (WeightType type : {WeightType::f32, WeightType::bf16, WeightType::f16, WeightType::q8_0})
        for (CpuIsa isa : {CpuIsa::avx512_amx, CpuIsa::avx512_bf16, CpuIsa::avx512_vnni, CpuIsa::avx512,
                           CpuIsa::avx2, CpuIsa::scalar}) {
          if (!cpu_supports(isa)) continue;
          // The scalar family is the portable fallback: shown for decode only. avx512_vnni differs
          // from avx512 only in Q8_0's dot kernels (decode), avx512_bf16 from avx512_vnni only in
          // the bf16 prefill with bf16 activations allowed (vdpbf16ps), avx512_amx from
          // avx512_bf16 in the Q8_0 prefill and that bf16 prefill (on AMX tiles).
          if (isa == CpuIsa::scalar && tokens > 1) continue;
          if (isa == CpuIsa::avx512_vnni && (tokens > 1 || type != WeightType::q8_0)) continue;
          if (isa == CpuIsa::avx512_amx && (tokens == 1 || (type != WeightType::q8_0 && type != WeightType::bf16)))
            continue;
          if (isa == CpuIsa::avx512_bf16 && (tokens == 1 || type != WeightType::bf16)) continue;
          // bf16 products (AMX tiles, vdpbf16ps) run only with the activations rounded to bfloat16
          // (asked for).
          const bool bf16_activations =
              (isa == CpuIsa::avx512_amx || isa == CpuIsa::avx512_bf16) && type == WeightType::bf16;
          register_benchmark(std::string("BM_PackedMatmul<cpu,") + to_string(type) + ',' +
                                 to_string(isa) + (bf16_activations ? ",bf16_activations" : "") + ">/" +
                                 shape.name + arg("tokens", tokens),
                             &BM_PackedMatmul, shape, type, isa, tokens, bf16_activations);
        }
}

const Registration registration(&register_benchmarks);

}  // namespace
}  // namespace llamablocks::bench
