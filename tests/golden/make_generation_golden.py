#!/usr/bin/python3
"""Golden data for end-to-end generation: small random-weight llama2.c checkpoints and the greedy
token ids a plain PyTorch LLaMA (float64, written here from torch primitives, independent of the
C++ code) generates from them.

For each config <name> it writes, next to this script:
  generation_<name>.bin     llama2.c legacy checkpoint: 7 x int32 header (dim, hidden_dim,
                            n_layers, n_heads, n_kv_heads, vocab_size (< 0: untied head),
                            max_seq_len), then float32 token_embedding, rms_att, wq, wk, wv, wo,
                            rms_ffn, w1, w2, w3, rms_final, freq_cis_real, freq_cis_imag, [wcls]
  generation_<name>.ids     text: "prompt <ids>" and "generated <ids>" (greedy, full-sequence
                            forward at every step, no cache), and the smallest top-1/top-2 logit
                            margin seen, so a reader knows how robust the argmax is
  generation_<name>.logits  float32 little-endian [vocab_size]: logits after the last prompt token

Usage: /usr/bin/python3 tests/golden/make_generation_golden.py
       /usr/bin/python3 tests/golden/make_generation_golden.py --vocab32000 OUT.bin
         (a dim-64, 2-layer checkpoint with vocab 32000 for comparing with llama2.c's run and
          LLaMA-2's tokenizer; ~9 MB, not for the repository)
"""
import math
import os
import struct
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
NORM_EPS = 1e-5
ROPE_THETA = 10000.0
PROMPT = [1, 5, 17, 42, 7, 33, 90]
STEPS = 20

CONFIGS = [
    # name, dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab, max_seq_len, tied, seed
    ("mha_tied", 32, 64, 2, 4, 4, 96, 64, True, 7),
    ("gqa_untied", 64, 96, 2, 8, 2, 96, 64, False, 2),
    ("mqa_tied_3layers", 32, 80, 3, 4, 1, 96, 64, True, 3),
    ("gqa_untied_head_dim_8", 48, 72, 2, 6, 3, 96, 64, False, 4),
]


def random_weights(dim, hidden, layers, heads, kv_heads, vocab, tied, seed):
    g = torch.Generator().manual_seed(seed)
    head_dim = dim // heads

    def normal(*shape, std=1.0, mean=0.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * std + mean).float()

    w = {
        "token_embedding": normal(vocab, dim),
        "rms_att": normal(layers, dim, std=0.1, mean=1.0),
        "wq": normal(layers, heads * head_dim, dim, std=dim ** -0.5),
        "wk": normal(layers, kv_heads * head_dim, dim, std=dim ** -0.5),
        "wv": normal(layers, kv_heads * head_dim, dim, std=dim ** -0.5),
        # Residual branches 3x larger than the embedding: otherwise a tied head mostly predicts the
        # current token again, and the generated ids would test little.
        "wo": normal(layers, dim, heads * head_dim, std=3 * dim ** -0.5),
        "rms_ffn": normal(layers, dim, std=0.1, mean=1.0),
        "w1": normal(layers, hidden, dim, std=dim ** -0.5),
        "w2": normal(layers, dim, hidden, std=3 * hidden ** -0.5),
        "w3": normal(layers, hidden, dim, std=dim ** -0.5),
        "rms_final": normal(dim, std=0.1, mean=1.0),
    }
    w["wcls"] = w["token_embedding"] if tied else normal(vocab, dim, std=1.0)
    return w


def write_checkpoint(path, dim, hidden, layers, heads, kv_heads, vocab, max_seq_len, tied, w):
    head_dim = dim // heads
    # The legacy format stores RoPE tables that readers ignore; write the real ones anyway.
    freqs = 1.0 / ROPE_THETA ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float64), freqs)
    with open(path, "wb") as f:
        f.write(struct.pack("<7i", dim, hidden, layers, heads, kv_heads,
                            vocab if tied else -vocab, max_seq_len))
        for name in ["token_embedding", "rms_att", "wq", "wk", "wv", "wo", "rms_ffn", "w1", "w2",
                     "w3", "rms_final"]:
            f.write(w[name].contiguous().numpy().astype("<f4").tobytes())
        f.write(torch.cos(angles).float().numpy().astype("<f4").tobytes())
        f.write(torch.sin(angles).float().numpy().astype("<f4").tobytes())
        if not tied:
            f.write(w["wcls"].contiguous().numpy().astype("<f4").tobytes())


