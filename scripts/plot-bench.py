#!/usr/bin/env python3
"""Plots end-to-end tokens/s from llama_bench JSON (and llama.cpp llama-bench JSON) as an SVG.

    scripts/plot-bench.py OUT.svg RESULT.json [RESULT.json ...] [--limits machine_limits.json]
                          [--label FILE=NAME ...] [--title TEXT] [--png]

Two panels: prefill (ppN) and decode (tgN) tokens/s, one group of bars per test and thread count,
one bar per input file, whiskers from min to max (llama_bench) or +-1 standard deviation (llama.cpp,
which reports no min/max). Files whose series have the same name (the rounds of one type) are one
bar: the median of their medians, whiskers from the lowest to the highest. With --limits (bench_machine_limits' --benchmark_out JSON), the decode
panel also shows, per thread count, the ceiling the measured DRAM read bandwidth sets: read bytes/s
divided by the weight bytes a decode step reads (from the llama_bench file).

Standard library only for the SVG (matplotlib is not installed everywhere this runs); --png also
draws a PNG with Pillow (Debian's python3-pil).
"""
import argparse
import json
import math
import os
import re
import statistics
import sys

from plot_canvas import Canvas

COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]

def load_series(path, label):
    """Returns (label, rows, weight_bytes_per_token); rows: dicts test, threads, median, low, high."""
    with open(path) as f:
        data = json.load(f)
    rows = []
    decode_bytes = None
    if isinstance(data, dict) and data.get("implementation") == "llamablocks":
        name = label or "llamablocks {} ({})".format(
            data["model"]["shape"], data["results"][0]["weight_type"] if data["results"] else "")
        for r in data["results"]:
            t = r["tokens_per_second"]
            rows.append(dict(test=r["test"], threads=r["threads"], median=t["median"],
                             low=t["min"], high=t["max"]))
            if r.get("weight_bytes_per_token"):
                decode_bytes = r["weight_bytes_per_token"]
        return name, rows, decode_bytes
    if isinstance(data, list):  # llama.cpp llama-bench -o json
        name = label or "llama.cpp {}".format(data[0].get("model_type", "") if data else "")
        for r in data:
            if r.get("n_prompt", 0) > 0 and r.get("n_gen", 0) > 0:
                test = "pp{}+tg{}".format(r["n_prompt"], r["n_gen"])
            elif r.get("n_prompt", 0) > 0:
                test = "pp{}".format(r["n_prompt"])
            else:
                test = "tg{}".format(r["n_gen"])
            if r.get("n_depth", 0):
                test += " @ d{}".format(r["n_depth"])
            mean, std = r["avg_ts"], r.get("stddev_ts", 0.0)
            rows.append(dict(test=test, threads=r["n_threads"], median=mean,
                             low=mean - std, high=mean + std))
        return name, rows, None
    sys.exit("plot-bench: {}: neither llama_bench nor llama-bench JSON".format(path))


def read_bandwidth(path):
    """{threads: bytes/s} of the largest buffer BM_ReadBandwidth read (on 4 KiB or huge pages,
    whichever was faster)."""
    with open(path) as f:
        data = json.load(f)
    best = {}
    for b in data.get("benchmarks", []):
        m = re.match(r"BM_ReadBandwidth<[^>]*>/bytes:(\d+)(?:/huge_pages:\d)?/threads:(\d+)",
                     b.get("name", ""))
        if not m or b.get("run_type") == "aggregate":
            continue
        candidate = (int(m.group(1)), b["bytes_per_second"])
        threads = int(m.group(2))
        best[threads] = max(best.get(threads, candidate), candidate)
    return {t: v[1] for t, v in best.items()}


def nice_max(value):
    """A round axis maximum at or above value, and its tick step."""
    if value <= 0:
        return 1.0, 0.2
    exponent = math.floor(math.log10(value))
    for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        top = m * 10 ** exponent
        if top >= value:
            break
    step = top / 5
    return top, step


def tick_label(value, step):
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    return "{:.{}f}".format(value, decimals)


def fmt(value):
    if value >= 100:
        return "{:.0f}".format(value)
    if value >= 10:
        return "{:.1f}".format(value)
    return "{:.2f}".format(value)


