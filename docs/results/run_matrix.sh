#!/usr/bin/env bash
# Runs the issue-4 measurement matrix with the release `insitu` binary, two runs at a time,
# one JSON per run under docs/results/raw/. Resumable: a run whose JSON exists is skipped
# (each JSON is written atomically by `insitu train --json`).
# Usage: bash docs/results/run_matrix.sh [GROUP...]   groups: mnist-sgd fmnist-sgd mnist-adam
#        fmnist-adam directions synthetic mnist-regression synthetic-adam mnist-regression-adam
#        (default: all; see the order below)
# A run is skipped when its JSON exists or another invocation has claimed it
# (the directory $OUT/.claim-NAME, created atomically by mkdir).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${INSITU_BIN:-target/release/insitu}
OUT=docs/results/raw
JOBS=${JOBS:-2}
mkdir -p "$OUT"
groups=("$@")
[ ${#groups[@]} -eq 0 ] && groups=(mnist-sgd synthetic mnist-regression fmnist-sgd directions mnist-adam fmnist-adam synthetic-adam mnist-regression-adam)

emit() { # name, then insitu train arguments
  local name=$1; shift
  [ -s "$OUT/$name.json" ] || echo "$name $*"
}

list() {
  for g in "${groups[@]}"; do
    # A group ending in -adam trains with Adam; its regression runs' names carry "-adam".
    opt=sgd; tag=; [[ $g == *-adam ]] && { opt=adam; tag=-adam; }
    case $g in
      mnist-sgd|fmnist-sgd|mnist-adam|fmnist-adam)
        task=mnist; [[ $g == fmnist-* ]] && task=fashion-mnist
        for d in 1 3 6 10; do for m in ff-dd bp-dd ff-ad bp-ad; do
          emit "$g-$m-w100-d$d" --task $task --method $m --width 100 --depth $d --optimizer $opt --epochs 100
        done; done ;;
      directions)
        for w in 10 50 100; do for p in 1 2 4 8; do for m in ff-dd bp-dd; do
          emit "directions-$m-w$w-d5-p$p" --task mnist --method $m --width $w --depth 5 --directions $p --epochs 100
        done; done; done ;;
      synthetic|synthetic-adam)
        for w in 10 20 30 40 50 60 70 80 90 100; do for m in ff-dd bp-dd ff-ad bp-ad; do
          emit "synthetic-f1$tag-$m-w$w" --task synthetic-f1 --method $m --width $w --depth 2 --optimizer $opt --epochs 100
        done; done
        for w in 20 40 60 80 100 120 140 160 180 200; do for m in ff-dd bp-dd ff-ad bp-ad; do
          emit "synthetic-f2$tag-$m-w$w" --task synthetic-f2 --method $m --width $w --depth 2 --optimizer $opt --epochs 100
        done; done ;;
      mnist-regression|mnist-regression-adam)
        for w in 10 50 100; do for m in ff-dd bp-dd ff-ad bp-ad; do
          emit "mnist-regression$tag-$m-w$w-d2" --task mnist-regression --method $m --width $w --depth 2 --optimizer $opt --epochs 100
        done; done ;;
      *) echo "unknown group $g" >&2; exit 2 ;;
    esac
  done
}

run_one() { # name, then arguments
  local name=$1; shift
  [ -s "$OUT/$name.json" ] && return 0
  mkdir "$OUT/.claim-$name" 2>/dev/null || return 0
  if ! "$BIN" train "$@" --json "$OUT/$name.json" >> "$OUT/log.txt" 2>&1; then
    echo "FAILED $name" >> "$OUT/log.txt"
  fi
  rmdir "$OUT/.claim-$name"
}
export -f run_one
export BIN OUT
list | xargs -P "$JOBS" -L 1 bash -c 'run_one "$@"' _
