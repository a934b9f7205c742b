"""PyTorch baseline for bench_cuda_attention: torch.nn.functional.scaled_dot_product_attention in
bf16 on the same shapes, timed the same way (CUDA events, L2 flushed by a memset before each
repeat, median). Decode repeats the 8 kv heads to 32 (a copy made before timing) as GQA without
enable_gqa needs. Exit 77 without torch or a GPU.

Usage: python3 torch_attention.py [repeats]   (default 50)
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_timing import device, median_ms, properties, torch  # noqa: E402  (exits 77 without a GPU)
import torch.nn.functional as F  # noqa: E402

repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 50
dtype = torch.bfloat16


for batch in (1, 8):
    for length in (4096, 32768):
        q = torch.randn(batch, 32, 1, 128, device=device, dtype=dtype)
        k = torch.randn(batch, 8, length, 128, device=device, dtype=dtype)
        v = torch.randn(batch, 8, length, 128, device=device, dtype=dtype)
        k32 = k[:, :, None].expand(batch, 8, 4, length, 128).reshape(batch, 32, length, 128)
        v32 = v[:, :, None].expand(batch, 8, 4, length, 128).reshape(batch, 32, length, 128)
        ms = median_ms(lambda: F.scaled_dot_product_attention(q, k32, v32), repeats)
        kv_bytes = batch * 8 * length * 128 * 2 * 2
        name = f"decode b{batch} heads 32/8 L {length}"
        print(json.dumps({"case": name, "us": ms * 1e3, "kv_gbs": kv_bytes / (ms * 1e-3) / 1e9,
                          "note": "kv repeated to 32 heads before timing: SDPA reads 4x the bytes counted"}))
        del q, k, v, k32, v32

q = torch.randn(1, 32, 4096, 128, device=device, dtype=dtype)
k = torch.randn_like(q)
v = torch.randn_like(q)
ms = median_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), repeats)
flop = 4.0 * 4096 * 4096 * 128 * 32 / 2
print(json.dumps({"case": "prefill b1 heads 32/32 L 4096", "us": ms * 1e3,
                  "tflops": flop / (ms * 1e-3) / 1e12, "device": properties.name}))
