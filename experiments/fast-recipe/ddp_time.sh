#!/bin/bash
# One process (2 threads) against two (torchrun, 1 thread each): the fast recipe on the
# validation split, seed 0, alternately, twice each; compare train_seconds in each run's
# metrics.json. Nothing else may run beside it.
#   TINYCIFAR_DATA=DIR bash experiments/fast-recipe/ddp_time.sh [OUT (default runs/ddp-time)]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/ddp-time}
mkdir -p "$out"
for rep in a b; do
  .venv/bin/tinycifar train --val-split 5000 --seed 0 --no-progress --out "$out/d00$rep-one" > "$out/d00$rep-one.log" 2>&1
  OMP_NUM_THREADS=1 .venv/bin/torchrun --standalone --nproc_per_node 2 -m tinycifar train --val-split 5000 \
    --seed 0 --no-progress --out "$out/d01$rep-two" > "$out/d01$rep-two.log" 2>&1
done
grep -H train_seconds "$out"/d0*/metrics.json
