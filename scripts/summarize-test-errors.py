#!/usr/bin/env python3
"""Largest error per comparison label in a LLAMABLOCKS_TEST_REPORT file.

    LLAMABLOCKS_TEST_REPORT=/tmp/errors.tsv ctest --test-dir build/release
    scripts/summarize-test-errors.py /tmp/errors.tsv
"""
import sys
from collections import defaultdict


def main(path):
    worst = defaultdict(lambda: [0, 0.0, 0.0, 0.0])  # count, max nmse, max abs error, threshold
    with open(path) as report:
        for line in report:
            label, nmse, max_abs, threshold = line.rstrip("\n").split("\t")
            entry = worst[label]
            entry[0] += 1
            entry[1] = max(entry[1], float(nmse))
            entry[2] = max(entry[2], float(max_abs))
            entry[3] = float(threshold)
    print(f"{'comparison':44} {'runs':>6} {'max nmse':>10} {'max |err|':>10} {'threshold':>10}")
    for label in sorted(worst):
        count, nmse, max_abs, threshold = worst[label]
        print(f"{label:44} {count:6d} {nmse:10.2e} {max_abs:10.2e} {threshold:10.1e}")


if __name__ == "__main__":
    main(sys.argv[1])
