"""Shared by the PyTorch baselines of the cuda benchmarks: the device, skipping without torch or a
GPU (exit 77), and the timing method of the C++ side (CUDA events, the L2 flushed by a memset
before each repeat, the median of the repeats)."""
import sys

try:
    import torch
except ImportError:
    print("SKIPPED: no torch")
    sys.exit(77)
if not torch.cuda.is_available():
    print("SKIPPED: torch sees no CUDA device")
    sys.exit(77)

device = torch.device("cuda")
properties = torch.cuda.get_device_properties(device)
_flush = torch.empty(max(2 * properties.L2_cache_size, 64 << 20), dtype=torch.uint8, device=device)


def median_ms(body, repeats):
    """Median milliseconds of `repeats` runs of body() after 3 warm-up runs, L2 flushed before each."""
    for _ in range(3):
        body()
    times = []
    for _ in range(repeats):
        _flush.zero_()
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        body()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    times.sort()
    return times[len(times) // 2]
