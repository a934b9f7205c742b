#!/usr/bin/env python3
"""Every per-module benchmark result as a fraction of the machine's limits.

usage: scripts/bench-fractions.py MACHINE_LIMITS.json MODULE.json [MODULE.json ...] [--markdown]

MACHINE_LIMITS.json is bench_machine_limits' Google Benchmark JSON; each MODULE.json is the JSON of a
bench_<module> run (--benchmark_out=FILE --benchmark_out_format=json) taken on the same machine,
ideally in the same run (scripts/run-bench.sh does both). For each result it prints:

  bytes/s  and  bytes/s ÷ the 1 GiB read bandwidth  (BM_ReadBandwidth, 4 KiB pages, same threads)
  FLOP/s   and  FLOP/s ÷ the peak FMA rate          (BM_PeakFMA, same threads)

The thread count of a module run is its context's `llamablocks_threads`. A decode-sized result
whose bytes fit in the caches can exceed 1.0 of the DRAM bandwidth: the fraction says how close an
operation is to streaming from DRAM, not that it streamed from DRAM.
"""
import json
import re
import sys


def thread_count(name):
    match = re.search(r"/threads:(\d+)", name)
    return int(match.group(1)) if match else None


def machine_limits(path):
    with open(path) as f:
        benchmarks = json.load(f)["benchmarks"]
    read, fma = {}, {}
    for b in benchmarks:
        name, threads = b["name"], thread_count(b["name"])
        if name.startswith("BM_ReadBandwidth") and "/bytes:1073741824/" in name and "/huge_pages:0/" in name:
            read[threads] = max(read.get(threads, 0.0), b["bytes_per_second"])
        elif name.startswith("BM_PeakFMA"):
            fma[threads] = max(fma.get(threads, 0.0), b["flops"])
    if not read or not fma:
        sys.exit(f"{path}: no BM_ReadBandwidth 1 GiB or BM_PeakFMA result")
    return read, fma


def si(value, unit):
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f} {prefix}{unit}"
    return f"{value:.2f} {unit}"


def main(argv):
    markdown = "--markdown" in argv
    paths = [a for a in argv[1:] if a != "--markdown"]
    if len(paths) < 2:
        sys.exit(__doc__)
    read, fma = machine_limits(paths[0])
    rows = []
    for path in paths[1:]:
        with open(path) as f:
            run = json.load(f)
        threads = int(run["context"].get("llamablocks_threads", 1))
        if threads not in read or threads not in fma:
            sys.exit(f"{path}: ran with {threads} threads; {paths[0]} has no limit for that count")
        for b in run["benchmarks"]:
            if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
                continue
            bytes_rate, flop_rate = b.get("bytes_per_second"), b.get("flops")
            name = b["name"].replace("/process_time/real_time", "")
            rows.append((name, threads,
                         si(bytes_rate, "B/s") if bytes_rate else "",
                         f"{bytes_rate / read[threads]:.2f}" if bytes_rate else "",
                         si(flop_rate, "FLOP/s") if flop_rate else "",
                         f"{flop_rate / fma[threads]:.3f}" if flop_rate else ""))
    header = ("benchmark", "threads", "bytes/s", "÷ DRAM read", "FLOP/s", "÷ peak FMA")
    limits = ", ".join(f"{t} thread(s): read {si(read[t], 'B/s')}, peak {si(fma[t], 'FLOP/s')}"
                       for t in sorted(read) if t in fma)
    if markdown:
        print(f"Limits from {paths[0]}: {limits}\n")
        print("| " + " | ".join(header) + " |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for row in rows:
            print("| " + " | ".join(str(c) for c in row) + " |")
    else:
        print(f"limits: {limits}")
        width = max(len(r[0]) for r in rows) if rows else 10
        print(f"{header[0]:<{width}} {header[1]:>7} {header[2]:>14} {header[3]:>11} {header[4]:>18} {header[5]:>10}")
        for r in rows:
            print(f"{r[0]:<{width}} {r[1]:>7} {r[2]:>14} {r[3]:>11} {r[4]:>18} {r[5]:>10}")


if __name__ == "__main__":
    main(sys.argv)
