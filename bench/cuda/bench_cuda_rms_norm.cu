// RMSNorm<cuda, T> bandwidth against the device's own copy bandwidth, measured in the same run
// (BM_CopyDeviceToDevice, registered first). Bytes moved per call: x read once, out written once,
// γ read once: 2 · rows · dim · sizeof(T) + dim · sizeof(T). Issue 4 target: bf16 4096 × 4096 at
// ≥ 80 % of the copy bandwidth ("of_copy"). torch_rms_norm.py times PyTorch the same way.
//
// Each iteration: the L2 flushed, then the kernel between CUDA events (UseManualTime); 5
// repetitions, the median reported. Exit 77 without a CUDA device.
#include "cuda_bench_support.cuh"

namespace lb = llamablocks;
using lb::index_t;

namespace {

template <class T>
void BM_RMSNorm(benchmark::State& state) {
  const index_t rows = state.range(0);
  const index_t dim = state.range(1);
  lb::Tensor<T, 3, lb::cuda> x({1, rows, dim});
  lb::Tensor<T, 3, lb::cuda> out({1, rows, dim});
  lb::bench::fill(x.data(), x.size(), 7, 2.0f);
  lb::RMSNorm<lb::cuda, T> norm(dim, 1e-5);
  const auto& ctx = lb::bench::CudaBench::get().ctx();
  const double seconds =
      lb::bench::time_with_events(state, true, [&] { norm.forward(ctx, x.cview(), out.view()); });
  lb::bench::report_bandwidth(state, static_cast<double>((2 * rows + 1) * dim) * sizeof(T), seconds);
}

}  // namespace

BENCHMARK(lb::bench::BM_CopyDeviceToDevice)->Arg(64)->UseManualTime()->Repetitions(5)
    ->ReportAggregatesOnly(true)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RMSNorm<__nv_bfloat16>)->Args({4096, 4096})->UseManualTime()->Repetitions(5)
    ->ReportAggregatesOnly(true)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RMSNorm<__half>)->Args({4096, 4096})->UseManualTime()->Repetitions(5)
    ->ReportAggregatesOnly(true)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RMSNorm<float>)->Args({4096, 4096})->UseManualTime()->Repetitions(5)
    ->ReportAggregatesOnly(true)->Unit(benchmark::kMicrosecond);
