// The machine's limits, measured so the module and end-to-end figures can be read as a fraction:
//   BM_ReadBandwidth  bytes_per_second: bytes of a buffer read (and summed) / s, 1 and 2 threads;
//                     the buffer is cache-sized (L2, L3) or DRAM-sized (>= 1 GiB, the stream a
//                     decode step is), see read_sizes(); the DRAM one on 4 KiB and on huge pages.
//                     bytes_per_thread_cpu_second: the same bytes / CPU seconds (load-robust).
//   BM_PeakFMA        flops: FLOP / s of independent fused multiply-add chains on registers (no
//                     memory traffic), a multiply-add counted as 2 FLOP; the compute roof.
//                     flops_per_thread_cpu_second: the same FLOP / CPU seconds (load-robust).
//   BM_EigenGEMM      flops: FLOP / s (2·m·k·n) of Eigen's GEMM (threaded by Eigen), what
//                     detail::linear_kernel ran on a prefill-sized product before gemm.hpp, and
//                     what it runs on a CPU without AVX-512.
//   BM_GEMM           the same product through our gemm_avx512 (gemm.hpp), the weights stored as
//                     f32 or bf16; fraction_of_peak_fma for both.
//   BM_PeakAMXInt8    where the CPU has AMX: ops / s (a multiply-add counted as 2) of four
//                     independent tdpbssd on full tiles (16 × 64 int8 times 64 × 16) in a loop;
//                     the tile unit's roof.
//   BM_GEMMQ8_0AMX    where the CPU has AMX: the same products with Q8_0 weights through
//                     packed_matmul's avx512_amx family (gemm_amx.hpp, the activations quantized
//                     as in a prefill); fraction_of_peak_amx_int8.
//   BM_PeakBF16Dot    where the CPU has AVX512_BF16: FLOP / s of independent vdpbf16ps chains on
//                     registers (32 multiply-adds, 64 FLOP, per instruction); its roof.
//   BM_GEMMBF16Dot    where the CPU has AVX512_BF16: the products with bf16 weights through
//                     packed_matmul's avx512_bf16 family with bf16 activations allowed
//                     (gemm_bf16.hpp, vdpbf16ps); fraction_of_peak_bf16_dot.
//
// The vector kernels are chosen at run time: AVX-512 where the CPU has it, else AVX2 + FMA, else
// plain C++ compiled for the build's baseline; the label of each result names the one used. They
// are compiled with GCC/Clang target attributes, so a portable build (LLAMABLOCKS_NATIVE=OFF)
// still has all three and runs on a CPU without AVX-512. LLAMABLOCKS_BENCH_ISA=avx512|avx2|plain
// forces one (for comparing them, or testing the fallbacks); LLAMABLOCKS_BENCH_READ_BYTES sets the
// DRAM buffer size (default 1 GiB, at least 1 GiB).
#include "bench_support.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#define LLAMABLOCKS_BENCH_X86 1
#include <immintrin.h>
#else
#define LLAMABLOCKS_BENCH_X86 0
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace llamablocks::bench {
namespace {

// --- instruction set selection -------------------------------------------------------------------

enum class Isa { plain, avx2, avx512 };

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    case Isa::plain: break;
  }
  return "plain";
}

bool cpu_has(Isa isa) {
#if LLAMABLOCKS_BENCH_X86 && (defined(__GNUC__) || defined(__clang__))
  switch (isa) {
    case Isa::avx512: return __builtin_cpu_supports("avx512f");
    case Isa::avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::plain: break;
  }
  return true;
#else
  return isa == Isa::plain;
#endif
}

