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

For the configs in HF_CONFIGS it also writes the same weights as a Hugging Face checkpoint folder
hf_<name>/ (config.json + safetensors, optionally sharded with model.safetensors.index.json), with
wq/wk rows permuted as Hugging Face's conversion script does for its rotate_half RoPE. Before
writing, it checks that a rotate_half forward on the permuted weights gives the logits of the
interleaved forward on the original ones, so the .ids golden is the expected output for both.

Usage: /usr/bin/python3 tests/golden/make_generation_golden.py
       /usr/bin/python3 tests/golden/make_generation_golden.py --vocab32000 OUT.bin
         (a dim-64, 2-layer checkpoint with vocab 32000 for comparing with llama2.c's run and
          LLaMA-2's tokenizer; ~9 MB, not for the repository)
"""
import json
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


# name of a CONFIGS entry, number of safetensors shards
HF_CONFIGS = [("gqa_untied", 1), ("mqa_tied_3layers", 2)]


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


def permute_for_rotate_half(w, heads):
    """Hugging Face's permutation of a wq/wk matrix [heads * head_dim, dim]: within each head, the
    rows (2j, 2j+1) of Meta's interleaved pairs move to (j, j + head_dim/2)."""
    rows, cols = w.shape
    return w.view(heads, rows // heads // 2, 2, cols).transpose(1, 2).reshape(rows, cols)


def rope_rotate_half(x, positions):
    """x: [T, heads, head_dim]; Hugging Face's form: x*cos + rotate_half(x)*sin with the angles of
    pair j repeated in both halves."""
    head_dim = x.shape[-1]
    freqs = 1.0 / ROPE_THETA ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = positions[:, None].double() * freqs[None, :]
    angles = torch.cat([angles, angles], dim=-1)[:, None, :]   # [T, 1, head_dim]
    half = head_dim // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * torch.cos(angles) + rotated * torch.sin(angles)


def hf_forward(hf, tokens, heads, kv_heads, layers, tied):
    """Full-sequence forward over a Hugging Face state dict (float64), logits [T, vocab]."""
    d = {k: v.double() for k, v in hf.items()}
    T = len(tokens)
    dim = d["model.embed_tokens.weight"].shape[1]
    head_dim = dim // heads
    positions = torch.arange(T)
    x = d["model.embed_tokens.weight"][torch.tensor(tokens)]
    mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    for l in range(layers):
        p = "model.layers.%d." % l
        h = rms_norm(x, d[p + "input_layernorm.weight"])
        q = (h @ d[p + "self_attn.q_proj.weight"].T).view(T, heads, head_dim)
        k = (h @ d[p + "self_attn.k_proj.weight"].T).view(T, kv_heads, head_dim)
        v = (h @ d[p + "self_attn.v_proj.weight"].T).view(T, kv_heads, head_dim)
        q, k = rope_rotate_half(q, positions), rope_rotate_half(k, positions)
        group = heads // kv_heads
        k = k.repeat_interleave(group, dim=1)
        v = v.repeat_interleave(group, dim=1)
        scores = torch.einsum("thd,shd->hts", q, k) / math.sqrt(head_dim) + mask
        attn = torch.einsum("hts,shd->thd", torch.softmax(scores, dim=-1), v).reshape(T, dim)
        x = x + attn @ d[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, d[p + "post_attention_layernorm.weight"])
        gate = h @ d[p + "mlp.gate_proj.weight"].T
        x = x + ((gate * torch.sigmoid(gate)) * (h @ d[p + "mlp.up_proj.weight"].T)) @ \
            d[p + "mlp.down_proj.weight"].T
    head = d["model.embed_tokens.weight"] if tied else d["lm_head.weight"]
    return rms_norm(x, d["model.norm.weight"]) @ head.T


def hf_state_dict(w, layers, heads, kv_heads, tied):
    hf = {"model.embed_tokens.weight": w["token_embedding"], "model.norm.weight": w["rms_final"]}
    for l in range(layers):
        p = "model.layers.%d." % l
        hf[p + "input_layernorm.weight"] = w["rms_att"][l]
        hf[p + "self_attn.q_proj.weight"] = permute_for_rotate_half(w["wq"][l], heads)
        hf[p + "self_attn.k_proj.weight"] = permute_for_rotate_half(w["wk"][l], kv_heads)
        hf[p + "self_attn.v_proj.weight"] = w["wv"][l]
        hf[p + "self_attn.o_proj.weight"] = w["wo"][l]
        hf[p + "post_attention_layernorm.weight"] = w["rms_ffn"][l]
        hf[p + "mlp.gate_proj.weight"] = w["w1"][l]
        hf[p + "mlp.up_proj.weight"] = w["w3"][l]
        hf[p + "mlp.down_proj.weight"] = w["w2"][l]
    if not tied:
        hf["lm_head.weight"] = w["wcls"]
    return hf


def write_safetensors(path, tensors):
    """The safetensors layout, written by hand: uint64 header length, JSON header (padded with
    spaces to a multiple of 8), then the float32 data of each tensor back to back."""
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, tensor in tensors.items():
        blob = tensor.contiguous().float().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def write_hf_checkpoint(folder, dim, hidden, layers, heads, kv_heads, vocab, seq, tied, w, shards):
    hf = hf_state_dict(w, layers, heads, kv_heads, tied)
    tokens = PROMPT + [3, 9]
    meta_logits = forward(w, tokens, heads, kv_heads)
    hf_logits = hf_forward(hf, tokens, heads, kv_heads, layers, tied)
    assert torch.allclose(meta_logits, hf_logits, rtol=0, atol=1e-9), "permutation mismatch"
    os.makedirs(folder, exist_ok=True)
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
        "hidden_size": dim, "intermediate_size": hidden, "num_hidden_layers": layers,
        "num_attention_heads": heads, "num_key_value_heads": kv_heads, "vocab_size": vocab,
        "max_position_embeddings": seq, "rms_norm_eps": NORM_EPS, "rope_theta": ROPE_THETA,
        "rope_scaling": None, "tie_word_embeddings": tied, "attention_bias": False,
        "torch_dtype": "float32", "bos_token_id": 1, "eos_token_id": 2,
    }
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    names = list(hf)
    if shards == 1:
        write_safetensors(os.path.join(folder, "model.safetensors"), hf)
        return
    weight_map = {}
    for shard in range(shards):
        file = "model-%05d-of-%05d.safetensors" % (shard + 1, shards)
        part = names[shard::shards]
        write_safetensors(os.path.join(folder, file), {n: hf[n] for n in part})
        weight_map.update({n: file for n in part})
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 4 * sum(t.numel() for t in hf.values())},
                   "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
        f.write("\n")


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
        for hf_name, shards in HF_CONFIGS:
            if hf_name == name:
                write_hf_checkpoint(os.path.join(HERE, "hf_" + name), dim, hidden, layers, heads,
                                    kv_heads, vocab, seq, tied, w, shards)
                print("  wrote hf_%s (%d shard%s)" % (name, shards, "s" if shards > 1 else ""))


if __name__ == "__main__":
    main()
