#!/usr/bin/env python3
"""Render docs/results/raw/*.json (written by run_matrix.sh) as the markdown tables of
docs/results/README.md. Only measured numbers: a missing run shows as '—'."""
import json, pathlib, sys

RAW = pathlib.Path(__file__).parent / "raw"
METHODS = ["bp-ad", "ff-ad", "ff-dd", "bp-dd"]

def load(name):
    p = RAW / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() and p.stat().st_size else None

def metric(r, key):
    if r is None:
        return "—"
    v = r.get(key)
    s = "n/a" if v is None else (f"{100*v:.1f}" if key == "test_accuracy" else f"{v:.3f}")
    if r.get("status") == "diverged":
        s += " (div.)"
    return s

def secs(r):
    return "—" if r is None else f"{r['train_seconds']:.0f}"

def classification(group, title):
    out = [f"### {title}", "", "test accuracy (%), width 100; seconds of training in brackets", "",
           "| depth | " + " | ".join(m.upper().replace("-", "+") for m in METHODS) + " |",
           "|---|" + "---|" * len(METHODS)]
    for d in [1, 3, 6, 10]:
        cells = []
        for m in METHODS:
            r = load(f"{group}-{m}-w100-d{d}")
            cells.append(f"{metric(r, 'test_accuracy')} ({secs(r)})")
        out.append(f"| {d} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"

def directions():
    out = ["### Number of directions P (MNIST, depth 5, SGD, 100 epochs)", "",
           "| width | method | P=1 | P=2 | P=4 | P=8 |", "|---|---|---|---|---|---|"]
    for w in [10, 50, 100]:
        for m in ["ff-dd", "bp-dd"]:
            cells = [metric(load(f"directions-{m}-w{w}-d5-p{p}"), "test_accuracy") for p in [1, 2, 4, 8]]
            out.append(f"| {w} | {m.upper().replace('-', '+')} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"

def regression(prefix, widths, title, suffix=""):
    out = [f"### {title}", "", "test R²", "", "| width | " + " | ".join(m.upper().replace("-", "+") for m in METHODS) + " |",
           "|---|" + "---|" * len(METHODS)]
    for w in widths:
        cells = [metric(load(f"{prefix}-{m}-w{w}{suffix}"), "test_r2") for m in METHODS]
        out.append(f"| {w} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"

def main():
    parts = [
        classification("mnist-sgd", "MNIST, plain SGD (the paper's settings, SPEC A5 reading)"),
        classification("fmnist-sgd", "Fashion-MNIST, plain SGD"),
        classification("mnist-adam", "MNIST, Adam (lr 10⁻³)"),
        classification("fmnist-adam", "Fashion-MNIST, Adam (lr 10⁻³)"),
        directions(),
        regression("synthetic-f1", range(10, 101, 10), "Synthetic f1 (2 hidden layers, SGD, 100 epochs)"),
        regression("synthetic-f2", range(20, 201, 20), "Synthetic f2 (2 hidden layers, SGD, 100 epochs)"),
        regression("mnist-regression", [10, 50, 100], "MNIST regression (2 hidden layers, SGD, 100 epochs)", "-d2"),
    ]
    sys.stdout.write("\n".join(parts))

if __name__ == "__main__":
    main()
