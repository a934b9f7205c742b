#!/usr/bin/python3
"""Golden data for the optimizer (issue 7): torch.optim.AdamW with torch.nn.utils.clip_grad_norm_
and a warmup + cosine learning rate, 10 steps on three small parameters, in float64 and float32.

Nothing is imported from this repository. The initial values, the gradients of every step and the
learning rate of every step are formulas (below, repeated in tests/test_optimizer.cpp), evaluated
with Python's math module (the C library's sin/cos, as the C++ test uses) in double and then
rounded to the run's dtype; so the test reproduces the inputs without reading them, and the file
holds only what torch computed.

Parameters (k = 0, 1, 2), each a flat index i over its elements, row-major:
  k = 0: shape [3, 4], weight decay          k = 1: shape [5], no weight decay (a norm gain)
  k = 2: shape [6, 2], weight decay
  initial value      p_k[i] = 0.5 * sin(1.3 * i + 0.7 * k + 0.1)
  gradient, step t   g_k[i] = cos(0.37 * i * (k + 1) + 0.91 * t) * (1 + 0.5 * k) * s_t,
                     s_t = 4.0 when t % 3 == 0, else 0.1   (t = 1 .. 10; s_t = 4 clips, 0.1 does not)
Each step: clip_grad_norm_(all three, MAX_NORM), set the step's lr, optimizer.step().
lr of step t (t = 1 .. 10) is schedule(t - 1), linear warmup over WARMUP steps then cosine to
MIN_LR at TOTAL steps (see schedule() below).

Output: optimizer_adamw.lbg (format in README.md). Entries, all float64:
  config.<name>                           scalars: the constants below, per config
  <config>.<dtype>.norm         [10]      the norm clip_grad_norm_ returned at each step
  <config>.<dtype>.p<k>.step<t> [shape]   parameter k after step t
with <config> in CONFIGS and <dtype> in (float64, float32).

Usage: /usr/bin/python3 tests/golden/make_optimizer_golden.py [--out-dir DIR]
"""
import math
import os
import sys

import torch

from lbg_format import write_lbg

HERE = os.path.dirname(os.path.abspath(__file__))
SHAPES = [(3, 4), (5,), (6, 2)]
DECAY = [True, False, True]
STEPS = 10
MAX_NORM = 1.0
MAX_LR = 1e-2
MIN_LR = 1e-3
WARMUP = 3
TOTAL = 10

# name, beta1, beta2, eps, weight_decay. "large_eps" makes eps's place in the denominator
# (after the bias correction of sqrt(v)) visible in the result.
CONFIGS = [
    ("default", 0.9, 0.95, 1e-8, 0.1),
    ("large_eps", 0.8, 0.99, 1e-3, 0.5),
]


def schedule(step):
    if step < WARMUP:
        return MAX_LR * (step + 1) / WARMUP
    if step >= TOTAL:
        return MIN_LR
    progress = (step - WARMUP) / (TOTAL - WARMUP)
    return MIN_LR + 0.5 * (MAX_LR - MIN_LR) * (1 + math.cos(math.pi * progress))


def count(shape):
    return math.prod(shape)


def initial(k, dtype):
    values = [0.5 * math.sin(1.3 * i + 0.7 * k + 0.1) for i in range(count(SHAPES[k]))]
    return torch.tensor(values, dtype=torch.float64).to(dtype).reshape(SHAPES[k])


def gradient(k, t, dtype):
    scale = 4.0 if t % 3 == 0 else 0.1
    values = [math.cos(0.37 * i * (k + 1) + 0.91 * t) * (1 + 0.5 * k) * scale
              for i in range(count(SHAPES[k]))]
    return torch.tensor(values, dtype=torch.float64).to(dtype).reshape(SHAPES[k])


def run(beta1, beta2, eps, weight_decay, dtype):
    params = [torch.nn.Parameter(initial(k, dtype)) for k in range(len(SHAPES))]
    groups = [
        {"params": [p for p, d in zip(params, DECAY) if d], "weight_decay": weight_decay},
        {"params": [p for p, d in zip(params, DECAY) if not d], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=MAX_LR, betas=(beta1, beta2), eps=eps, foreach=False)
    norms, history = [], []
    for t in range(1, STEPS + 1):
        for k, p in enumerate(params):
            p.grad = gradient(k, t, dtype)
        norms.append(float(torch.nn.utils.clip_grad_norm_(params, MAX_NORM)))
        for group in optimizer.param_groups:
            group["lr"] = schedule(t - 1)
        optimizer.step()
        history.append([p.detach().to(torch.float64).clone() for p in params])
    return norms, history


def main():
    out_dir = HERE
    if len(sys.argv) == 3 and sys.argv[1] == "--out-dir":
        out_dir = sys.argv[2]
    elif len(sys.argv) != 1:
        sys.exit(__doc__)
    torch.set_num_threads(1)
    scalar = lambda value: torch.tensor(float(value), dtype=torch.float64)
    entries = [(f"config.{name}", scalar(value)) for name, value in
               [("steps", STEPS), ("max_norm", MAX_NORM), ("max_lr", MAX_LR), ("min_lr", MIN_LR),
                ("warmup", WARMUP), ("total", TOTAL)]]
    for name, beta1, beta2, eps, weight_decay in CONFIGS:
        entries += [(f"config.{name}.{field}", scalar(value)) for field, value in
                    [("beta1", beta1), ("beta2", beta2), ("eps", eps),
                     ("weight_decay", weight_decay)]]
        for dtype, label in [(torch.float64, "float64"), (torch.float32, "float32")]:
            norms, history = run(beta1, beta2, eps, weight_decay, dtype)
            entries.append((f"{name}.{label}.norm", torch.tensor(norms, dtype=torch.float64)))
            for t, params in enumerate(history, start=1):
                entries += [(f"{name}.{label}.p{k}.step{t}", p) for k, p in enumerate(params)]
    # The schedule at the points the C++ test also pins by hand.
    assert abs(schedule(0) - MAX_LR / WARMUP) < 1e-15
    assert abs(schedule(WARMUP) - MAX_LR) < 1e-15
    assert abs(schedule(WARMUP + (TOTAL - WARMUP) / 2) - (MAX_LR + MIN_LR) / 2) < 1e-15
    assert schedule(TOTAL) == MIN_LR
    # Every entry in float64, the integer ones included (the test reads them as numbers).
    write_lbg(os.path.join(out_dir, "optimizer_adamw.lbg"),
              [(name, tensor.detach().to(torch.float64)) for name, tensor in entries])


if __name__ == "__main__":
    main()
