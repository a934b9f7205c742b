"""PyTorch baseline for bench_cuda_rms_norm: the same shape, bf16, the same timing method (CUDA
events, L2 flushed by a memset before each repeat, median). Exit 77 without torch or a GPU.

Usage: python3 torch_rms_norm.py [rows dim [repeats]]   (default 4096 4096 100)
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_timing import device, median_ms, properties, torch  # noqa: E402  (exits 77 without a GPU)

rows, dim = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) > 2 else (4096, 4096)
repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 100
eps = 1e-5
x = (torch.rand(rows, dim, device=device) * 4 - 2).to(torch.bfloat16)
w = torch.ones(dim, device=device, dtype=torch.bfloat16)
out = torch.empty_like(x)


def eager():
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


cases = {"copy (read+write)": lambda: out.copy_(x), "eager x*rsqrt(mean(x^2)+eps)*w": eager}
if hasattr(torch.nn.functional, "rms_norm"):
    cases["F.rms_norm"] = lambda: torch.nn.functional.rms_norm(x, (dim,), w, eps)
try:
    compiled = torch.compile(eager)
    compiled()
    cases["torch.compile(eager)"] = compiled
except Exception as e:  # no compiler toolchain: report and go on
    print(f"torch.compile unavailable: {type(e).__name__}: {e}".splitlines()[0])

nbytes = 2 * x.numel() * x.element_size()
results = {}
print(f"torch {torch.__version__} on {properties.name}")
print(f"{'case':34s} {'median us':>10s} {'GB/s':>10s}")
for name, body in cases.items():
    ms = median_ms(body, repeats)
    gbs = nbytes / (ms * 1e-3) / 1e9
    results[name] = {"us": ms * 1e3, "gbs": gbs}
    print(f"{name:34s} {ms * 1e3:10.2f} {gbs:10.1f}")
print(json.dumps({"torch": torch.__version__, "rows": rows, "dim": dim, "results": results}))
