#!/usr/bin/env bash
# A/B of two versions of the code on the bench source: `deliver SPEC` with the commit BASE (a git
# worktree, imported through PYTHONPATH) and with the working tree, alternated for ROUNDS rounds;
# prints each wall time. Run from the repository root after the 20 M-bill source exists
# (bench/README.md). Usage: bash bench/ab.sh BASE [SPEC] [ROUNDS]
set -euo pipefail
base=$1
spec=${2:-bench/benchmark-application.yaml}
rounds=${3:-3}
work=$(mktemp -d)
git worktree add -q --detach "$work/base" "$base"
trap 'git worktree remove --force "$work/base"; rm -rf "$work"' EXIT
export DAGSTER_HOME=$work/home KUHR_DELIVERIES=$work/deliveries
export KUHR_PSEUDONYM_KEY_FILE=$work/keys/pseudonym.key KUHR_SIGNING_KEY_FILE=$work/keys/signing.pem
mkdir -p "$DAGSTER_HOME" && cp dagster_home/dagster.yaml "$DAGSTER_HOME/"
.venv/bin/kuhr-pipeline keys init --recipient-dir "$work/keys" >/dev/null 2>&1
source=/tmp/kuhr-bench/20000000/source
for round in $(seq "$rounds"); do
  for version in base now; do
    path=$([ "$version" = base ] && echo "$work/base" || pwd)
    start=$(date +%s.%N)
    PYTHONPATH=$path .venv/bin/python -c "from kuhr_pipeline.cli import console; console()" \
      deliver --again -q "$spec" --source "$source" >/dev/null 2>"$work/last.err" || { tail -5 "$work/last.err"; exit 1; }
    echo "$version $(echo "$(date +%s.%N) - $start" | bc)"
  done
done
