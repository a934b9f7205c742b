#!/usr/bin/python3
"""Independent PyTorch reference for one LLaMA transformer block.

Writes small "golden" files (<name>.lbg) holding a block's configuration,
weights, input, every intermediate tensor and the output, so that the C++
tests can compare against the reference step by step.

This script deliberately imports nothing from the repository but the file
writer (lbg_format.py): it is a plain re-implementation from torch primitives,
following Meta's model.py (and Hugging Face's rotate_half for the half-split
RoPE layout).

All computation is done in float64, starting from float32-rounded weights and
inputs; every tensor is stored as float32 except config scalars and
rope.inv_freq, which are stored as float64.

Usage:
    /usr/bin/python3 tests/golden/make_golden.py [--out-dir DIR]

File format: see lbg_format.py, the writer this script shares with the other
make_*_golden.py scripts.
"""

import argparse
import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lbg_format import write_lbg

ROPE_LAYOUTS = {"interleaved": 0, "half_split": 1}


@dataclass(frozen=True)
class Llama3RopeScaling:
    factor: float
    low_freq_factor: float
    high_freq_factor: float
    original_max_position_embeddings: int


@dataclass(frozen=True)
class Config:
    name: str
    seed: int
    dim: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    ffn_hidden_dim: int
    batch: int
    tokens: int
    rope_theta: float
    norm_eps: float
    rope_layout: str  # "interleaved" or "half_split"
    rope_scaling: Llama3RopeScaling = None


CONFIGS = [
    Config(name="mha_interleaved", seed=1,
           dim=64, n_heads=4, n_kv_heads=4, head_dim=16, ffn_hidden_dim=192,
           batch=2, tokens=7, rope_theta=10000.0, norm_eps=1e-5,
           rope_layout="interleaved"),
    Config(name="gqa_half_split_llama3", seed=2,
           dim=96, n_heads=6, n_kv_heads=2, head_dim=16, ffn_hidden_dim=256,
           batch=1, tokens=9, rope_theta=500000.0, norm_eps=1e-5,
           rope_layout="half_split",
           rope_scaling=Llama3RopeScaling(factor=8.0, low_freq_factor=1.0,
                                          high_freq_factor=4.0,
                                          original_max_position_embeddings=16)),
    Config(name="mqa_interleaved_wide_heads", seed=3,
           dim=128, n_heads=4, n_kv_heads=1, head_dim=48, ffn_hidden_dim=344,
           batch=3, tokens=5, rope_theta=1e6, norm_eps=1e-6,
           rope_layout="interleaved"),
    Config(name="gqa_interleaved_rope32", seed=4,
           dim=128, n_heads=8, n_kv_heads=2, head_dim=16, ffn_hidden_dim=320,
           batch=2, tokens=13, rope_theta=500000.0, norm_eps=1e-5,
           rope_layout="interleaved",
           rope_scaling=Llama3RopeScaling(factor=32.0, low_freq_factor=1.0,
                                          high_freq_factor=4.0,
                                          original_max_position_embeddings=32)),
]


# ----------------------------------------------------------------------------
# Random parameters (float32, as a real checkpoint would hold them)
# ----------------------------------------------------------------------------

def linear_weight(out_features, in_features):
    """PyTorch Linear layout [out, in], entries ~ N(0, 1/in_features)."""
    std = 1.0 / math.sqrt(in_features)
    return torch.randn(out_features, in_features, dtype=torch.float32) * std


def norm_weight(dim):
    return 1.0 + 0.1 * torch.randn(dim, dtype=torch.float32)


def make_parameters(cfg):
    """Returns (weights, input), all float32; consumes the global torch RNG."""
    q_dim = cfg.n_heads * cfg.head_dim
    kv_dim = cfg.n_kv_heads * cfg.head_dim
    weights = {
        "attention_norm.weight": norm_weight(cfg.dim),
        "attention.wq": linear_weight(q_dim, cfg.dim),
        "attention.wk": linear_weight(kv_dim, cfg.dim),
        "attention.wv": linear_weight(kv_dim, cfg.dim),
        "attention.wo": linear_weight(cfg.dim, q_dim),
        "ffn_norm.weight": norm_weight(cfg.dim),
        "feed_forward.w1": linear_weight(cfg.ffn_hidden_dim, cfg.dim),
        "feed_forward.w3": linear_weight(cfg.ffn_hidden_dim, cfg.dim),
        "feed_forward.w2": linear_weight(cfg.dim, cfg.ffn_hidden_dim),
    }
    x = torch.randn(cfg.batch, cfg.tokens, cfg.dim, dtype=torch.float32)
    return weights, x


