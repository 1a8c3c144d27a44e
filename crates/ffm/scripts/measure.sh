#!/usr/bin/env bash
# Runs the measurements of docs/results/ffm.md with the release `ffm_classify` example, one
# JSONL file per configuration under crates/ffm/results/ (a file that exists is skipped).
# Usage: bash crates/ffm/scripts/measure.sh [GROUP...]   groups: fashion mnist nonlinear strength
set -euo pipefail
cd "$(dirname "$0")/../../.."
BIN=${FFM_BIN:-${CARGO_TARGET_DIR:-target}/release/examples/ffm_classify}
OUT=crates/ffm/results
mkdir -p "$OUT"
COMMON=(--grid 64 --train 3000 --test 1000 --epochs 3 --lr 0.05 --batch 16 --strength 0.5)
one() { # name, then ffm_classify options
  local name=$1; shift
  [ -s "$OUT/$name.jsonl" ] && return 0
  nice -n 5 "$BIN" "${COMMON[@]}" "$@" > "$OUT/$name.jsonl.tmp"
  mv "$OUT/$name.jsonl.tmp" "$OUT/$name.jsonl"
}
groups=("$@")
[ ${#groups[@]} -eq 0 ] && groups=(fashion mnist nonlinear strength)
for g in "${groups[@]}"; do
  case $g in
    fashion) for L in 2 4 6 8; do one "fashion-L$L" --task fashion-mnist --layers $L --seeds 0-4 --modes in-silico,in-situ; done ;;
    mnist) for L in 2 4 6 8; do one "mnist-L$L" --task mnist --layers $L --seeds 0-2 --modes in-silico,in-situ; done ;;
    nonlinear)
      one "even-L4-linear" --task mnist-even --layers 4 --seeds 0-2 --modes in-silico,in-situ
      for p in 1 10; do for a in optoelectronic photorefractive; do
        one "even-L4-$a-p$p" --task mnist-even --layers 4 --seeds 0-2 --modes in-silico,in-situ --activation $a --input-power $p
      done; done
      one "even-L4-optoelectronic-p3" --task mnist-even --layers 4 --seeds 0-2 --modes in-silico,in-situ --activation optoelectronic --input-power 3 ;;
    strength) # context: how the in-silico deficit depends on the bench (2 layers, seed 0; 0.5 is fashion-L2)
      for s in 0.1 0.25 1; do one "strength-L2-s$s" --task fashion-mnist --layers 2 --seeds 0-0 --strength $s; done ;;
    *) echo "unknown group $g" >&2; exit 2 ;;
  esac
done
