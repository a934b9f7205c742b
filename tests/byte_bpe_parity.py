#!/usr/bin/env python3
"""Parity of llamablocks' ByteBpeTokenizer with Hugging Face tokenizers (Rust).

Reads the vocabulary (tokenizer.ggml.tokens, .merges, .token_type, BOS/EOS) of a GGUF file whose
tokenizer is byte-level BPE (SmolLM2's), writes it to a dump file for the C++ tool
tests/tools/byte_bpe_encode_lines, and builds from the same arrays a tokenizers.Tokenizer: BPE
model, the pre-tokenizer under test, the control tokens as special tokens. Every line of a text
file, blocks of 8 consecutive lines joined by '\\n', hand-written hard cases (numbers,
contractions, CJK, emoji, runs of spaces, newlines, tabs, special tokens) and random strings over
the characters where the regexes branch are encoded by both
(no BOS/EOS) and the ids compared, for each of the configurations

    gpt2, llama3, llama3 with ignore_merges, smollm (the one SmolLM2 itself uses).

The vocabulary is SmolLM2's in every configuration: the pre-tokenizers differ only in how they
split, which the comparison checks on the same merges.

Usage:
    python3 tests/byte_bpe_parity.py ENCODE_LINES MODEL_GGUF TEXT

Needs the PyPI packages tokenizers and gguf. Exit status: 0 when every line agrees, 1 on a
mismatch or an error, 77 (CTest's SKIP_RETURN_CODE) when a package or an input file is missing.
"""

import os
import subprocess
import sys
import tempfile

SKIP = 77

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

HARD_CASES = [
    "", " ", "  ", "   a", "a   ", "a  b   c    d", "\ttab\tseparated\t", " \t x", "x \t ",
    "1", "12", "123", "1234", "12345", "a1b22c333d4444e55555", " 1 22  333   4444", "3.14159",
    "1,000,000", "-42", "\u0661\u0662\u0663 \u00bd \u2163 \u2460\u2461",
    "I'm you're we've he'll she'd it's don't", "I'M YOU'RE WE'VE HE'LL SHE'D IT'S DON'T",
    "'s 't 're 've 'm 'll 'd '' ''s 'x", "o'clock rock'n'roll 'tis", "\u2019s it\u2019s",
    "'\u017ft '\u017f", "\u4f60\u597d\uff0c\u4e16\u754c\u3002", "\u3053\u3093\u306b\u3061\u306f "
    "\uc548\ub155\ud558\uc138\uc694", "\u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd",
    "emoji \U0001f600\U0001f680 \U0001f468\u200d\U0001f469\u200d\U0001f467 \U0001f44d\U0001f3fd",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber \u0130stanbul",
    "line one\nline two", "a\n\nb", "a \n b", "\n", "\n\n\n", "\r\n", "a\r\nb\r\n", " \n ",
    "x  \n  y", "end with spaces   \n", ".\n\n", "!!!\n\n  ok", "\t\n\t", "a\u00a0b\u3000c\u2009d",
    "\u0085\u2028\u2029", "\x1c\x1d\x1e\x1f", "\x00\x01\x7f", "\u200b\ufeff", "    def f(x):\n"
    "        return x * 2  # comment", "https://example.com/a?b=c&d=e", "<html><body>",
    "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n", "<|endoftext|><|endoftext|>",
    "a<|im_start|>b", "<|im_start", "<repo_name>x<file_sep>", "$$$ %%% ^^^", "\U00010400\U0001d400",
]


# Random strings over the characters where the regexes branch: spaces of several kinds, line
# breaks, digits of several scripts, letters (those of the contractions in both cases, the long s
# that case-folds to s, a combining mark), apostrophes, punctuation, CJK, emoji, special tokens.
FUZZ_ALPHABET = (list(" \t\n\r\x0b\x0c\x1c\x85\xa0\u2009\u3000") + list("0159\u0663\u00bd\u2163") +
                 list("aZsStTrReEvVmMlLdD\u017f\u00e9\u0301\u4e16\u03a9") +
                 list("''.,!?-_<>|$\u2019") + ["\U0001f600", "<|im_start|>", "<|endoftext|>"])


def fuzz_cases(count, seed=1234):
    import random
    rng = random.Random(seed)
    return ["".join(rng.choice(FUZZ_ALPHABET) for _ in range(rng.randint(1, 24)))
            for _ in range(count)]


def read_lines(path):
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line.decode("utf-8") for line in lines]


def escape(text):
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


