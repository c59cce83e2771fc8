#!/usr/bin/env bash
# Windows cost (#20): deliver bench/benchmark-no-windows.yaml and bench/benchmark-windows.yaml in
# turn, N rounds, on the bench source; prints each wall time. Run from the repository root after
# bench/run.py has made /tmp/kuhr-bench/20000000-time/source. Usage: bash bench/windows_ab.sh [ROUNDS]
set -euo pipefail
rounds=${1:-3}
work=$(mktemp -d)
. bench/instance.sh
for round in $(seq "$rounds"); do
  for spec in no-windows windows; do
    start=$(date +%s.%N)
    .venv/bin/kuhr-pipeline deliver --again "bench/benchmark-$spec.yaml" --source "$source" >/dev/null 2>"$work/last.err" \
      || { tail -5 "$work/last.err"; exit 1; }
    echo "$spec $(echo "$(date +%s.%N) - $start" | bc)"
  done
done
rm -rf "$work"
