#!/usr/bin/python3
"""Golden data for the whole training model of examples/train_shakespeare (char_llama.hpp, issue 7):
a tiny character LLaMA with fixed weights, written independently in PyTorch (float64, autograd).

Model: vocab 11, dim 16, 2 layers, 4 heads over 2 kv heads (head_dim 4), ffn 24, interleaved RoPE
(pairs 2j, 2j+1; theta 10000), RMSNorm eps 1e-5, SwiGLU, untied head; batch 2 × 6 tokens.
Weights ~ N(0, 0.3²), norm gains 1 + N(0, 0.1²) (torch.manual_seed(0)), written to the file, so
the C++ test loads them rather than drawing them.

Entries (all float64, format in README.md):
  weight.<name>           every parameter (names below), as torch holds it
  tokens, targets         [2, 6]
  logits                  [2, 6, 11]
  loss                    scalar: mean cross-entropy
  grad.<name>             d loss / d parameter
  adamw.loss              [10]: the loss on the same batch before each of 10 steps of
                          clip_grad_norm_(1.0) + AdamW(lr 1e-2, betas (0.9, 0.95), eps 1e-8,
                          weight decay 0.1 on matrices and the head, 0 on the embedding and gains)
  adamw.norm              [10]: the norm clip_grad_norm_ returned at each step

Usage: /usr/bin/python3 tests/golden/make_train_golden.py [--out-dir DIR]

The checked-in file was written with Debian's reference (netlib) BLAS, not OpenBLAS: torch 1.13
here is built with BLAS_INFO=generic and calls whichever libblas.so.3 the alternatives system
selects, and OpenBLAS changes the last bits of the float64 results (~1e-15 relative). To
reproduce it byte for byte while OpenBLAS is selected:
  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/blas:/usr/lib/x86_64-linux-gnu/lapack \
      /usr/bin/python3 tests/golden/make_train_golden.py
"""
import math
import os
import sys

import torch

from lbg_format import write_lbg

HERE = os.path.dirname(os.path.abspath(__file__))
VOCAB, DIM, LAYERS, HEADS, KV_HEADS, FFN = 11, 16, 2, 4, 2, 24
HEAD_DIM = DIM // HEADS
BATCH, TOKENS = 2, 6
EPS, THETA = 1e-5, 10000.0
STEPS = 10


def names():
    out = ["embedding"]
    for l in range(LAYERS):
        out += [f"layers.{l}.{n}" for n in
                ["attention_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w1", "w2", "w3"]]
    return out + ["final_norm", "output"]


def shape(name):
    leaf = name.split(".")[-1]
    return {"embedding": (VOCAB, DIM), "attention_norm": (DIM,), "ffn_norm": (DIM,),
            "final_norm": (DIM,), "wq": (HEADS * HEAD_DIM, DIM), "wk": (KV_HEADS * HEAD_DIM, DIM),
            "wv": (KV_HEADS * HEAD_DIM, DIM), "wo": (DIM, HEADS * HEAD_DIM), "w1": (FFN, DIM),
            "w2": (DIM, FFN), "w3": (FFN, DIM), "output": (VOCAB, DIM)}[leaf]


def is_gain(name):
    return name.endswith("norm")


def rms_norm(x, gain):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + EPS) * gain


def rope(x):  # x: [batch, tokens, heads, head_dim], pairs (2j, 2j+1)
    pos = torch.arange(TOKENS, dtype=torch.float64)[:, None]
    freq = THETA ** (-torch.arange(0, HEAD_DIM, 2, dtype=torch.float64) / HEAD_DIM)
    angle = pos * freq[None, :]  # [tokens, head_dim / 2]
    cos, sin = torch.cos(angle)[None, :, None, :], torch.sin(angle)[None, :, None, :]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2)


def forward(p, tokens):
    h = p["embedding"][tokens]
    mask = torch.full((TOKENS, TOKENS), float("-inf"), dtype=torch.float64).triu(1)
    for l in range(LAYERS):
        w = lambda n: p[f"layers.{l}.{n}"]
        x = rms_norm(h, w("attention_norm"))
        q = rope((x @ w("wq").T).view(BATCH, TOKENS, HEADS, HEAD_DIM))
        k = rope((x @ w("wk").T).view(BATCH, TOKENS, KV_HEADS, HEAD_DIM))
        v = (x @ w("wv").T).view(BATCH, TOKENS, KV_HEADS, HEAD_DIM)
        group = HEADS // KV_HEADS
        k = k.repeat_interleave(group, dim=2)
        v = v.repeat_interleave(group, dim=2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [batch, heads, tokens, head_dim]
        scores = q @ k.transpose(-1, -2) / math.sqrt(HEAD_DIM) + mask
        attended = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(BATCH, TOKENS, -1)
        h = h + attended @ w("wo").T
        x = rms_norm(h, w("ffn_norm"))
        h = h + (torch.nn.functional.silu(x @ w("w1").T) * (x @ w("w3").T)) @ w("w2").T
    return rms_norm(h, p["final_norm"]) @ p["output"].T


def loss_of(p, tokens, targets):
    logits = forward(p, tokens)
    return logits, torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))


def main():
    out_dir = HERE
    if len(sys.argv) == 3 and sys.argv[1] == "--out-dir":
        out_dir = sys.argv[2]
    elif len(sys.argv) != 1:
        sys.exit(__doc__)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    p = {}
    for n in names():
        if is_gain(n):
            p[n] = 1 + 0.1 * torch.randn(shape(n), dtype=torch.float64)
        else:
            p[n] = 0.3 * torch.randn(shape(n), dtype=torch.float64)
    tokens = torch.randint(0, VOCAB, (BATCH, TOKENS))
    targets = torch.randint(0, VOCAB, (BATCH, TOKENS))
    entries = [(f"weight.{n}", p[n]) for n in names()]
    entries += [("tokens", tokens), ("targets", targets)]

    params = {n: torch.nn.Parameter(p[n].clone()) for n in names()}
    logits, loss = loss_of(params, tokens, targets)
    loss.backward()
    entries += [("logits", logits), ("loss", loss)]
    entries += [(f"grad.{n}", params[n].grad) for n in names()]

    params = {n: torch.nn.Parameter(p[n].clone()) for n in names()}
    no_decay = [params[n] for n in names() if is_gain(n) or n == "embedding"]
    decay = [params[n] for n in names() if not (is_gain(n) or n == "embedding")]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=1e-2, betas=(0.9, 0.95), eps=1e-8, foreach=False)
    losses, norms = [], []
    for _ in range(STEPS):
        optimizer.zero_grad()
        _, loss = loss_of(params, tokens, targets)
        loss.backward()
        losses.append(loss.item())
        norms.append(float(torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)))
        optimizer.step()
    entries += [("adamw.loss", torch.tensor(losses, dtype=torch.float64)),
                ("adamw.norm", torch.tensor(norms, dtype=torch.float64))]
    # Every entry in float64, the integer ones included (the test reads them as numbers).
    write_lbg(os.path.join(out_dir, "train_char_llama.lbg"),
              [(name, tensor.detach().to(torch.float64)) for name, tensor in entries])


if __name__ == "__main__":
    main()