/// The widest kernel the CPU runs, or LLAMABLOCKS_BENCH_ISA's choice (which must be supported).
Isa selected_isa() {
  static const Isa isa = [] {
    const char* text = std::getenv("LLAMABLOCKS_BENCH_ISA");
    if (text != nullptr && *text != '\0') {
      for (const Isa candidate : {Isa::avx512, Isa::avx2, Isa::plain})
        if (std::strcmp(text, isa_name(candidate)) == 0) {
          detail::require<config_error>(cpu_has(candidate), "LLAMABLOCKS_BENCH_ISA=", text,
                                        ": this CPU does not support it");
          return candidate;
        }
      throw config_error(detail::concat("LLAMABLOCKS_BENCH_ISA must be avx512, avx2 or plain, got \"",
                                        text, "\""));
    }
    if (cpu_has(Isa::avx512)) return Isa::avx512;
    if (cpu_has(Isa::avx2)) return Isa::avx2;
    return Isa::plain;
  }();
  return isa;
}

// --- read kernels: sum `count` 4-byte words (count a multiple of 128) -----------------------------
// Eight independent accumulators, so the adds' latency never limits the loads; the sum is returned
// so the reads cannot be optimized away. The vector kernels read the words as floats through the
// intrinsics' may-alias vector types.

#if LLAMABLOCKS_BENCH_X86
// Through memory rather than _mm512_reduce_add_ps, whose GCC 12 expansion trips -Wuninitialized
// on its "undefined" vectors (GCC bug 105593); it runs once per call.
__attribute__((target("avx512f"))) float sum_lanes(__m512 vector) {
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, vector);
  float sum = 0;
  for (const float lane : lanes) sum += lane;
  return sum;
}

__attribute__((target("avx512f"))) float read_avx512(const std::uint32_t* words, std::size_t count) {
  const auto* data = reinterpret_cast<const float*>(words);
  __m512 acc[8];
  for (__m512& a : acc) a = _mm512_setzero_ps();
  for (std::size_t i = 0; i < count; i += 128)
    for (int j = 0; j < 8; ++j)
      acc[j] = _mm512_add_ps(acc[j], _mm512_load_ps(data + i + 16 * static_cast<std::size_t>(j)));
  for (int j = 1; j < 8; ++j) acc[0] = _mm512_add_ps(acc[0], acc[j]);
  return sum_lanes(acc[0]);
}

__attribute__((target("avx2,fma"))) float read_avx2(const std::uint32_t* words, std::size_t count) {
  const auto* data = reinterpret_cast<const float*>(words);
  __m256 acc[8];
  for (__m256& a : acc) a = _mm256_setzero_ps();
  for (std::size_t i = 0; i < count; i += 64)
    for (int j = 0; j < 8; ++j)
      acc[j] = _mm256_add_ps(acc[j], _mm256_load_ps(data + i + 8 * static_cast<std::size_t>(j)));
  for (int j = 1; j < 8; ++j) acc[0] = _mm256_add_ps(acc[0], acc[j]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc[0]);
  float sum = 0;
  for (const float lane : lanes) sum += lane;
  return sum;
}
#endif

/// Integer adds are associative, so the compiler vectorizes this loop for the baseline ISA.
float read_plain(const std::uint32_t* words, std::size_t count) {
  std::uint32_t acc[16] = {};
  for (std::size_t i = 0; i < count; i += 16)
    for (std::size_t j = 0; j < 16; ++j) acc[j] += words[i + j];
  std::uint32_t sum = 0;
  for (const std::uint32_t a : acc) sum += a;
  return static_cast<float>(sum);
}

float read_block(Isa isa, const std::uint32_t* words, std::size_t count) {
#if LLAMABLOCKS_BENCH_X86
  if (isa == Isa::avx512) return read_avx512(words, count);
  if (isa == Isa::avx2) return read_avx2(words, count);
#endif
  (void)isa;
  return read_plain(words, count);
}

// --- FMA kernels: `iterations` rounds of acc = acc·a + b over independent chains -----------------
// Twelve chains: two FMA ports × four cycles of latency need eight in flight, a few more hide the
// loop overhead. a < 1 and b small keep every value finite and normal. Returns the FLOP done.

constexpr int fma_chains = 12;

