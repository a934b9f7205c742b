// What every benchmark file shares: the backend context, random weights and inputs, benchmark
// names and registration, and the rate counters.
//
// A benchmark is a function template on <Backend, T>. Its setup (module construction, random
// weights, one warm-up call that grows the module's workspaces) is not timed; the timed loop holds
// the forward call only. Times and rates are wall-clock (UseRealTime): the work runs on a pool of
// threads. The CPU column is the whole process's CPU time (MeasureProcessCPUTime), so that
// CPU / real time shows how many threads were actually busy.
#pragma once

#include "bench_cost.hpp"
#include "bench_shapes.hpp"

#include "llamablocks/llamablocks.hpp"

#include <benchmark/benchmark.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace llamablocks::bench {

// --- context -------------------------------------------------------------------------------------

/// Threads of Context<cpu>: LLAMABLOCKS_THREADS if set (a positive integer), else every hardware
/// thread OpenMP reports. Throws config_error for any other value.
inline int cpu_threads() {
  static const int threads = [] {
    const char* text = std::getenv("LLAMABLOCKS_THREADS");
    if (text == nullptr || *text == '\0') return Context<cpu>::default_num_threads();
    char* end = nullptr;
    errno = 0;
    const long value = std::strtol(text, &end, 10);
    detail::require<config_error>(errno == 0 && *end == '\0' && value >= 1 && value <= 4096,
                                  "LLAMABLOCKS_THREADS must be a thread count in [1, 4096], got \"",
                                  text, "\"");
    return static_cast<int>(value);
  }();
  return threads;
}

/// The context a benchmark runs in; specialized per backend.
template <class Backend>
Context<Backend> make_context();

template <>
inline Context<cpu> make_context<cpu>() {
  return Context<cpu>(cpu_threads());
}

// --- random data ---------------------------------------------------------------------------------

/// SplitMix64: a few instructions per value (a 7B layer has 200M weights to fill), and seeded, so
/// every run sees the same values.
class Random {
 public:
  explicit Random(std::uint64_t seed = 0x11a3ab10c5ULL) : state_(seed) {}

  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  /// Uniform in [-1, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-52 - 1.0; }

  /// Uniform in [0, count).
  index_t below(index_t count) {
    return static_cast<index_t>(next() % static_cast<std::uint64_t>(count));
  }

 private:
  std::uint64_t state_;
};

/// Sets the `count` elements of Backend memory at `data` to generate(); memory the host cannot
/// address is filled through a host copy.
template <class Backend, class T, class Generator>
void fill(T* data, index_t count, Generator&& generate) {
  if constexpr (backend_traits<Backend>::host_accessible) {
    for (index_t i = 0; i < count; ++i) data[i] = generate();
  } else {
    std::vector<T> host(static_cast<std::size_t>(count));
    for (T& value : host) value = generate();
    detail::allocator<Backend>::copy_from_host(data, host.data(), host.size() * sizeof(T));
  }
}

/// Small uniform values, ±1/sqrt(fan-in) (the last extent), so activations stay O(1).
template <class T, int Rank, class Backend>
void randomize(Parameter<T, Rank, Backend>& parameter, Random& random) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(parameter.shape()[Rank - 1]));
  fill<Backend>(parameter.view().data(), parameter.size(),
                [&] { return static_cast<T>(scale * random.uniform()); });
}

template <class Backend, class T>
void randomize(RMSNorm<Backend, T>& norm, Random& random) {
  randomize(norm.weight(), random);
}

template <class Backend, class T>
void randomize(GroupedQueryAttention<Backend, T>& attention, Random& random) {
  randomize(attention.wq(), random);
  randomize(attention.wk(), random);
  randomize(attention.wv(), random);
  randomize(attention.wo(), random);
}

template <class Backend, class T>
void randomize(SwiGLUFeedForward<Backend, T>& feed_forward, Random& random) {
  randomize(feed_forward.w1(), random);
  randomize(feed_forward.w2(), random);
  randomize(feed_forward.w3(), random);
}

template <class Backend, class T>
void randomize(LlamaBlock<Backend, T>& block, Random& random) {
  randomize(block.attention_norm(), random);
  randomize(block.attention(), random);
  randomize(block.ffn_norm(), random);
  randomize(block.feed_forward(), random);
}

/// A tensor of `shape` in Backend memory, uniform in [-1, 1).
template <class T, int Rank, class Backend>
Tensor<T, Rank, Backend> random_tensor(const Shape<Rank>& shape, Random& random) {
  Tensor<T, Rank, Backend> tensor(shape);
  fill<Backend>(tensor.data(), tensor.size(), [&] { return static_cast<T>(random.uniform()); });
  return tensor;
}

/// Fills positions 0 .. length-1 of every sequence of `cache` with random keys and values, as if
/// a prompt of that length had been processed (without paying for its prefill).
template <class Backend, class T>
void fill_cache(KVCache<Backend, T>& cache, index_t length, Random& random) {
  if (length == 0) return;
  const Shape<4> shape{cache.batch(), length, cache.n_kv_heads(), cache.head_dim()};
  const auto keys = random_tensor<T, 4, Backend>(shape, random);
  const auto values = random_tensor<T, 4, Backend>(shape, random);
  cache.write(0, keys.cview(), values.cview());
}

// --- names and registration ----------------------------------------------------------------------

template <class T>
struct dtype_name;
template <>
struct dtype_name<float> {
  static constexpr const char* value = "float";
};
template <>
struct dtype_name<double> {
  static constexpr const char* value = "double";
};

/// "BM_SwiGLU<cpu,float>/tinyllama": the operation, backend, dtype and model shape; arguments
/// follow as "/key:value" (see arg()).
template <class Backend, class T>
std::string benchmark_name(const char* operation, const ModelShape& shape) {
  return std::string(operation) + '<' + backend_traits<Backend>::name + ',' + dtype_name<T>::value +
         ">/" + shape.name;
}

inline std::string arg(const char* key, index_t value) {
  return std::string("/") + key + ':' + std::to_string(value);
}

/// Registers `function(state, arguments...)` under `name`, timed by the wall clock; the library
/// appends "/process_time/real_time" to the name.
template <class Function, class... Arguments>
void register_benchmark(const std::string& name, Function function, const Arguments&... arguments) {
  benchmark::RegisterBenchmark(name.c_str(), function, arguments...)
      ->MeasureProcessCPUTime()
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
}

/// Runs a file's registration function during static initialization, before main() runs the
/// benchmarks: `const Registration registration(&register_benchmarks<cpu, float>);`
struct Registration {
  explicit Registration(void (*register_all)()) { register_all(); }
};

// --- counters ------------------------------------------------------------------------------------

/// Sets items_per_second (tokens), bytes_per_second and flops (FLOP/s) from the work of one
/// iteration; operations without arithmetic report no flops. bytes_per_second is the counter
/// SetBytesProcessed would set, but printed with decimal prefixes (G = 10⁹, like flops and like
/// the memory bandwidth a vendor quotes) rather than binary ones.
inline void report(benchmark::State& state, const Cost& cost, index_t tokens) {
  using benchmark::Counter;
  const double iterations = static_cast<double>(state.iterations());
  state.SetItemsProcessed(state.iterations() * tokens);
  state.counters["bytes_per_second"] =
      Counter(cost.bytes() * iterations, Counter::kIsRate, Counter::kIs1000);
  if (cost.flop > 0) state.counters["flops"] = Counter(cost.flop * iterations, Counter::kIsRate);
}

}  // namespace llamablocks::bench