# ----------------------------------------------------------------------------
# Building blocks (float64)
# ----------------------------------------------------------------------------

def rms_norm(x, weight, eps):
    return x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight


def rope_inv_freq(cfg):
    """inv_freq_j = theta^(-2j/head_dim), with optional LLaMA-3.1 scaling."""
    exponents = torch.arange(0, cfg.head_dim, 2, dtype=torch.float64) / cfg.head_dim
    freqs = 1.0 / (cfg.rope_theta ** exponents)
    if cfg.rope_scaling is not None:
        freqs = apply_llama3_scaling(freqs, cfg.rope_scaling)
    return freqs


def apply_llama3_scaling(freqs, s):
    old_ctx = s.original_max_position_embeddings
    low_freq_wavelen = old_ctx / s.low_freq_factor
    high_freq_wavelen = old_ctx / s.high_freq_factor
    scaled = []
    for freq in freqs.tolist():
        wavelen = 2 * math.pi / freq
        if wavelen < high_freq_wavelen:
            scaled.append(freq)
        elif wavelen > low_freq_wavelen:
            scaled.append(freq / s.factor)
        else:
            smooth = (old_ctx / wavelen - s.low_freq_factor) / (
                s.high_freq_factor - s.low_freq_factor)
            scaled.append((1 - smooth) * freq / s.factor + smooth * freq)
    return torch.tensor(scaled, dtype=torch.float64)


def rope_angles(inv_freq, tokens):
    """angle[t, j] = t * inv_freq[j], shape [tokens, head_dim/2]."""
    positions = torch.arange(tokens, dtype=torch.float64)
    return torch.outer(positions, inv_freq)


def rope_interleaved_complex(x, angles):
    """Meta's apply_rotary_emb: pairs (2j, 2j+1) rotated as complex numbers.

    x: [batch, tokens, heads, head_dim]; angles: [tokens, head_dim/2].
    """
    freqs_cis = torch.polar(torch.ones_like(angles), angles)
    x_complex = torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2))
    rotated = x_complex * freqs_cis[None, :, None, :]
    return torch.view_as_real(rotated).flatten(start_dim=3)


def rope_interleaved_cos_sin(x, angles):
    """Same rotation as rope_interleaved_complex, written with cos/sin."""
    cos = torch.cos(angles)[None, :, None, :]
    sin = torch.sin(angles)[None, :, None, :]
    even, odd = x[..., 0::2], x[..., 1::2]
    out_even = even * cos - odd * sin
    out_odd = even * sin + odd * cos
    return torch.stack((out_even, out_odd), dim=-1).flatten(start_dim=3)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope_half_split(x, angles):
    """Hugging Face layout: pairs (j, j + head_dim/2)."""
    emb = torch.cat((angles, angles), dim=-1)
    cos = torch.cos(emb)[None, :, None, :]
    sin = torch.sin(emb)[None, :, None, :]
    return x * cos + rotate_half(x) * sin


def apply_rope(x, angles, layout):
    if layout == "interleaved":
        rotated = rope_interleaved_complex(x, angles)
        check_close(rotated, rope_interleaved_cos_sin(x, angles), 1e-12,
                    "interleaved RoPE: complex vs cos/sin")
        return rotated
    if layout == "half_split":
        return rope_half_split(x, angles)
    raise ValueError(f"unknown rope layout {layout!r}")


def check_close(actual, expected, tol, what):
    err = (actual - expected).abs().max().item()
    assert err <= tol, f"self-check failed: {what}: max abs error {err:.3e} > {tol:.0e}"


# ----------------------------------------------------------------------------
# The transformer block
# ----------------------------------------------------------------------------

