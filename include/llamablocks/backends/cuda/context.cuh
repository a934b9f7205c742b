// Context<cuda>, the device allocator and the error checks of the cuda backend.
//
// Context<cuda> owns one CUDA stream and one cuBLAS handle bound to it; every kernel of the backend
// is launched on ctx.stream(). The stream is a blocking one (cudaStreamCreate, not
// cudaStreamNonBlocking), so it stays ordered with the legacy default stream that cudaMemcpy and
// cudaMemset use. The allocator behind Tensor<T, R, cuda> additionally synchronizes the device
// around its host copies, so a host read sees every kernel launched before it on any stream, also
// when the program is built with --default-stream per-thread.
#pragma once

#if !defined(__CUDACC__)
#error "llamablocks/backends/cuda/context.cuh must be compiled by nvcc; include llamablocks/cuda.cuh"
#endif

#include "llamablocks/core/backend.hpp"
#include "llamablocks/core/error.hpp"
#include "llamablocks/core/tensor.hpp"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <string>
#include <utility>

namespace llamablocks {

/// A CUDA runtime or cuBLAS call failed; the message names the call, the error and file:line.
class cuda_error : public error {
 public:
  using error::error;
};

namespace detail {

inline void cuda_check(cudaError_t status, const char* call, const char* file, int line) {
  if (status == cudaSuccess) return;
  // Reset the runtime's last-error slot so that a caught failure is not reported again later.
  (void)cudaGetLastError();
  throw cuda_error(concat(call, " failed: ", cudaGetErrorName(status), " (",
                          cudaGetErrorString(status), ") at ", file, ":", line));
}

inline void cublas_check(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  throw cuda_error(concat(call, " failed: ", cublasGetStatusName(status), " (",
                          cublasGetStatusString(status), ") at ", file, ":", line));
}

}  // namespace detail

/// Why this process cannot use a CUDA device: empty when at least one is present, otherwise
/// "device count is 0" or the runtime's error (no driver, no device node, ...). Clears the
/// runtime's last-error slot, so a caller may go on without a device.
inline std::string cuda_unavailable_reason() {
  int devices = 0;
  const cudaError_t status = cudaGetDeviceCount(&devices);
  if (status == cudaSuccess && devices > 0) return {};
  (void)cudaGetLastError();
  return status != cudaSuccess ? cudaGetErrorString(status) : "device count is 0";
}

}  // namespace llamablocks

