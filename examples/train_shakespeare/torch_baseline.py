#!/usr/bin/python3
"""Training throughput of the same character LLaMA in PyTorch, the side-by-side baseline for
train_shakespeare (issue 7: tokens/s against PyTorch on the same config, on the same CPU).

The model is the one char_llama.hpp assembles: embedding -> n x [RMSNorm, GQA attention with
interleaved RoPE (theta 10000), residual, RMSNorm, SwiGLU, residual] -> RMSNorm -> untied head ->
mean cross-entropy, float32. Each step: forward, backward, clip_grad_norm_(1.0), AdamW (betas 0.9,
0.95, weight decay 0.1). Tokens are random: the cost of a step does not depend on them.

Debian's python3-torch multiplies through the system's libblas.so.3: install libopenblas0-pthread
(update-alternatives then picks it) and set OPENBLAS_NUM_THREADS to --threads, or the reference
BLAS makes the baseline ten times slower than it should be (docs/training.md).

Usage: /usr/bin/python3 examples/train_shakespeare/torch_baseline.py [--dim 128] [--layers 4]
           [--heads 8] [--kv-heads 4] [--ffn 344] [--context 256] [--batch 8] [--vocab 68]
           [--steps 20] [--warmup-steps 3] [--threads 1]
Prints tokens/s (median over the timed steps) as train_shakespeare counts them: batch x context
tokens per step.
"""
import argparse
import math
import statistics
import time

import torch


def rms_norm(x, gain, eps=1e-5):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * gain


def rope_tables(tokens, head_dim, theta=10000.0):
    pos = torch.arange(tokens, dtype=torch.float32)[:, None]
    freq = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angle = pos * freq[None, :]
    return torch.cos(angle)[None, :, None, :], torch.sin(angle)[None, :, None, :]


def rope(x, cos, sin):  # x: [batch, tokens, heads, head_dim], pairs (2j, 2j+1)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2)


class CharLlama(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        self.a = a
        hd = a.dim // a.heads
        normal = lambda *s, std=0.02: torch.nn.Parameter(torch.randn(*s) * std)
        residual_std = 0.02 / math.sqrt(2 * a.layers)
        self.embedding = normal(a.vocab, a.dim)
        self.layers = torch.nn.ModuleList()
        for _ in range(a.layers):
            layer = torch.nn.Module()
            layer.attention_norm = torch.nn.Parameter(torch.ones(a.dim))
            layer.wq = normal(a.heads * hd, a.dim)
            layer.wk = normal(a.kv_heads * hd, a.dim)
            layer.wv = normal(a.kv_heads * hd, a.dim)
            layer.wo = normal(a.dim, a.heads * hd, std=residual_std)
            layer.ffn_norm = torch.nn.Parameter(torch.ones(a.dim))
            layer.w1 = normal(a.ffn, a.dim)
            layer.w2 = normal(a.dim, a.ffn, std=residual_std)
            layer.w3 = normal(a.ffn, a.dim)
            self.layers.append(layer)
        self.final_norm = torch.nn.Parameter(torch.ones(a.dim))
        self.output = normal(a.vocab, a.dim)
        self.cos, self.sin = rope_tables(a.context, hd)
        self.mask = torch.full((a.context, a.context), float("-inf")).triu(1)

    def forward(self, tokens, targets):
        a = self.a
        b, t = tokens.shape
        hd = a.dim // a.heads
        group = a.heads // a.kv_heads
        h = self.embedding[tokens]
        for layer in self.layers:
            x = rms_norm(h, layer.attention_norm)
            q = rope((x @ layer.wq.T).view(b, t, a.heads, hd), self.cos, self.sin)
            k = rope((x @ layer.wk.T).view(b, t, a.kv_heads, hd), self.cos, self.sin)
            v = (x @ layer.wv.T).view(b, t, a.kv_heads, hd)
            k, v = k.repeat_interleave(group, dim=2), v.repeat_interleave(group, dim=2)
            q, k, v = (z.transpose(1, 2) for z in (q, k, v))
            scores = q @ k.transpose(-1, -2) / math.sqrt(hd) + self.mask
            attended = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(b, t, -1)
            h = h + attended @ layer.wo.T
            x = rms_norm(h, layer.ffn_norm)
            h = h + (torch.nn.functional.silu(x @ layer.w1.T) * (x @ layer.w3.T)) @ layer.w2.T
        logits = rms_norm(h, self.final_norm) @ self.output.T
        return torch.nn.functional.cross_entropy(logits.reshape(-1, a.vocab), targets.reshape(-1))


def main():
    p = argparse.ArgumentParser()
    for name, default in [("dim", 128), ("layers", 4), ("heads", 8), ("kv-heads", 4), ("ffn", 344),
                          ("context", 256), ("batch", 8), ("vocab", 68), ("steps", 20),
                          ("warmup-steps", 3), ("threads", 1)]:
        p.add_argument("--" + name, type=int, default=default)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1337)
    model = CharLlama(a)
    decay = [q for n, q in model.named_parameters() if q.dim() >= 2 and n != "embedding"]
    no_decay = [q for n, q in model.named_parameters() if q.dim() < 2 or n == "embedding"]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=1e-3, betas=(0.9, 0.95), foreach=False)
    times = []
    for step in range(a.warmup_steps + a.steps):
        tokens = torch.randint(0, a.vocab, (a.batch, a.context))
        targets = torch.randint(0, a.vocab, (a.batch, a.context))
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=False)
        loss = model(tokens, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step >= a.warmup_steps:
            times.append(time.perf_counter() - start)
    per_step = statistics.median(times)
    print(f"torch {torch.__version__}, {a.threads} thread(s): median {per_step * 1e3:.1f} ms/step over "
          f"{len(times)} steps, {a.batch * a.context / per_step:.0f} tokens/s")


if __name__ == "__main__":
    main()
