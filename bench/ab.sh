#!/usr/bin/env bash
# A/B of two versions of the code on the bench source: `deliver SPEC` with the commit BASE (a git
# worktree, imported through PYTHONPATH) and with the working tree, alternated for ROUNDS rounds;
# prints each wall time and the run's steps of half a second or more. Run from the repository
# root after the 20 M-claim source exists (bench/README.md). Usage: bash bench/ab.sh BASE [SPEC] [ROUNDS]
set -euo pipefail
base=$1
spec=${2:-bench/benchmark-application.yaml}
rounds=${3:-3}
work=$(mktemp -d)
git worktree add -q --detach "$work/base" "$base"
trap 'git worktree remove --force "$work/base"; rm -rf "$work"' EXIT
. bench/instance.sh
for round in $(seq "$rounds"); do
  for version in base now; do
    path=$([ "$version" = base ] && echo "$work/base" || pwd)
    start=$(date +%s.%N)
    # -P: without it `python -c` puts the current folder (the working tree) first on sys.path, and
    # "base" ran the working tree's code too (every A/B before 2026-12-02 compared the tree with itself)
    PYTHONPATH=$path .venv/bin/python -P -c "from kuhr_pipeline.cli import console; console()" \
      deliver --again -q "$spec" --source "$source" >/dev/null 2>"$work/last.err" || { tail -5 "$work/last.err"; exit 1; }
    wall=$(echo "$(date +%s.%N) - $start" | bc)
    # and the run's longest steps, from the instance (bench/steps.py): "step=seconds …"
    steps=$(.venv/bin/python bench/steps.py | awk -F' *\\| *' '$3 >= 0.5 && $2 !~ /^the passes/ {printf " %s=%s", $2, $3}')
    echo "$version $wall$steps"
  done
done