/// Throws llamablocks::cuda_error when a CUDA runtime call does not return cudaSuccess.
#define LLAMABLOCKS_CUDA_CHECK(call) \
  ::llamablocks::detail::cuda_check((call), #call, __FILE__, __LINE__)

/// Throws llamablocks::cuda_error when a cuBLAS call does not return CUBLAS_STATUS_SUCCESS.
#define LLAMABLOCKS_CUBLAS_CHECK(call) \
  ::llamablocks::detail::cublas_check((call), #call, __FILE__, __LINE__)

/// Checks the launch of the kernel just issued (bad configuration, missing device code).
#define LLAMABLOCKS_CUDA_CHECK_LAUNCH() LLAMABLOCKS_CUDA_CHECK(cudaGetLastError())

namespace llamablocks {

/// Run-time state of the cuda backend: the device, a stream and a cuBLAS handle on that stream.
/// Non-copyable, movable; a moved-from context owns nothing and may only be destroyed or assigned.
template <>
class Context<cuda> {
 public:
  /// \param device CUDA device ordinal; made current for the calling thread.
  explicit Context(int device = 0) : device_(device) {
    LLAMABLOCKS_CUDA_CHECK(cudaSetDevice(device));
    LLAMABLOCKS_CUDA_CHECK(cudaDeviceGetAttribute(&multiprocessor_count_,
                                                  cudaDevAttrMultiProcessorCount, device));
    LLAMABLOCKS_CUDA_CHECK(cudaStreamCreate(&stream_));
    const cublasStatus_t created = cublasCreate(&cublas_);
    if (created != CUBLAS_STATUS_SUCCESS) {
      cudaStreamDestroy(stream_);
      LLAMABLOCKS_CUBLAS_CHECK(created);
    }
    const cublasStatus_t bound = cublasSetStream(cublas_, stream_);
    if (bound != CUBLAS_STATUS_SUCCESS) {
      release();
      LLAMABLOCKS_CUBLAS_CHECK(bound);
    }
  }

  ~Context() { release(); }

  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  Context(Context&& other) noexcept
      : device_(other.device_),
        multiprocessor_count_(other.multiprocessor_count_),
        tf32_(other.tf32_),
        stream_(std::exchange(other.stream_, nullptr)),
        cublas_(std::exchange(other.cublas_, nullptr)) {}

  Context& operator=(Context&& other) noexcept {
    if (this != &other) {
      release();
      device_ = other.device_;
      multiprocessor_count_ = other.multiprocessor_count_;
      tf32_ = other.tf32_;
      stream_ = std::exchange(other.stream_, nullptr);
      cublas_ = std::exchange(other.cublas_, nullptr);
    }
    return *this;
  }

  int device() const { return device_; }
  int multiprocessor_count() const { return multiprocessor_count_; }
  cudaStream_t stream() const { return stream_; }
  cublasHandle_t cublas() const { return cublas_; }

  /// Whether float GEMMs may round their inputs to TF32 on tensor cores (10-bit mantissa, about
  /// 1e-3 relative error per product). Off unless asked for: float results then match the cpu
  /// backend to float rounding.
  bool tf32() const { return tf32_; }
  void set_tf32(bool allowed) { tf32_ = allowed; }

  /// Blocks until every operation issued on this context's stream has finished.
  void synchronize() const { LLAMABLOCKS_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

 private:
  void release() noexcept {
    // Errors are ignored here: a destructor cannot report them, and at process exit the runtime
    // may already be unloading (cudaErrorCudartUnloading).
    if (cublas_ != nullptr) cublasDestroy(cublas_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
    cublas_ = nullptr;
    stream_ = nullptr;
  }

  int device_ = 0;
  int multiprocessor_count_ = 0;
  bool tf32_ = false;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
};

namespace detail {

/// dst[0 .. count) = src[0 .. count), device to device, on ctx's stream (asynchronous). What a
/// training forward keeps of its inputs (SavedTensor) is copied with it.
template <class T>
void copy_on_stream(const Context<cuda>& ctx, T* destination, const T* source, index_t count) {
  if (count == 0) return;
  LLAMABLOCKS_CUDA_CHECK(cudaMemcpyAsync(destination, source,
                                         static_cast<std::size_t>(count) * sizeof(T),
                                         cudaMemcpyDeviceToDevice, ctx.stream()));
}

/// Device memory of the current CUDA device, 256-byte aligned (cudaMalloc's guarantee), so that
/// every tensor allows 16-byte vector access from its first element.
template <>
struct allocator<cuda> {
  static constexpr std::size_t alignment = 256;

  static void* allocate(std::size_t bytes) {
    void* pointer = nullptr;
    const std::size_t request = bytes == 0 ? alignment : bytes;
    const cudaError_t status = cudaMalloc(&pointer, request);
    if (status == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      std::size_t free_bytes = 0;
      std::size_t total_bytes = 0;
      (void)cudaMemGetInfo(&free_bytes, &total_bytes);
      throw cuda_error(concat("cudaMalloc: out of device memory allocating ", request,
                              " bytes (", free_bytes, " of ", total_bytes, " bytes free)"));
    }
    LLAMABLOCKS_CUDA_CHECK(status);
    return pointer;
  }

  static void deallocate(void* pointer) noexcept { (void)cudaFree(pointer); }

  /// Zero-filled memory for a Tensor; waits for the memset, so any stream sees the zeros.
  static void* allocate_zeroed(std::size_t bytes) {
    void* pointer = allocate(bytes);
    cudaError_t status = cudaMemset(pointer, 0, bytes);
    const char* call = "cudaMemset(pointer, 0, bytes)";
    if (status == cudaSuccess) {
      status = cudaDeviceSynchronize();
      call = "cudaDeviceSynchronize()";
    }
    if (status != cudaSuccess) {
      deallocate(pointer);
      cuda_check(status, call, __FILE__, __LINE__);
    }
    return pointer;
  }
  static void deallocate_zeroed(void* pointer, std::size_t) noexcept { deallocate(pointer); }

  static void copy_from_host(void* destination, const void* host_source, std::size_t bytes) {
    if (bytes == 0) return;
    // Kernels still reading the destination on some stream finish before it is overwritten.
    LLAMABLOCKS_CUDA_CHECK(cudaDeviceSynchronize());
    LLAMABLOCKS_CUDA_CHECK(cudaMemcpy(destination, host_source, bytes, cudaMemcpyHostToDevice));
  }

  static void copy_to_host(void* host_destination, const void* source, std::size_t bytes) {
    if (bytes == 0) return;
    LLAMABLOCKS_CUDA_CHECK(cudaDeviceSynchronize());
    LLAMABLOCKS_CUDA_CHECK(cudaMemcpy(host_destination, source, bytes, cudaMemcpyDeviceToHost));
  }
};

}  // namespace detail
}  // namespace llamablocks