#if LLAMABLOCKS_BENCH_X86
__attribute__((target("avx512f"))) float fma_avx512(long long iterations, float a, float b) {
  const __m512 va = _mm512_set1_ps(a);
  const __m512 vb = _mm512_set1_ps(b);
  __m512 acc[fma_chains];
  for (int j = 0; j < fma_chains; ++j) acc[j] = _mm512_set1_ps(static_cast<float>(j));
  for (long long i = 0; i < iterations; ++i)
    for (__m512& x : acc) x = _mm512_fmadd_ps(x, va, vb);
  for (int j = 1; j < fma_chains; ++j) acc[0] = _mm512_add_ps(acc[0], acc[j]);
  return sum_lanes(acc[0]);
}

__attribute__((target("avx2,fma"))) float fma_avx2(long long iterations, float a, float b) {
  const __m256 va = _mm256_set1_ps(a);
  const __m256 vb = _mm256_set1_ps(b);
  __m256 acc[fma_chains];
  for (int j = 0; j < fma_chains; ++j) acc[j] = _mm256_set1_ps(static_cast<float>(j));
  for (long long i = 0; i < iterations; ++i)
    for (__m256& x : acc) x = _mm256_fmadd_ps(x, va, vb);
  for (int j = 1; j < fma_chains; ++j) acc[0] = _mm256_add_ps(acc[0], acc[j]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc[0]);
  float sum = 0;
  for (const float lane : lanes) sum += lane;
  return sum;
}
#endif

/// 4 lanes per chain: the baseline's vector width (SSE2); the compiler may or may not fuse.
constexpr int plain_lanes = 4;

float fma_plain(long long iterations, float a, float b) {
  float acc[fma_chains][plain_lanes];
  for (int j = 0; j < fma_chains; ++j)
    for (float& x : acc[j]) x = static_cast<float>(j);
  for (long long i = 0; i < iterations; ++i)
    for (auto& chain : acc)
      for (float& x : chain) x = x * a + b;
  float sum = 0;
  for (const auto& chain : acc)
    for (const float x : chain) sum += x;
  return sum;
}

/// Floats one FMA instruction of `isa` works on.
int fma_lanes(Isa isa) {
  switch (isa) {
    case Isa::avx512: return 16;
    case Isa::avx2: return 8;
    case Isa::plain: break;
  }
  return plain_lanes;
}

float fma_run(Isa isa, long long iterations, float a, float b) {
#if LLAMABLOCKS_BENCH_X86
  if (isa == Isa::avx512) return fma_avx512(iterations, a, b);
  if (isa == Isa::avx2) return fma_avx2(iterations, a, b);
#endif
  (void)isa;
  return fma_plain(iterations, a, b);
}

// --- benchmarks ----------------------------------------------------------------------------------

/// Runs body(thread) on `threads` OpenMP threads (on the caller without OpenMP).
template <class Body>
void on_threads(int threads, Body&& body) {
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
  body(omp_get_thread_num());
#else
  for (int thread = 0; thread < threads; ++thread) body(thread);
#endif
}

constexpr std::size_t gib = std::size_t{1} << 30;

/// LLAMABLOCKS_BENCH_READ_BYTES, rounded down to whole 4 KiB pages; 1 GiB if unset.
std::size_t dram_read_bytes() {
  const char* text = std::getenv("LLAMABLOCKS_BENCH_READ_BYTES");
  if (text == nullptr || *text == '\0') return gib;
  char* end = nullptr;
  const unsigned long long value = std::strtoull(text, &end, 10);
  detail::require<config_error>(*end == '\0' && value >= gib && value <= (std::size_t{1} << 40),
                                "LLAMABLOCKS_BENCH_READ_BYTES must be a byte count in [2^30, 2^40], "
                                "got \"", text, "\"");
  return static_cast<std::size_t>(value) / 4096 * 4096;
}

/// Buffer sizes read: one that stays in a core's L2 (1 MiB per core on the VM this was written on),
/// one in the shared L3 (36 MiB there), and the DRAM one.
std::array<std::size_t, 3> read_sizes() {
  return {std::size_t{512} << 10, std::size_t{16} << 20, dram_read_bytes()};
}

