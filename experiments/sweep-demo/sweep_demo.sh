#!/usr/bin/env bash
# The worked sweep of docs/seeds-and-sweeps.md: docs/sweep-example.toml, 8 trials, 2 worker processes against a
# throw-away PostgreSQL on loopback, worker 0 killed with SIGKILL in the middle of a trial,
# then `tinycifar train --recipe best.toml` (the command best.toml names, on the validation split).
#
#   bash experiments/sweep-demo/sweep_demo.sh /tmp/sweep-demo [DATA_DIR]     # needs the [sweep] extra
set -euo pipefail
OUT=${1:?usage: sweep_demo.sh OUT [DATA_DIR]}
DATA=${2:-${TINYCIFAR_DATA:?give DATA_DIR or set TINYCIFAR_DATA}}
TINYCIFAR=${TINYCIFAR:-tinycifar}
source "$(dirname "$0")/../../.ci/postgres.sh"
pg_start
trap pg_stop EXIT
mkdir -p "$OUT"
$TINYCIFAR sweep docs/sweep-example.toml --study demo --storage "$TINYCIFAR_TEST_POSTGRES" --trials 8 \
  --workers 2 --out "$OUT" --data-dir "$DATA" > "$OUT/sweep.console" 2>&1 &
sweep=$!
sleep "${KILL_AFTER_S:-90}"  # well inside a worker's first or second trial
pkill -9 -f -- "--worker-index 0" && echo "$(date -u +%T) SIGKILL to worker 0" >> "$OUT/sweep.console"
wait "$sweep"
cmd=$(sed -n 's/^# train it: //p' "$OUT/best.toml")
(cd "$OUT" && eval "$TINYCIFAR ${cmd#tinycifar } --val-split 5000 --data-dir $DATA --out best-run --no-progress") \
  > "$OUT/best-run.console" 2>&1
tail -3 "$OUT/best-run.console"
