// llamablocks: header-only LLaMA transformer building blocks. This umbrella header brings in the
// core types and every module with its cpu (Eigen) backend. CUDA is opt-in: llamablocks/cuda.cuh.
#pragma once

#include "llamablocks/core/backend.hpp"
#include "llamablocks/core/config.hpp"
#include "llamablocks/core/error.hpp"
#include "llamablocks/core/parameter.hpp"
#include "llamablocks/core/tensor.hpp"
#include "llamablocks/core/workspace.hpp"

#include "llamablocks/backends/cpu/attention.hpp"
#include "llamablocks/backends/cpu/context.hpp"
#include "llamablocks/backends/cpu/cross_entropy.hpp"
#include "llamablocks/backends/cpu/elementwise.hpp"
#include "llamablocks/backends/cpu/embedding.hpp"
#include "llamablocks/backends/cpu/grouped_query_attention.hpp"
#include "llamablocks/backends/cpu/kv_cache.hpp"
#include "llamablocks/backends/cpu/layer_norm.hpp"
#include "llamablocks/backends/cpu/linear.hpp"
#include "llamablocks/backends/cpu/positional_encoding.hpp"
#include "llamablocks/backends/cpu/rms_norm.hpp"
#include "llamablocks/backends/cpu/rotary_embedding.hpp"
#include "llamablocks/backends/cpu/swiglu_feed_forward.hpp"

#include "llamablocks/modules/llama_block.hpp"

#include "llamablocks/train/adamw.hpp"
#include "llamablocks/train/clip_grad_norm.hpp"
#include "llamablocks/train/init.hpp"
#include "llamablocks/train/lr_schedule.hpp"
#include "llamablocks/train/parameter_ref.hpp"

#include "llamablocks/io/format_error.hpp"
#include "llamablocks/text/char_tokenizer.hpp"
#include "llamablocks/text/sampler.hpp"
#include "llamablocks/text/sentencepiece_tokenizer.hpp"