def write_dump(path, tokens, merges, bos, eos, unk, special):
    with open(path, "wb") as f:
        for name, records in (("tokens", tokens), ("merges", merges)):
            f.write(f"{name} {len(records)}\n".encode())
            for record in records:
                data = record.encode("utf-8")
                f.write(f"{len(data)} ".encode() + data + b"\n")
        f.write(f"bos {bos}\neos {eos}\nunk {unk}\nspecial {len(special)} {' '.join(map(str, special))}\n"
                .encode())


def hf_tokenizer(tokens, merges, unk, special, config):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    vocab = {}
    for i, token in enumerate(tokens):
        vocab.setdefault(token, i)
    pairs = [tuple(merge.split(" ")) for merge in merges]
    model = models.BPE(vocab, pairs, unk_token=tokens[unk] if unk >= 0 else None, fuse_unk=False,
                       ignore_merges=(config == "llama3-ignore-merges"))
    tokenizer = Tokenizer(model)
    if config == "gpt2":
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    elif config.startswith("llama3"):
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([tokens[i] for i in special])
    return tokenizer


def main(argv):
    if len(argv) != 4:
        sys.stderr.write(__doc__)
        return 1
    tool, model_path, text_path = argv[1:]
    try:
        import gguf  # noqa: F401
        import tokenizers  # noqa: F401
    except ImportError as e:
        print(f"SKIP: {e} (pip install tokenizers gguf)")
        return SKIP
    for path in (model_path, text_path):
        if not os.path.exists(path):
            print(f"SKIP: {path} not found")
            return SKIP
    from gguf import GGUFReader
    reader = GGUFReader(model_path)
    fields = reader.fields
    model_name = fields["tokenizer.ggml.model"].contents()
    if model_name != "gpt2":
        print(f"{model_path}: tokenizer.ggml.model is {model_name!r}, not 'gpt2'")
        return 1
    tokens = fields["tokenizer.ggml.tokens"].contents()
    merges = fields["tokenizer.ggml.merges"].contents()
    token_types = fields["tokenizer.ggml.token_type"].contents()
    bos = int(fields["tokenizer.ggml.bos_token_id"].contents())
    eos = int(fields["tokenizer.ggml.eos_token_id"].contents())
    unk_field = fields.get("tokenizer.ggml.unknown_token_id")
    unk = int(unk_field.contents()) if unk_field is not None else -1
    special = [i for i, t in enumerate(token_types) if t == 3]  # CONTROL
    print(f"{model_path}: {len(tokens)} tokens, {len(merges)} merges, {len(special)} control tokens,"
          f" pre {fields['tokenizer.ggml.pre'].contents()!r}")

    lines = read_lines(text_path)
    blocks = ["\n".join(lines[i:i + 8]) for i in range(0, len(lines), 8)]
    fuzz = fuzz_cases(20000)
    inputs = lines + blocks + HARD_CASES + fuzz
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        dump = os.path.join(tmp, "vocab.txt")
        write_dump(dump, tokens, merges, bos, eos, unk, special)
        for config in ("gpt2", "llama3", "llama3-ignore-merges", "smollm"):
            reference = hf_tokenizer(tokens, merges, unk, special, config)
            expected = [e.ids for e in reference.encode_batch(inputs, add_special_tokens=False)]
            args = [tool, dump, config.split("-")[0]]
            if config == "llama3-ignore-merges":
                args.append("--ignore-merges")
            stdin = "".join(escape(text) + "\n" for text in inputs).encode("utf-8")
            result = subprocess.run(args, input=stdin, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, check=False)
            if result.returncode != 0:
                sys.stderr.write(result.stderr.decode("utf-8", "replace"))
                print(f"{config}: {tool} failed with exit status {result.returncode}")
                return 1
            got = [[int(x) for x in line.split()] for line in
                   result.stdout.decode().split("\n")[:len(inputs)]]
            mismatches = [i for i in range(len(inputs)) if got[i] != expected[i]]
            for i in mismatches[:10]:
                print(f"{config}: MISMATCH {inputs[i]!r}\n  hf:          {expected[i]}\n"
                      f"  llamablocks: {got[i]}")
            print(f"{config}: {len(inputs)} inputs ({len(lines)} lines, {len(blocks)} blocks of "
                  f"8 lines, {len(HARD_CASES)} hard cases, {len(fuzz)} random strings), {sum(map(len, expected))} tokens, "
                  f"{len(mismatches)} mismatches")
            failures += len(mismatches)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