def panel(canvas, x0, y0, width, height, title, groups, series, ceilings):
    """Draws one bar panel. groups: [(test, threads)], series: [(name, {key: row})], ceilings:
    {threads: tokens/s} drawn as dashed lines."""
    values = [row["high"] for _, rows in series for row in rows.values() if any(
        rows.get(key) is row for key in groups)] + list(ceilings.values())
    top, step = nice_max(max(values) if values else 1)
    plot_left, plot_bottom = x0 + 60, y0 + height - 50
    plot_width, plot_height = width - 75, height - 100
    canvas.text(plot_left, y0 + 20, title, size=14, bold=True)
    canvas.text(plot_left, plot_bottom - plot_height - 12, "tokens / s", size=11, color="#555")
    ticks = int(round(top / step))
    for i in range(ticks + 1):
        v = i * step
        y = plot_bottom - plot_height * v / top
        canvas.line(plot_left, y, plot_left + plot_width, y, color="#ddd")
        canvas.text(plot_left - 6, y + 4, tick_label(v, step), anchor="end")
    if not groups:
        return
    group_width = plot_width / len(groups)
    bar_width = group_width * 0.8 / max(1, len(series))
    for g, key in enumerate(groups):
        gx = plot_left + g * group_width + group_width * 0.1
        for s, (_, rows) in enumerate(series):
            row = rows.get(key)
            if row is None:
                continue
            x = gx + s * bar_width
            h = plot_height * row["median"] / top
            canvas.rect(x, plot_bottom - h, bar_width * 0.92, h, COLORS[s % len(COLORS)])
            cx = x + bar_width * 0.46
            lo = plot_bottom - plot_height * max(row["low"], 0) / top
            hi = plot_bottom - plot_height * row["high"] / top
            canvas.line(cx, lo, cx, hi)
            canvas.line(cx - 3, hi, cx + 3, hi)
            canvas.line(cx - 3, lo, cx + 3, lo)
            canvas.text(cx, min(hi, plot_bottom - h) - 4, fmt(row["median"]), size=10, anchor="middle")
        ceiling = ceilings.get(key[1])
        if ceiling is not None:
            y = plot_bottom - plot_height * ceiling / top
            canvas.line(gx - 4, y, gx + group_width * 0.8 + 4, y, color="#c00", dashed=True)
            canvas.text(gx + group_width * 0.8 + 4, y - 4, "read limit " + fmt(ceiling), size=10,
                        color="#c00", anchor="end")
        canvas.text(gx + group_width * 0.4, plot_bottom + 18, key[0], size=12, anchor="middle")
        canvas.text(gx + group_width * 0.4, plot_bottom + 33,
                    "{} thread{}".format(key[1], "" if key[1] == 1 else "s"), color="#555",
                    anchor="middle")
    canvas.line(plot_left, plot_bottom, plot_left + plot_width, plot_bottom)


def test_order(key):
    """ppN before tgN, by N, then by thread count."""
    digits = re.match(r"[a-z]+(\d+)", key[0])
    return (0 if key[0].startswith("pp") else 1, int(digits.group(1)) if digits else 0, key[0], key[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="the SVG to write")
    parser.add_argument("results", nargs="+", help="llama_bench or llama-bench JSON files")
    parser.add_argument("--limits", help="bench_machine_limits --benchmark_out JSON")
    parser.add_argument("--label", action="append", default=[], help="FILE=NAME for the legend")
    parser.add_argument("--title", default="End-to-end tokens/s")
    parser.add_argument("--note", default="", help="a line under the title (e.g. the load)")
    parser.add_argument("--png", action="store_true", help="also write a PNG next to the SVG")
    args = parser.parse_args()

    labels = dict(item.split("=", 1) for item in args.label)
    # Files with the same name (the rounds of scripts/run-bench.sh ROUNDS=N) make one series: per
    # test, the median of their medians, whiskers from the lowest low to the highest high.
    merged, read_per_token = {}, {}
    for path in args.results:
        name, rows, weight_bytes = load_series(path, labels.get(path))
        for r in rows:
            merged.setdefault(name, {}).setdefault((r["test"], r["threads"]), []).append(r)
        if weight_bytes:
            read_per_token[path] = weight_bytes
    # One ceiling per thread count: it is only meaningful when every file reads the same bytes per
    # decode step (one weight type); llama.cpp's files carry no size and do not count.
    if args.limits and len(set(read_per_token.values())) > 1:
        sys.exit("plot-bench.py: --limits draws one read-bandwidth ceiling, but these files read "
                 "different bytes per token: " + ", ".join(
                     "{} {:.3g} GB".format(path, size / 1e9) for path, size in read_per_token.items()))
    decode_bytes = next(iter(read_per_token.values()), None)
    series = [(name, {key: dict(test=key[0], threads=key[1],
                                median=statistics.median(r["median"] for r in runs),
                                low=min(r["low"] for r in runs), high=max(r["high"] for r in runs))
                      for key, runs in rows.items()})
              for name, rows in merged.items()]
    keys = sorted({key for _, rows in series for key in rows}, key=test_order)
    prefill = [k for k in keys if k[0].startswith("pp")]
    decode = [k for k in keys if not k[0].startswith("pp")]

    ceilings = {}
    if args.limits and decode_bytes:
        ceilings = {t: bw / decode_bytes for t, bw in read_bandwidth(args.limits).items()}

    width, height, header = 980, 400, 56
    legend_height = 22 * len(series) + 16
    canvas = Canvas(width, header + height + legend_height)
    canvas.text(20, 26, args.title, size=16, bold=True)
    if args.note:
        canvas.text(20, 46, args.note, size=11, color="#555")
    # Panel widths in proportion to their bar groups, neither narrower than a third.
    prefill_width = width * len(prefill) / max(1, len(keys))
    if prefill and decode:
        prefill_width = min(max(prefill_width, width / 3), width * 2 / 3)
    panel(canvas, 0, header, prefill_width, height, "Prefill", prefill, series, {})
    panel(canvas, prefill_width, header, width - prefill_width, height, "Decode", decode, series,
          {key[1]: ceilings[key[1]] for key in decode if key[1] in ceilings})
    y = header + height + 18
    for s, (name, _) in enumerate(series):
        canvas.rect(60, y - 11, 14, 14, COLORS[s % len(COLORS)])
        canvas.text(82, y, name, size=12)
        y += 22
    with open(args.output, "w") as f:
        f.write(canvas.svg())
    if args.png:
        canvas.png(os.path.splitext(args.output)[0] + ".png")


if __name__ == "__main__":
    main()
