// llamablocks for CUDA: the core types, Context<cuda>, the device allocator behind
// Tensor<T, Rank, cuda>, and every module specialized for the cuda backend (RMSNorm, Embedding,
// Linear, RotaryEmbedding, KVCache, GroupedQueryAttention, SwiGLUFeedForward; LlamaBlock<cuda>
// composes them) with their kernels (rms_norm, add_inplace, swiglu_activation, causal_attention,
// greedy_tokens), and training: each module's forward with Activations and backward, the
// causal_self_attention_backward kernels, cross_entropy / cross_entropy_backward, and AdamW<T, cuda>
// with clip_grad_norm over device parameters. Compile
// with nvcc and link llamablocks::cuda (CUDA::cudart, CUDA::cublas). CPU-only builds never include
// this header; the cpu backend stays in llamablocks/llamablocks.hpp and both may be included
// together.
#pragma once

#if !defined(__CUDACC__)
#error "llamablocks/cuda.cuh must be compiled by nvcc (CUDA language); the cpu backend is llamablocks/llamablocks.hpp"
#endif

#include "llamablocks/core/backend.hpp"
#include "llamablocks/core/error.hpp"
#include "llamablocks/core/parameter.hpp"
#include "llamablocks/core/tensor.hpp"
#include "llamablocks/core/workspace.hpp"

#include "llamablocks/backends/cuda/attention.cuh"
#include "llamablocks/backends/cuda/attention_backward.cuh"
#include "llamablocks/backends/cuda/context.cuh"
#include "llamablocks/backends/cuda/cross_entropy.cuh"
#include "llamablocks/backends/cuda/elementwise.cuh"
#include "llamablocks/backends/cuda/embedding.cuh"
#include "llamablocks/backends/cuda/grouped_query_attention.cuh"
#include "llamablocks/backends/cuda/kv_cache.cuh"
#include "llamablocks/backends/cuda/linear.cuh"
#include "llamablocks/backends/cuda/optimizer.cuh"
#include "llamablocks/backends/cuda/rms_norm.cuh"
#include "llamablocks/backends/cuda/rotary_embedding.cuh"
#include "llamablocks/backends/cuda/sampling.cuh"
#include "llamablocks/backends/cuda/swiglu_feed_forward.cuh"
#include "llamablocks/modules/llama_block.hpp"
