// Linked into test_cuda_modules next to test_cuda_modules.cu: both include llamablocks/cuda.cuh,
// so a __global__ function or a non-inline function defined in a header would be defined twice and
// the link would fail (GUIDE: every kernel in a header is a template or has internal linkage).
#include "llamablocks/cuda.cuh"

namespace llamablocks::test {

/// The library's name for the cuda backend, from this translation unit.
const char* cuda_backend_name() { return backend_traits<cuda>::name; }

}  // namespace llamablocks::test
