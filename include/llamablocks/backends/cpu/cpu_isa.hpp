// Which x86 SIMD families this CPU runs, detected at run time, so that a portable build (no
// -march) can carry AVX2, AVX-512 and AMX kernels, compiled with target attributes (AMX as inline
// assembly), and run each only on a CPU that has it. Shared by packed_matmul (the dot and GEMV
// kernels), gemm and gemm_amx (the prefill GEMMs) and linear_kernel, which picks our GEMM over
// Eigen's where AVX-512 is present.
//   avx512_amx   the avx512_bf16 family, whose Q8_0 prefill products run on AMX-INT8 tiles (and
//                bf16 ones on AMX-BF16 tiles, where Context<cpu>::bf16_activations allows)
//   avx512_bf16  the avx512_vnni family, whose bf16 prefill products run on AVX512_BF16's
//                vdpbf16ps where Context<cpu>::bf16_activations allows (Zen 4, Cooper Lake)
//   avx512_vnni  the avx512 family, whose Q8_0 integer dot products use AVX512_VNNI's vpdpbusd
//   avx512       AVX-512 F/BW/VL + FMA + F16C
//   avx2         AVX2 + FMA + F16C
//   scalar       plain C++, any CPU
#pragma once

#if defined(__x86_64__) || defined(_M_X64)
#define LLAMABLOCKS_X86_KERNELS 1
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
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
#define LLAMABLOCKS_TARGET_AVX512_BF16 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,avx512bf16")))
#else
#define LLAMABLOCKS_X86_KERNELS 0
#endif

namespace llamablocks {

/// The kernel families of packed_matmul, in order of preference.
enum class CpuIsa { scalar, avx2, avx512, avx512_vnni, avx512_bf16, avx512_amx };

inline const char* to_string(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::scalar: return "scalar";
    case CpuIsa::avx2: return "avx2";
    case CpuIsa::avx512: return "avx512";
    case CpuIsa::avx512_vnni: return "avx512_vnni";
    case CpuIsa::avx512_bf16: return "avx512_bf16";
    case CpuIsa::avx512_amx: return "avx512_amx";
  }
  return "(invalid)";
}

/// Whether `isa` runs the AVX-512 kernels (avx512 itself, or avx512_vnni, avx512_bf16 and
/// avx512_amx, which differ from it only in their Q8_0 kernels and their bf16 prefill).
constexpr bool is_avx512(CpuIsa isa) {
  return isa == CpuIsa::avx512 || isa == CpuIsa::avx512_vnni || isa == CpuIsa::avx512_bf16 ||
         isa == CpuIsa::avx512_amx;
}

/// Whether `isa` takes its Q8_0 decode dot products from vpdpbusd.
constexpr bool has_vnni(CpuIsa isa) {
  return isa == CpuIsa::avx512_vnni || isa == CpuIsa::avx512_bf16 || isa == CpuIsa::avx512_amx;
}

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

/// CPUID leaf 7 sub-leaf 1, EAX bit 5 (AVX512_BF16; asked directly, as for F16C, since not every
/// compiler's __builtin_cpu_supports knows it).
inline bool cpu_has_avx512_bf16() {
#if LLAMABLOCKS_X86_KERNELS && (defined(__GNUC__) || defined(__clang__))
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) != 0 && (eax & (1u << 5)) != 0;
#else
  return false;
#endif
}

/// CPUID leaf 7 EDX bits 22 (AMX-BF16), 24 (AMX-TILE) and 25 (AMX-INT8), and the operating
/// system's leave to use the tile data registers: Linux (5.16 and later) grants them to a process
/// that asks, once, with arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA); elsewhere AMX is not
/// used.
inline bool cpu_has_amx() {
#if LLAMABLOCKS_X86_KERNELS && (defined(__GNUC__) || defined(__clang__)) && defined(__linux__)
  static const bool usable = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0) return false;
    constexpr unsigned bf16_tile_int8 = (1u << 22) | (1u << 24) | (1u << 25);
    if ((edx & bf16_tile_int8) != bf16_tile_int8) return false;
    constexpr long request_permission = 0x1023;  // ARCH_REQ_XCOMP_PERM
    constexpr long tile_data = 18;               // XFEATURE_XTILEDATA
    return syscall(SYS_arch_prctl, request_permission, tile_data) == 0;
  }();
  return usable;
#else
  return false;
#endif
}

}  // namespace detail

namespace detail {

/// Whether this CPU (and its OS) runs the family `isa`, asked of CPUID each time: under a
/// hypervisor every cpuid instruction exits to it (microseconds), so cpu_supports keeps the answers.
inline bool cpu_detect(CpuIsa isa) {
#if LLAMABLOCKS_X86_KERNELS && (defined(__GNUC__) || defined(__clang__))
  switch (isa) {
    case CpuIsa::scalar: return true;
    case CpuIsa::avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
    case CpuIsa::avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma") && cpu_has_f16c();
    case CpuIsa::avx512_vnni:
      return cpu_detect(CpuIsa::avx512) && __builtin_cpu_supports("avx512vnni");
    case CpuIsa::avx512_bf16:
      return cpu_detect(CpuIsa::avx512_vnni) && cpu_has_avx512_bf16();
    case CpuIsa::avx512_amx:
      return cpu_detect(CpuIsa::avx512_bf16) && cpu_has_amx();
  }
  return false;
#else
  return isa == CpuIsa::scalar;
#endif
}

}  // namespace detail

namespace detail {

/// cpu_detect(Isa), asked once (only when first wanted: asking for avx512_amx requests the tile
/// state from Linux).
template <CpuIsa Isa>
bool cpu_supports_once() {
  static const bool answer = cpu_detect(Isa);
  return answer;
}

}  // namespace detail

/// Whether this CPU (and its OS, which must save the wider registers) runs the family `isa`
/// (detected once per family; packed_matmul asks on every call).
inline bool cpu_supports(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::scalar: return true;
    case CpuIsa::avx2: return detail::cpu_supports_once<CpuIsa::avx2>();
    case CpuIsa::avx512: return detail::cpu_supports_once<CpuIsa::avx512>();
    case CpuIsa::avx512_vnni: return detail::cpu_supports_once<CpuIsa::avx512_vnni>();
    case CpuIsa::avx512_bf16: return detail::cpu_supports_once<CpuIsa::avx512_bf16>();
    case CpuIsa::avx512_amx: return detail::cpu_supports_once<CpuIsa::avx512_amx>();
  }
  return false;
}

/// The best family this CPU runs (detected once).
inline CpuIsa cpu_isa() {
  static const CpuIsa best = cpu_supports(CpuIsa::avx512_amx)    ? CpuIsa::avx512_amx
                             : cpu_supports(CpuIsa::avx512_bf16) ? CpuIsa::avx512_bf16
                             : cpu_supports(CpuIsa::avx512_vnni) ? CpuIsa::avx512_vnni
                             : cpu_supports(CpuIsa::avx512)      ? CpuIsa::avx512
                             : cpu_supports(CpuIsa::avx2)        ? CpuIsa::avx2
                                                                 : CpuIsa::scalar;
  return best;
}

}  // namespace llamablocks
