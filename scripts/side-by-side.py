#!/usr/bin/env python3
"""Tables of llamablocks against llama.cpp from one scripts/run-bench.sh folder.

usage: scripts/side-by-side.py OUT_DIR

Reads every llama_bench-*.json (ours) and llama.cpp-*.json in OUT_DIR, groups the timed runs by
(weight type, threads, test) over all rounds, and prints per group: our median tokens/s, llama.cpp's
median, the ratio of the two medians, and the range of the per-round ratios (ours in round K against
llama.cpp in round K, the pairs that shared the machine's state when ROUNDS > 1). Tokens/s are
taken per timed run: ours from samples_s (tokens ÷ seconds), llama.cpp from samples_ts.
"""
import glob
import json
import os
import re
import statistics
import sys
from collections import defaultdict


def round_of(path):
    match = re.search(r"-round(\d+)\.json$", path)
    return int(match.group(1)) if match else 1


def test_name(n_prompt, n_gen):
    return f"pp{n_prompt}" if n_gen == 0 else f"tg{n_gen}"


def ours(folder):
    """{(type, threads, test): {round: [tokens/s per run]}} from llama_bench JSON files."""
    runs = defaultdict(lambda: defaultdict(list))
    for path in glob.glob(os.path.join(folder, "llama_bench-*.json")):
        with open(path) as handle:
            document = json.load(handle)
        for result in document["results"]:
            tokens = result["n_prompt"] + result["n_gen"]
            key = (result["weight_type"], result["threads"], result["test"])
            runs[key][round_of(path)] += [tokens / seconds for seconds in result["samples_s"]]
    return runs


def llama_cpp(folder):
    """The same from llama.cpp's llama-bench -o json; the type is the last word of model_type."""
    runs = defaultdict(lambda: defaultdict(list))
    for path in glob.glob(os.path.join(folder, "llama.cpp-*.json")):
        with open(path) as handle:
            document = json.load(handle)
        for result in document:
            weight_type = result["model_type"].split()[-1].lower()
            key = (weight_type, result["n_threads"], test_name(result["n_prompt"], result["n_gen"]))
            runs[key][round_of(path)] += result["samples_ts"]
    return runs


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    folder = sys.argv[1]
    mine, theirs = ours(folder), llama_cpp(folder)
    order = {"f32": 0, "bf16": 1, "f16": 2, "q8_0": 3}
    keys = sorted(set(mine) & set(theirs), key=lambda k: (k[1], order.get(k[0], 9), k[2]))
    if not keys:
        sys.exit(f"no (type, threads, test) measured by both in {folder}")
    print("| weights | threads | test | ours t/s (median, n) | llama.cpp t/s (median, n) | ratio | "
          "per-round ratios |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    for key in keys:
        a = [v for runs in mine[key].values() for v in runs]
        b = [v for runs in theirs[key].values() for v in runs]
        paired = sorted(statistics.median(mine[key][r]) / statistics.median(theirs[key][r])
                        for r in set(mine[key]) & set(theirs[key]))
        spread = f"{paired[0]:.2f}–{paired[-1]:.2f}" if len(paired) > 1 else "—"
        print(f"| {key[0]} | {key[1]} | {key[2]} | {statistics.median(a):.2f} ({len(a)}) | "
              f"{statistics.median(b):.2f} ({len(b)}) | "
              f"**{statistics.median(a) / statistics.median(b):.2f}** | {spread} |")


if __name__ == "__main__":
    main()
