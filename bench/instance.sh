# Sourced by the A/B scripts: a throwaway Dagster instance (the project's dagster.yaml), deliveries
# folder and keys under $work, and the bench source's path in $source (KUHR_BENCH_SOURCE to choose).
export DAGSTER_HOME=$work/home KUHR_DELIVERIES=$work/deliveries
export KUHR_PSEUDONYM_KEY_FILE=$work/keys/pseudonym.key KUHR_SIGNING_KEY_FILE=$work/keys/signing.pem
mkdir -p "$DAGSTER_HOME" && cp dagster_home/dagster.yaml "$DAGSTER_HOME/"
.venv/bin/kuhr-pipeline keys init --recipient-dir "$work/keys" >/dev/null 2>&1
source=${KUHR_BENCH_SOURCE:-/tmp/kuhr-bench/20000000-time/source}  # made by bench/run.py (--order person: …-person)