def attention(cfg, x, w, inv_freq, record):
    """Grouped-query causal self-attention at positions 0..tokens-1."""
    B, T = cfg.batch, cfg.tokens
    n_rep = cfg.n_heads // cfg.n_kv_heads

    q = (x @ w["attention.wq"].T).view(B, T, cfg.n_heads, cfg.head_dim)
    k = (x @ w["attention.wk"].T).view(B, T, cfg.n_kv_heads, cfg.head_dim)
    v = (x @ w["attention.wv"].T).view(B, T, cfg.n_kv_heads, cfg.head_dim)
    record["attention.q"] = q
    record["attention.k"] = k
    record["attention.v"] = v

    angles = rope_angles(inv_freq, T)
    q = apply_rope(q, angles, cfg.rope_layout)
    k = apply_rope(k, angles, cfg.rope_layout)
    record["attention.q_rope"] = q
    record["attention.k_rope"] = k

    # Query head h uses kv head h // n_rep.
    k = k.repeat_interleave(n_rep, dim=2)
    v = v.repeat_interleave(n_rep, dim=2)

    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, heads, T, head_dim]
    scores = q @ k.transpose(-2, -1) / math.sqrt(cfg.head_dim)
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    scores = scores.masked_fill(future, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    context = probs @ v
    record["attention.probs"] = probs

    if hasattr(F, "scaled_dot_product_attention"):
        check_close(context, F.scaled_dot_product_attention(q, k, v, is_causal=True),
                    1e-10, "attention vs scaled_dot_product_attention")

    context = context.transpose(1, 2).reshape(B, T, cfg.n_heads * cfg.head_dim)
    record["attention.context"] = context
    return context @ w["attention.wo"].T


def feed_forward(x, w, record):
    hidden = F.silu(x @ w["feed_forward.w1"].T) * (x @ w["feed_forward.w3"].T)
    record["feed_forward.hidden"] = hidden
    return hidden @ w["feed_forward.w2"].T


def transformer_block(cfg, x, w, inv_freq):
    """Returns a dict of every intermediate tensor, in execution order."""
    record = {}
    normed = rms_norm(x, w["attention_norm.weight"], cfg.norm_eps)
    record["attention_norm.out"] = normed
    attn_out = attention(cfg, normed, w, inv_freq, record)
    record["attention.out"] = attn_out
    h = x + attn_out
    record["h"] = h
    normed = rms_norm(h, w["ffn_norm.weight"], cfg.norm_eps)
    record["ffn_norm.out"] = normed
    ffn_out = feed_forward(normed, w, record)
    record["feed_forward.out"] = ffn_out
    record["output"] = h + ffn_out
    return record


# ----------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------

def config_entries(cfg):
    s = cfg.rope_scaling
    values = {
        "config.dim": cfg.dim,
        "config.n_heads": cfg.n_heads,
        "config.n_kv_heads": cfg.n_kv_heads,
        "config.head_dim": cfg.head_dim,
        "config.ffn_hidden_dim": cfg.ffn_hidden_dim,
        "config.batch": cfg.batch,
        "config.tokens": cfg.tokens,
        "config.rope_theta": cfg.rope_theta,
        "config.norm_eps": cfg.norm_eps,
        "config.rope_layout": ROPE_LAYOUTS[cfg.rope_layout],
        "config.rope_scaling": 0 if s is None else 1,
        "config.rope_scaling.factor": 0 if s is None else s.factor,
        "config.rope_scaling.low_freq_factor": 0 if s is None else s.low_freq_factor,
        "config.rope_scaling.high_freq_factor": 0 if s is None else s.high_freq_factor,
        "config.rope_scaling.original_max_position_embeddings":
            0 if s is None else s.original_max_position_embeddings,
    }
    return {name: torch.tensor(float(v), dtype=torch.float64) for name, v in values.items()}


def make_golden(cfg):
    torch.manual_seed(cfg.seed)
    weights, x = make_parameters(cfg)
    inv_freq = rope_inv_freq(cfg)
    record = transformer_block(cfg, x.double(),
                               {k: w.double() for k, w in weights.items()}, inv_freq)

    entries = config_entries(cfg)
    entries.update(weights)
    entries["input"] = x
    entries.update({name: t.float() for name, t in record.items()})
    entries["rope.inv_freq"] = inv_freq
    return entries


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", default=os.path.dirname(os.path.abspath(__file__)),
                        help="directory for the .lbg files (default: this script's directory)")
    args = parser.parse_args()

    # One thread keeps float64 reductions in a fixed order, so reruns are byte-identical.
    torch.set_num_threads(1)
    os.makedirs(args.out_dir, exist_ok=True)
    for cfg in CONFIGS:
        path = os.path.join(args.out_dir, f"{cfg.name}.lbg")
        write_lbg(path, make_golden(cfg))
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