/// CPU seconds used by the whole process so far (every thread).
double process_cpu_seconds() {
  return static_cast<double>(std::clock()) / CLOCKS_PER_SEC;
}

/// Bytes of anonymous memory the kernel backs with huge pages in this process (Linux), else 0.
double anon_huge_page_bytes() {
  std::ifstream in("/proc/self/smaps_rollup");
  std::string key;
  double kib = 0;
  while (in >> key) {
    if (key == "AnonHugePages:") {
      in >> kib;
      return kib * 1024;
    }
    in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return 0;
}

struct FreeDeleter {
  void operator()(std::uint32_t* data) const { std::free(data); }
};

constexpr std::size_t huge_page = std::size_t{2} << 20;

/// Each thread sums its contiguous share of the buffer once per iteration. With huge_pages the
/// buffer is 2 MiB aligned and madvise(MADV_HUGEPAGE)d (Linux; transparent huge pages in "madvise"
/// mode give none otherwise): 4 KiB pages cost TLB misses, and the hardware prefetchers stop at
/// each 4 KiB boundary, which can hold one core's stream well below the DRAM's bandwidth.
void BM_ReadBandwidth(benchmark::State& state, std::size_t bytes, int threads, bool huge_pages) {
  const Isa isa = selected_isa();
  // Shares of whole 512-byte blocks (the AVX-512 kernel's step).
  const std::size_t blocks = bytes / 512;
  const std::size_t alignment = huge_pages ? huge_page : 64;
  const std::size_t allocated = (blocks * 512 + alignment - 1) / alignment * alignment;
  const std::unique_ptr<std::uint32_t, FreeDeleter> buffer(
      static_cast<std::uint32_t*>(std::aligned_alloc(alignment, allocated)));
  detail::require<config_error>(buffer != nullptr, "BM_ReadBandwidth: cannot allocate ", bytes,
                                " bytes");
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  // Advice only: where the kernel has no huge pages to give, the run measures 4 KiB pages.
  if (huge_pages) madvise(buffer.get(), allocated, MADV_HUGEPAGE);
#endif
  // Each thread first touches the pages it will read, as a NUMA-aware program would.
  const auto share = [&](int thread, std::size_t& first, std::size_t& size) {
    const std::size_t begin = blocks * static_cast<std::size_t>(thread) / static_cast<std::size_t>(threads);
    const std::size_t end = blocks * static_cast<std::size_t>(thread + 1) / static_cast<std::size_t>(threads);
    first = begin * 128;
    size = (end - begin) * 128;
  };
  on_threads(threads, [&](int thread) {
    std::size_t first = 0, size = 0;
    share(thread, first, size);
    // 0x3f800000 is 1.0f, so the vector kernels' sums stay finite.
    for (std::size_t i = 0; i < size; ++i) buffer.get()[first + i] = 0x3f800000u;
  });

  // Whether the advice was followed: the part of the buffer on huge pages.
  const double huge_fraction = std::min(1.0, anon_huge_page_bytes() / static_cast<double>(allocated));

  const double cpu_start = process_cpu_seconds();
  for (auto _ : state) {
    float total = 0;
    on_threads(threads, [&](int thread) {
      std::size_t first = 0, size = 0;
      share(thread, first, size);
      const float sum = read_block(isa, buffer.get() + first, size);
#ifdef _OPENMP
#pragma omp atomic
#endif
      total += sum;
    });
    benchmark::DoNotOptimize(total);
  }
  const double bytes_read = static_cast<double>(blocks * 512) * static_cast<double>(state.iterations());
  const double cpu_seconds = process_cpu_seconds() - cpu_start;
  state.SetLabel(isa_name(isa));
  state.counters["bytes_per_second"] =
      benchmark::Counter(bytes_read, benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
  // Bytes per CPU second of the process (its threads' CPU times summed): the rate of one thread
  // while it runs. On a shared machine, where threads are descheduled part of the wall time, this
  // is the steadier estimate of the unloaded per-core rate (biased low where OpenMP threads spin
  // at the barrier waiting for a descheduled one).
  if (cpu_seconds > 0)
    state.counters["bytes_per_thread_cpu_second"] = benchmark::Counter(
        bytes_read / cpu_seconds, benchmark::Counter::kDefaults, benchmark::Counter::kIs1000);
  if (huge_pages) state.counters["huge_page_fraction"] = huge_fraction;
}

/// Peak FMA FLOP/s by thread count, once BM_PeakFMA has run in this process (0 before):
/// the GEMM reports its rate as a fraction of it.
std::map<int, double> measured_peak_flops;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// Runs `run` (one thread's independent chains, `work` FLOP or ops; it returns a value to keep)
/// on `threads` threads under the benchmark loop. Reports `counter` per second and per CPU second
/// (one core's peak while it runs, see bytes_per_thread_cpu_second), and records the rate in
/// `peaks` for the GEMMs' fractions.
template <class Run>
void run_peak(benchmark::State& state, int threads, double work, std::map<int, double>& peaks,
              const std::string& counter, Run&& run) {
  const auto start = std::chrono::steady_clock::now();
  const double cpu_start = process_cpu_seconds();
  for (auto _ : state) {
    float total = 0;
    on_threads(threads, [&](int) {
      const float sum = run();
#ifdef _OPENMP
#pragma omp atomic
#endif
      total += sum;
    });
    benchmark::DoNotOptimize(total);
  }
  const double done = work * static_cast<double>(threads) * static_cast<double>(state.iterations());
  state.counters[counter] = benchmark::Counter(done, benchmark::Counter::kIsRate);
  if (state.iterations() > 0) peaks[threads] = done / seconds_since(start);
  const double cpu_seconds = process_cpu_seconds() - cpu_start;
  if (cpu_seconds > 0) state.counters[counter + "_per_thread_cpu_second"] = done / cpu_seconds;
}

void BM_PeakFMA(benchmark::State& state, int threads) {
  const Isa isa = selected_isa();
  // Enough rounds per call (about 10 ms) that starting the threads is negligible.
  constexpr long long iterations = 2'000'000;
  // Read through a volatile so the compiler cannot see the constants and fold the chains.
  volatile float factor = 0.999f;
  volatile float offset = 1e-3f;
  const float a = factor;
  const float b = offset;
  const double flop = 2.0 * fma_chains * fma_lanes(isa) * static_cast<double>(iterations);
  run_peak(state, threads, flop, measured_peak_flops, "flops", [&] { return fma_run(isa, iterations, a, b); });
  state.SetLabel(isa_name(isa));
}

/// Peak vdpbf16ps FLOP/s by thread count, once BM_PeakBF16Dot has run in this process (0 before).
std::map<int, double> measured_peak_bf16_dot_flops;

#if LLAMABLOCKS_X86_KERNELS
/// `iterations` rounds of acc += a · b (bf16 pairs) over fma_chains independent vdpbf16ps chains.
/// a · b is small (0.999 · 0.001 per product), so every sum stays finite and normal.
LLAMABLOCKS_TARGET_AVX512_BF16 float bf16_dot_run(long long iterations, float a, float b) {
  const auto va = (__m512bh)_mm512_set1_epi32(static_cast<int>(detail::float_to_bf16_bits(a)) * 0x10001);
  const auto vb = (__m512bh)_mm512_set1_epi32(static_cast<int>(detail::float_to_bf16_bits(b)) * 0x10001);
  __m512 acc[fma_chains];
  for (int j = 0; j < fma_chains; ++j) acc[j] = _mm512_set1_ps(static_cast<float>(j));
  for (long long i = 0; i < iterations; ++i)
    for (__m512& x : acc) x = _mm512_dpbf16_ps(x, va, vb);
  for (int j = 1; j < fma_chains; ++j) acc[0] = _mm512_add_ps(acc[0], acc[j]);
  return sum_lanes(acc[0]);
}
#endif

void BM_PeakBF16Dot(benchmark::State& state, int threads) {
#if LLAMABLOCKS_X86_KERNELS
  constexpr long long iterations = 2'000'000;
  volatile float factor = 0.999f;  // read through volatiles, as BM_PeakFMA's
  volatile float offset = 1e-3f;
  const float a = factor;
  const float b = offset;
  // One vdpbf16ps on zmm: 16 lanes × 2 products, a multiply-add counted as 2 FLOP.
  const double flop = 64.0 * fma_chains * static_cast<double>(iterations);
  run_peak(state, threads, flop, measured_peak_bf16_dot_flops, "flops",
           [&] { return bf16_dot_run(iterations, a, b); });
#else
  state.SkipWithError("not an x86 build");
  (void)threads;
#endif
}

/// Peak AMX-INT8 ops/s by thread count, once BM_PeakAMXInt8 has run in this process (0 before).
std::map<int, double> measured_peak_amx_ops;

#if LLAMABLOCKS_X86_KERNELS
/// `iterations` rounds of four independent tdpbssd on full tiles, on the calling thread.
void amx_int8_run(long long iterations) {
  detail::amx_configure_full_tiles();
  alignas(64) static const std::int8_t operand[16 * 64] = {};
  detail::amx_tile_load<4, sizeof operand>(operand, 64);
  detail::amx_tile_load<5, sizeof operand>(operand, 64);
  detail::amx_tile_load<6, sizeof operand>(operand, 64);
  detail::amx_tile_load<7, sizeof operand>(operand, 64);
  detail::amx_tile_zero<0>();
  detail::amx_tile_zero<1>();
  detail::amx_tile_zero<2>();
  detail::amx_tile_zero<3>();
  for (long long i = 0; i < iterations; ++i) {
    detail::amx_dot_s8s8<0, 4, 6>();
    detail::amx_dot_s8s8<1, 4, 7>();
    detail::amx_dot_s8s8<2, 5, 6>();
    detail::amx_dot_s8s8<3, 5, 7>();
  }
  detail::amx_release();
}
#endif

void BM_PeakAMXInt8(benchmark::State& state, int threads) {
#if LLAMABLOCKS_X86_KERNELS
  constexpr long long iterations = 200'000;
  // One tdpbssd on full tiles: 16 × 16 sums of 64 products; four per iteration.
  const double ops = 2.0 * 16 * 16 * 64 * 4 * static_cast<double>(iterations);
  run_peak(state, threads, ops, measured_peak_amx_ops, "ops", [&] {
    amx_int8_run(iterations);
    return 0.0f;
  });
#else
  state.SkipWithError("not an x86 build");
  (void)threads;
#endif
}

/// FLOP/s counters of a GEMM benchmark of `cost`: flops, per thread CPU second, and the fraction
/// of the peak in `peaks` measured for the same thread count earlier in this process, as
/// `fraction_name` (the FMA peak unless given another).
void gemm_counters(benchmark::State& state, const Cost& cost, int threads,
                   std::chrono::steady_clock::time_point start, double cpu_start,
                   const std::map<int, double>& peaks = measured_peak_flops,
                   const char* fraction_name = "fraction_of_peak_fma") {
  state.counters["flops"] = benchmark::Counter(cost.flop * static_cast<double>(state.iterations()),
                                               benchmark::Counter::kIsRate);
  // Measured FLOP/s over the FMA peak of the same thread count (run earlier in this process).
  const double cpu_seconds = process_cpu_seconds() - cpu_start;
  if (cpu_seconds > 0)
    state.counters["flops_per_thread_cpu_second"] =
        cost.flop * static_cast<double>(state.iterations()) / cpu_seconds;
  const auto peak_found = peaks.find(threads);
  const double peak = peak_found == peaks.end() ? 0 : peak_found->second;
  if (peak > 0 && state.iterations() > 0)
    state.counters[fraction_name] =
        cost.flop * static_cast<double>(state.iterations()) / seconds_since(start) / peak;
}

/// Runs `product` once untimed (workspaces grow, pages fault in), then under the benchmark loop,
/// and sets gemm_counters for x: [m, k] times Wᵀ, W: [n, k].
template <class Product>
void run_gemm(benchmark::State& state, Product&& product, index_t m, index_t k, index_t n,
              int threads, const std::map<int, double>& peaks = measured_peak_flops,
              const char* fraction_name = "fraction_of_peak_fma") {
  product();
  const auto start = std::chrono::steady_clock::now();
  const double cpu_start = process_cpu_seconds();
  for (auto _ : state) {
    product();
    benchmark::ClobberMemory();
  }
  gemm_counters(state, linear_cost<float>(k, n, m), threads, start, cpu_start, peaks, fraction_name);
}

/// x: [m, k] times Wᵀ, W: [n, k] -> [m, n] through Eigen's GEMM, as a prefill of m tokens through a
/// projection of k inputs and n outputs does.
void BM_EigenGEMM(benchmark::State& state, index_t m, index_t k, index_t n, int threads) {
  const Context<cpu> ctx(threads);
  Random random;
  const auto x = random_tensor<float, 2, cpu>({m, k}, random);
  const auto weight = random_tensor<float, 2, cpu>({n, k}, random);
  Tensor<float, 2> out({m, n});  // [m, n]
  const auto product = [&] {
    detail::as_matrix(out.view()).noalias() =
        detail::as_matrix(x.cview()) * detail::as_matrix(weight.cview()).transpose();
  };
  run_gemm(state, product, m, k, n, threads);
  state.SetLabel(Eigen::SimdInstructionSetsInUse());
}

/// The same product through detail::gemm_avx512, W stored as `type` (f32: what linear_kernel
/// runs; bf16: what packed_matmul runs for bf16 weights, widening as it packs).
void BM_GEMM(benchmark::State& state, index_t m, index_t k, index_t n, int threads, WeightType type) {
  if (!cpu_supports(CpuIsa::avx512)) {
    state.SkipWithError("this CPU lacks AVX-512");
    return;
  }
  const Context<cpu> ctx(threads);
  Random random;
  const auto x = random_tensor<float, 2, cpu>({m, k}, random);
  const auto weight = random_tensor<float, 2, cpu>({n, k}, random);
  const PackedMatrix packed = pack_matrix(weight.cview(), type);
  Tensor<float, 2> out({m, n});  // [m, n]
  Workspace<std::uint8_t, cpu> scratch;
  const auto product = [&] {
    detail::gemm_avx512(ctx, x.cview().data(), k, m, packed.view, out.view().data(), n, false, scratch);
  };
  run_gemm(state, product, m, k, n, threads);
  state.SetLabel(std::string("avx512 mr ") + std::to_string(detail::gemm_mr) + " nr " +
                 std::to_string(detail::gemm_nr) + " kc " + std::to_string(detail::gemm_kc));
}

/// The same product with W stored as `type` through packed_matmul's family `isa`, reported as a
/// fraction of `peaks` (the roof of the unit that family multiplies on).
void run_packed_gemm(benchmark::State& state, index_t m, index_t k, index_t n, int threads, WeightType type,
                     CpuIsa isa, bool bf16_activations, const std::map<int, double>& peaks,
                     const char* fraction_name) {
  Context<cpu> ctx(threads);
  ctx.set_bf16_activations(bf16_activations);
  Random random;
  const auto x = random_tensor<float, 2, cpu>({m, k}, random);
  const auto weight = random_tensor<float, 2, cpu>({n, k}, random);
  const PackedMatrix packed = pack_matrix(weight.cview(), type);
  Tensor<float, 2> out({m, n});  // [m, n]
  Workspace<std::uint8_t, cpu> scratch;
  const auto product = [&] { packed_matmul(ctx, packed.view, x.cview(), out.view(), scratch, isa); };
  run_gemm(state, product, m, k, n, threads, peaks, fraction_name);
  state.SetLabel(to_string(isa));
}

/// Q8_0 weights through packed_matmul's avx512_amx family (the activations quantized, then
/// gemm_q8_0_amx).
void BM_GEMMQ8_0AMX(benchmark::State& state, index_t m, index_t k, index_t n, int threads) {
  run_packed_gemm(state, m, k, n, threads, WeightType::q8_0, CpuIsa::avx512_amx, false,
                  measured_peak_amx_ops, "fraction_of_peak_amx_int8");
}

/// bf16 weights through packed_matmul's avx512_bf16 family, bf16 activations allowed (x rounded to
/// bfloat16, then gemm_bf16_avx512's vdpbf16ps).
void BM_GEMMBF16Dot(benchmark::State& state, index_t m, index_t k, index_t n, int threads) {
  run_packed_gemm(state, m, k, n, threads, WeightType::bf16, CpuIsa::avx512_bf16, true,
                  measured_peak_bf16_dot_flops, "fraction_of_peak_bf16_dot");
}

/// Thread counts measured: one, and two or LLAMABLOCKS_THREADS (default: every hardware thread)
/// if that is more.
std::array<int, 2> thread_counts() { return {1, std::max(2, cpu_threads())}; }

void register_benchmarks() {
  for (const std::size_t bytes : read_sizes())
    for (const bool huge_pages : {false, true}) {
      // Huge pages matter for the stream from DRAM only.
      if (huge_pages && bytes < dram_read_bytes()) continue;
      for (const int threads : thread_counts())
        register_benchmark(std::string("BM_ReadBandwidth<") + isa_name(selected_isa()) + '>' +
                               arg("bytes", static_cast<index_t>(bytes)) +
                               arg("huge_pages", huge_pages) + arg("threads", threads),
                           &BM_ReadBandwidth, bytes, threads, huge_pages);
    }
  for (const int threads : thread_counts())
    register_benchmark(std::string("BM_PeakFMA<") + isa_name(selected_isa()) + '>' +
                           arg("threads", threads),
                       &BM_PeakFMA, threads);
  const bool bf16_dot = cpu_supports(CpuIsa::avx512_bf16);
  if (bf16_dot)
    for (const int threads : thread_counts())
      register_benchmark(std::string("BM_PeakBF16Dot") + arg("threads", threads), &BM_PeakBF16Dot,
                         threads);
  const bool amx = cpu_supports(CpuIsa::avx512_amx);
  if (amx)
    for (const int threads : thread_counts())
      register_benchmark(std::string("BM_PeakAMXInt8") + arg("threads", threads), &BM_PeakAMXInt8,
                         threads);
  // TinyLlama's projections from dim 2048 to the FFN (5632) and to dim (2048: wq, wo), at prefill
  // lengths 128 and 512: Eigen's GEMM and ours, one after the other at each shape.
  const ModelShape& tinyllama = model_shapes[1];
  for (const index_t n : {tinyllama.ffn_hidden_dim, tinyllama.dim})
    for (const index_t tokens : prefill_token_counts)
      for (const int threads : thread_counts()) {
        const std::string shape = tinyllama.name + arg("m", tokens) + arg("k", tinyllama.dim) +
                                  arg("n", n) + arg("threads", threads);
        register_benchmark("BM_EigenGEMM<cpu,float>/" + shape, &BM_EigenGEMM, tokens,
                           tinyllama.dim, n, threads);
        for (const WeightType type : {WeightType::f32, WeightType::bf16})
          register_benchmark(std::string("BM_GEMM<cpu,") + to_string(type) + ">/" + shape, &BM_GEMM,
                             tokens, tinyllama.dim, n, threads, type);
        if (bf16_dot)
          register_benchmark("BM_GEMMBF16Dot/" + shape, &BM_GEMMBF16Dot, tokens, tinyllama.dim, n,
                             threads);
        if (amx)
          register_benchmark("BM_GEMMQ8_0AMX/" + shape, &BM_GEMMQ8_0AMX, tokens, tinyllama.dim, n,
                             threads);
      }
}

const Registration registration(&register_benchmarks);

}  // namespace
}  // namespace llamablocks::bench
