#!/usr/bin/env python3
"""Plots the loss curve of a train_shakespeare run from its progress lines, as SVG (and PNG).

    scripts/plot-loss.py OUT.svg TRAIN.log [--target 1.75] [--deadline-minutes 15] [--title TEXT]
                         [--png]

TRAIN.log is train_shakespeare's standard output. Its lines
    step 0: val loss 4.3115
    step 100: train loss 2.4989, val loss 2.4658, lr ..., grad norm ..., 6100 tokens/s, 35.2 s
give the points: train and validation loss against the elapsed wall time (minutes). Step 0 is at
time 0 and has no train loss. The closing line
    final val loss 1.5462 over the whole validation split (435 windows of 256), 686.2 s
is drawn as a larger marker. --target draws the loss to reach as a dashed horizontal line,
--deadline-minutes the time allowed as a dashed vertical one.
"""
import argparse
import math
import re
import sys

from plot_canvas import Canvas

STEP_ZERO = re.compile(r"^step 0: val loss ([0-9.]+)")
FINAL = re.compile(r"^final val loss ([0-9.]+) over the whole validation split .*, ([0-9.]+) s$")
PROGRESS = re.compile(r"^step (\d+): train loss ([0-9.]+), val loss ([0-9.]+), .*?, "
                      r"([0-9.]+) tokens/s, ([0-9.]+) s$")


def read_log(path):
    """Returns (rows, final): rows (step, minutes, train loss or None, val loss) in the order of the
    log, final (minutes, loss) of the whole-split evaluation at the end, or None."""
    rows, final = [], None
    with open(path) as f:
        for line in f:
            line = line.strip()
            m = STEP_ZERO.match(line)
            if m:
                rows.append((0, 0.0, None, float(m.group(1))))
                continue
            m = FINAL.match(line)
            if m:
                final = (float(m.group(2)) / 60.0, float(m.group(1)))
                continue
            m = PROGRESS.match(line)
            if m:
                rows.append((int(m.group(1)), float(m.group(5)) / 60.0, float(m.group(2)),
                             float(m.group(3))))
    if len(rows) < 2:
        sys.exit("plot-loss: {} has fewer than two progress lines".format(path))
    return rows, final


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out")
    p.add_argument("log")
    p.add_argument("--target", type=float, default=None)
    p.add_argument("--deadline-minutes", type=float, default=None)
    p.add_argument("--title", default="train_shakespeare: loss (nats/char) against wall time")
    p.add_argument("--png", action="store_true")
    a = p.parse_args()
    rows, final = read_log(a.log)

    width, height = 760, 420
    left, right, top, bottom = 70, 24, 48, 56
    plot_w, plot_h = width - left - right, height - top - bottom
    x_max = max([r[1] for r in rows] + [a.deadline_minutes or 0])
    x_max = math.ceil(x_max / 2.5) * 2.5 if x_max > 0 else 1.0
    losses = [r[3] for r in rows] + [r[2] for r in rows if r[2] is not None]
    losses += [final[1]] if final else []
    y_min = math.floor(min(losses + [a.target or min(losses)]) * 2) / 2 - 0.25
    y_max = math.ceil(max(losses) * 2) / 2
    to_x = lambda minutes: left + plot_w * minutes / x_max
    to_y = lambda loss: top + plot_h * (y_max - loss) / (y_max - y_min)

    c = Canvas(width, height)
    c.text(width / 2, 26, a.title, size=14, anchor="middle", bold=True)
    y = y_min
    while y <= y_max + 1e-9:  # horizontal grid every 0.25 nats
        c.line(left, to_y(y), left + plot_w, to_y(y), color="#e4e4e4")
        c.text(left - 8, to_y(y) + 4, "{:.2f}".format(y), size=10, anchor="end")
        y += 0.25
    x_step = 2.5 if x_max > 10 else 1.0
    x = 0.0
    while x <= x_max + 1e-9:
        c.line(to_x(x), top + plot_h, to_x(x), top + plot_h + 4)
        c.text(to_x(x), top + plot_h + 18, "{:g}".format(x), size=10, anchor="middle")
        x += x_step
    c.line(left, top, left, top + plot_h)
    c.line(left, top + plot_h, left + plot_w, top + plot_h)
    c.text(left + plot_w / 2, height - 14, "elapsed wall time (minutes), evaluations included",
           size=11, anchor="middle")
    c.text(18, top + plot_h / 2, "loss", size=11, anchor="middle")

    if a.target is not None:
        c.line(left, to_y(a.target), left + plot_w, to_y(a.target), color="#c44e52", dashed=True)
        c.text(left + plot_w - 4, to_y(a.target) - 6, "target {:g}".format(a.target), size=10,
               anchor="end", color="#c44e52")
    if a.deadline_minutes is not None:
        c.line(to_x(a.deadline_minutes), top, to_x(a.deadline_minutes), top + plot_h,
               color="#c44e52", dashed=True)
        c.text(to_x(a.deadline_minutes) - 4, top + 14, "{:g} min".format(a.deadline_minutes),
               size=10, anchor="end", color="#c44e52")

    series = [("train loss (last batch)", "#4c72b0", [(r[1], r[2]) for r in rows if r[2] is not None]),
              ("validation loss", "#dd8452", [(r[1], r[3]) for r in rows])]
    for index, (name, color, points) in enumerate(series):
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            c.line(to_x(x0), to_y(y0), to_x(x1), to_y(y1), color=color)
        for px, py in points:
            c.rect(to_x(px) - 1.5, to_y(py) - 1.5, 3, 3, color)
        legend_y = top + 16 + 16 * index
        c.line(left + plot_w - 210, legend_y - 4, left + plot_w - 190, legend_y - 4, color=color)
        c.text(left + plot_w - 184, legend_y, name, size=10)
    last = rows[-1]
    summary = "step {}: val loss {:.3f} at {:.1f} min".format(last[0], last[3], last[1])
    if final:  # the whole validation split, after the last step: a larger marker
        c.rect(to_x(final[0]) - 3.5, to_y(final[1]) - 3.5, 7, 7, "#c44e52")
        summary += "; whole validation split {:.3f} at {:.1f} min (red square)".format(final[1], final[0])
    c.text(left + 8, top + plot_h - 10, summary, size=10)

    with open(a.out, "w") as f:
        f.write(c.svg())
    if a.png:
        c.png(a.out[:-4] + ".png" if a.out.endswith(".svg") else a.out + ".png")


if __name__ == "__main__":
    main()
