# The cuda backend, opt-in: included from the top-level CMakeLists after the llamablocks target.
#
# With a CUDA compiler: enables the CUDA language, finds the toolkit and defines the INTERFACE
# target llamablocks::cuda (llamablocks + cudart + cuBLAS + cuBLASLt) for code that includes
# llamablocks/cuda.cuh, plus the cuda tests and benchmarks when those are enabled. Without one it
# says so and changes nothing, so CPU-only builds are unaffected.
include(CheckLanguage)
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  message(STATUS "llamablocks: no CUDA compiler found; the cuda backend (llamablocks::cuda) is not built")
  return()
endif()

# Ampere (A100) and Hopper (H100, H200) unless the caller chose; set before enable_language so that
# CMake does not pick its own default.
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES "80;90")
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)

add_library(llamablocks_cuda INTERFACE)
add_library(llamablocks::cuda ALIAS llamablocks_cuda)
target_link_libraries(llamablocks_cuda INTERFACE llamablocks CUDA::cudart CUDA::cublas
                      CUDA::cublasLt)
target_compile_features(llamablocks_cuda INTERFACE cuda_std_17)
# Not installed yet: the exported package would then need find_dependency(CUDAToolkit) in
# llamablocksConfig.cmake, which CPU-only consumers must not require.

# Options of our own CUDA code: the host compiler's warnings through -Xcompiler (nvcc itself knows
# no -Wall), every warning an error with LLAMABLOCKS_WERROR. Third-party headers stay SYSTEM.
if(LLAMABLOCKS_BUILD_TESTS OR LLAMABLOCKS_BUILD_BENCHMARKS OR LLAMABLOCKS_BUILD_EXAMPLES)
  add_library(llamablocks_cuda_project_options INTERFACE)
  target_compile_options(llamablocks_cuda_project_options INTERFACE
    $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra,-Wshadow>
    $<$<AND:$<COMPILE_LANGUAGE:CUDA>,$<BOOL:${LLAMABLOCKS_WERROR}>>:--Werror=all-warnings -Xcompiler=-Werror>)
endif()

set(_llamablocks_cuda_root "${CMAKE_CURRENT_LIST_DIR}/..")
if(LLAMABLOCKS_BUILD_TESTS)
  enable_testing()
  add_subdirectory(${_llamablocks_cuda_root}/tests/cuda ${CMAKE_CURRENT_BINARY_DIR}/tests/cuda)
endif()
if(LLAMABLOCKS_BUILD_BENCHMARKS)
  add_subdirectory(${_llamablocks_cuda_root}/bench/cuda ${CMAKE_CURRENT_BINARY_DIR}/bench/cuda)
endif()
unset(_llamablocks_cuda_root)