def rms_norm(x, gain):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + NORM_EPS) * gain


def rope_interleaved(x, positions):
    """x: [T, heads, head_dim]; rotates the pairs (2j, 2j+1) by positions * theta^(-2j/head_dim)."""
    head_dim = x.shape[-1]
    freqs = 1.0 / ROPE_THETA ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = positions[:, None].double() * freqs[None, :]      # [T, head_dim/2]
    cos, sin = torch.cos(angles)[:, None, :], torch.sin(angles)[:, None, :]
    even, odd = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = even * sin + odd * cos
    return out


def forward(w, tokens, heads, kv_heads):
    """Full-sequence causal forward in float64; returns logits [T, vocab]."""
    d = {k: v.double() for k, v in w.items()}
    T = len(tokens)
    dim = d["token_embedding"].shape[1]
    head_dim = dim // heads
    positions = torch.arange(T)
    x = d["token_embedding"][torch.tensor(tokens)]            # [T, dim]
    mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    for l in range(d["rms_att"].shape[0]):
        h = rms_norm(x, d["rms_att"][l])
        q = (h @ d["wq"][l].T).view(T, heads, head_dim)
        k = (h @ d["wk"][l].T).view(T, kv_heads, head_dim)
        v = (h @ d["wv"][l].T).view(T, kv_heads, head_dim)
        q, k = rope_interleaved(q, positions), rope_interleaved(k, positions)
        group = heads // kv_heads                            # query head i reads kv head i // group
        k = k.repeat_interleave(group, dim=1)
        v = v.repeat_interleave(group, dim=1)
        scores = torch.einsum("thd,shd->hts", q, k) / math.sqrt(head_dim) + mask
        attn = torch.einsum("hts,shd->thd", torch.softmax(scores, dim=-1), v).reshape(T, dim)
        x = x + attn @ d["wo"][l].T
        h = rms_norm(x, d["rms_ffn"][l])
        gate = h @ d["w1"][l].T
        x = x + ((gate * torch.sigmoid(gate)) * (h @ d["w3"][l].T)) @ d["w2"][l].T
    return rms_norm(x, d["rms_final"]) @ d["wcls"].T


def greedy(w, prompt, steps, heads, kv_heads):
    tokens = list(prompt)
    min_margin = float("inf")
    prompt_logits = None
    for _ in range(steps):
        logits = forward(w, tokens, heads, kv_heads)[-1]
        if prompt_logits is None:
            prompt_logits = logits
        top = torch.topk(logits, 2).values
        min_margin = min(min_margin, float(top[0] - top[1]))
        tokens.append(int(torch.argmax(logits)))
    return tokens[len(prompt):], prompt_logits, min_margin


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--vocab32000":
        w = random_weights(64, 172, 2, 4, 2, 32000, True, 5)
        write_checkpoint(sys.argv[2], 64, 172, 2, 4, 2, 32000, 256, True, w)
        print("wrote", sys.argv[2])
        return
    for name, dim, hidden, layers, heads, kv_heads, vocab, seq, tied, seed in CONFIGS:
        w = random_weights(dim, hidden, layers, heads, kv_heads, vocab, tied, seed)
        base = os.path.join(HERE, "generation_" + name)
        write_checkpoint(base + ".bin", dim, hidden, layers, heads, kv_heads, vocab, seq, tied, w)
        generated, logits, margin = greedy(w, PROMPT, STEPS, heads, kv_heads)
        # float32 rounding of the C++ model moves logits by ~1e-5; far smaller margins would make
        # the greedy ids a coin toss, so refuse them here rather than produce a flaky test.
        assert margin > 1e-3, (name, margin)
        with open(base + ".ids", "w") as f:
            f.write("# greedy generation from make_generation_golden.py (PyTorch float64 LLaMA)\n")
            f.write("prompt " + " ".join(map(str, PROMPT)) + "\n")
            f.write("generated " + " ".join(map(str, generated)) + "\n")
            f.write("min_margin %.6g\n" % margin)
        with open(base + ".logits", "wb") as f:
            f.write(logits.float().numpy().astype("<f4").tobytes())
        print(name, "generated", generated, "min top-2 margin %.4g" % margin)


if __name__ == "__main__":
    main()
