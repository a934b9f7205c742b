#!/usr/bin/env python3
"""Writes the GGUF fixtures of tests/test_gguf.cpp with the PyPI package `gguf` (llama.cpp's own
Python writer and numpy quantizers, an implementation independent of llamablocks).

    pip install gguf numpy && python3 tests/gguf/make_fixtures.py

fixture.gguf holds
  * one metadata key of every GGUF type, arrays of every element type, a nested array of strings;
  * the `llama.` keys and a 7-token vocabulary of a tiny LLaMA (config_from_gguf);
  * tensors of known float values stored as F32, F16, BF16, Q8_0, Q4_0 and Q4_1, and next to each
    non-F32 one `expect.<type>`: gguf's own dequantization of it, stored as F32.
The C++ test needs only the .gguf files, not Python.
"""
import math
from pathlib import Path

import numpy as np
from gguf import GGUFWriter, GGMLQuantizationType as T, GGUFValueType as V
from gguf.quants import quantize, dequantize

HERE = Path(__file__).resolve().parent


def values(rows, cols, seed):
    """Deterministic floats in roughly [-2, 2] with a few exact zeros and a constant block."""
    i = np.arange(rows * cols, dtype=np.float64)
    x = 2.0 * np.sin(0.37 * i + seed) * np.cos(0.011 * i * (seed + 1))
    x[5] = 0.0
    x[32:64] = 0.75  # a constant block: Q4_1's min equals its max
    return x.reshape(rows, cols).astype(np.float32)


def main():
    w = GGUFWriter(str(HERE / "fixture.gguf"), arch="llama")  # writes general.architecture
    # One key of every scalar type.
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_uint64("test.u64", 18000000000000000000)
    w.add_int64("test.i64", -9000000000000000000)
    w.add_float32("test.f32", 0.15625)
    w.add_float64("test.f64", -1.0e300)
    w.add_bool("test.bool_true", True)
    w.add_bool("test.bool_false", False)
    w.add_string("test.string", "héllo, GGUF")
    # Arrays of each element type.
    w.add_key_value("test.arr_u8", [1, 2, 255], V.ARRAY, sub_type=V.UINT8)
    w.add_key_value("test.arr_i8", [-128, 0, 127], V.ARRAY, sub_type=V.INT8)
    w.add_key_value("test.arr_u16", [0, 65535], V.ARRAY, sub_type=V.UINT16)
    w.add_key_value("test.arr_i16", [-32768, 32767], V.ARRAY, sub_type=V.INT16)
    w.add_key_value("test.arr_u32", [7, 4294967295], V.ARRAY, sub_type=V.UINT32)
    w.add_key_value("test.arr_i32", [-5, 2147483647], V.ARRAY, sub_type=V.INT32)
    w.add_key_value("test.arr_u64", [0, 18446744073709551615], V.ARRAY, sub_type=V.UINT64)
    w.add_key_value("test.arr_i64", [-9223372036854775808, 42], V.ARRAY, sub_type=V.INT64)
    w.add_key_value("test.arr_f32", [0.5, -2.25, 1e-3], V.ARRAY, sub_type=V.FLOAT32)
    w.add_key_value("test.arr_f64", [math.pi, -0.0], V.ARRAY, sub_type=V.FLOAT64)
    w.add_key_value("test.arr_bool", [True, False, True], V.ARRAY, sub_type=V.BOOL)
    w.add_array("test.arr_string", ["a", "", "ĠGGUF"])
    w.add_array("test.nested", [["x", "yy"], ["zzz"]])

    # A tiny LLaMA: dim 64, 4 heads of 16, 2 kv heads, 2 layers, FFN 96, vocabulary of 7.
    w.add_context_length(128)
    w.add_embedding_length(64)
    w.add_block_count(2)
    w.add_feed_forward_length(96)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_rope_freq_base(500000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_dimension_count(16)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(["<unk>", "<s>", "</s>", "a", "b", "ab", "Ġa"])
    w.add_token_scores([0.0, 0.0, 0.0, -1.0, -2.0, -3.5, -4.0])
    w.add_token_types([2, 3, 3, 1, 1, 1, 1])
    w.add_token_merges(["a b", "Ġ a"])

    # F32 [3, 64] (rows, cols): ne = {64, 3} in the file.
    w.add_tensor("f32", values(3, 64, 0.0))
    for name, qtype, seed in (("f16", T.F16, 1.0), ("bf16", T.BF16, 2.0), ("q8_0", T.Q8_0, 3.0),
                              ("q4_0", T.Q4_0, 4.0), ("q4_1", T.Q4_1, 5.0)):
        x = values(2, 64, seed)
        if qtype == T.F16:  # special values: inf, -inf, nan, subnormals, -0, the largest half
            x[1, :8] = [np.inf, -np.inf, np.nan, 2.0 ** -24, -(2.0 ** -20), -0.0, 65504.0, 1e-8]
        q = quantize(x, qtype)
        w.add_tensor(name, q, raw_dtype=qtype)
        w.add_tensor("expect." + name, dequantize(q, qtype).astype(np.float32).reshape(x.shape))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    # A llama with linear RoPE scaling and an odd alignment of 64, no tokens (vocab_size key).
    w = GGUFWriter(str(HERE / "linear_rope.gguf"), arch="llama")
    w.add_custom_alignment(64)
    w.add_context_length(4096)
    w.add_embedding_length(32)
    w.add_block_count(1)
    w.add_feed_forward_length(64)
    w.add_head_count(4)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(10)
    w.add_rope_scaling_type(__import__("gguf").RopeScalingType.LINEAR)
    w.add_rope_scaling_factor(4.0)
    w.add_tensor("norm", np.arange(32, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
