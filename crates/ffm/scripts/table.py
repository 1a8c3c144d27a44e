#!/usr/bin/env python3
"""Markdown tables of docs/results/ffm.md from crates/ffm/results/*.jsonl (one FfmResult per line).
Ideal = `model_test_accuracy` of the in-silico runs (the same trained masks on the digital model).
Usage: python3 crates/ffm/scripts/table.py [PREFIX...]   (default: fashion mnist- even-)"""
import glob, json, os, statistics, sys

here = os.path.join(os.path.dirname(__file__), "..", "results")
prefixes = sys.argv[1:] or ["fashion", "mnist-", "even-"]

def pct(v):
    return f"{100 * v:.1f}"

def cell(vals):
    if not vals:
        return "—"
    return f"**{pct(statistics.mean(vals))} %** ({' '.join(pct(v) for v in vals)})"

for prefix in prefixes:
    files = sorted(glob.glob(os.path.join(here, prefix + "*.jsonl")),
                   key=lambda f: (len(f), f))
    if not files:
        continue
    print(f"\n| run | ideal | in silico (deployed) | FFM in situ | ideal − in silico | ideal − in situ | train s (ideal / in situ, seed 0) |")
    print("|---|---|---|---|---|---|---|")
    for f in files:
        rows = [json.loads(l) for l in open(f) if l.strip()]
        sil = [r for r in rows if r["spec"]["mode"] == "in-silico"]
        sit = [r for r in rows if r["spec"]["mode"] == "in-situ"]
        ideal = [r["model_test_accuracy"] for r in sil]
        silico = [r["test_accuracy"] for r in sil]
        situ = [r["test_accuracy"] for r in sit]
        bad = [r["status"] for r in rows if r["status"] != "ok"]
        gap = lambda a, b: f"{100 * (statistics.mean(a) - statistics.mean(b)):.1f}" if a and b else "—"
        secs = f"{sil[0]['train_seconds']:.0f} / {sit[0]['train_seconds']:.0f}" if sil and sit else "—"
        name = os.path.basename(f)[:-6] + (f" ({len(bad)} diverged)" if bad else "")
        print(f"| {name} | {cell(ideal)} | {cell(silico)} | {cell(situ)} | {gap(ideal, silico)} | {gap(ideal, situ)} | {secs} |")
