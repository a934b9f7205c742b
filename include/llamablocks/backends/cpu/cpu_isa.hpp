// Which x86 SIMD families this CPU runs, detected at run time, so that a portable build (no
// -march) can carry AVX2 and AVX-512 kernels, compiled with target attributes, and run each only
// on a CPU that has it. Shared by packed_matmul (the dot and GEMV kernels) and gemm (the prefill
// GEMM) and by linear_kernel, which picks our GEMM over Eigen's where AVX-512 is present.
//   avx512_vnni  the avx512 family, whose Q8_0 integer dot products use AVX512_VNNI's vpdpbusd
//   avx512       AVX-512 F/BW/VL + FMA + F16C
//   avx2         AVX2 + FMA + F16C
//   scalar       plain C++, any CPU
#pragma once

#if defined(__x86_64__) || defined(_M_X64)
#define LLAMABLOCKS_X86_KERNELS 1
#include <cpuid.h>
// GCC 12's AVX-512 intrinsics initialize their "undefined" vectors from themselves, which
// -Wmaybe-uninitialized reports wherever they are inlined (GCC bug 105593); the state in force
// where the intrinsic is defined is what counts, so the header is included with it off.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
// The kernels of a family are compiled for it whatever the build's -march.
#define LLAMABLOCKS_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define LLAMABLOCKS_TARGET_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))
#else
#define LLAMABLOCKS_X86_KERNELS 0
#endif

namespace llamablocks {

/// The kernel families of packed_matmul, in order of preference.
enum class CpuIsa { scalar, avx2, avx512, avx512_vnni };

inline const char* to_string(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::scalar: return "scalar";
    case CpuIsa::avx2: return "avx2";
    case CpuIsa::avx512: return "avx512";
    case CpuIsa::avx512_vnni: return "avx512_vnni";
  }
  return "(invalid)";
}

/// Whether `isa` runs the AVX-512 kernels (avx512 itself, or avx512_vnni, which differs from it only
/// in the Q8_0 integer dot products).
constexpr bool is_avx512(CpuIsa isa) { return isa == CpuIsa::avx512 || isa == CpuIsa::avx512_vnni; }

namespace detail {

/// CPUID leaf 1, ECX bit 29 (not every compiler's __builtin_cpu_supports knows "f16c").
inline bool cpu_has_f16c() {
#if LLAMABLOCKS_X86_KERNELS && (defined(__GNUC__) || defined(__clang__))
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & (1u << 29)) != 0;
#else
  return false;
#endif
}

}  // namespace detail

/// Whether this CPU (and its OS, which must save the wider registers) runs the family `isa`.
inline bool cpu_supports(CpuIsa isa) {
#if LLAMABLOCKS_X86_KERNELS && (defined(__GNUC__) || defined(__clang__))
  switch (isa) {
    case CpuIsa::scalar: return true;
    case CpuIsa::avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             detail::cpu_has_f16c();
    case CpuIsa::avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma") &&
             detail::cpu_has_f16c();
    case CpuIsa::avx512_vnni:
      return cpu_supports(CpuIsa::avx512) && __builtin_cpu_supports("avx512vnni");
  }
  return false;
#else
  return isa == CpuIsa::scalar;
#endif
}

/// The best family this CPU runs (detected once).
inline CpuIsa cpu_isa() {
  static const CpuIsa best = cpu_supports(CpuIsa::avx512_vnni) ? CpuIsa::avx512_vnni
                             : cpu_supports(CpuIsa::avx512)    ? CpuIsa::avx512
                             : cpu_supports(CpuIsa::avx2)      ? CpuIsa::avx2
                                                               : CpuIsa::scalar;
  return best;
}

}  // namespace llamablocks
