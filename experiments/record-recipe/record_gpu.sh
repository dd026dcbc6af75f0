#!/usr/bin/env bash
# The record runs for a lent GPU (issue #25, item 4): the port of xvel/cifar10-tiniest with its
# published recipe (xvel.toml, 200 epochs), seeds 0-2 side by side on one GPU, each compiled
# (these models are launch-bound) and stopped at a deadline. Every run checkpoints each epoch:
# run the script again, on the same machine or a later one with $OUT copied back, and each
# seed resumes where it stopped. Test accuracy, final epoch, no TTA; nothing is chosen here.
#
#   DATA=/path/holding/cifar-10-batches-py OUT=record-out DEADLINE_S=540 \
#       bash experiments/record-recipe/record_gpu.sh
#
# SMOKE=1 runs each seed for 1 epoch on 500 images on the CPU, to check the script.
# Expected time: a 200-epoch run is about 200 × (an epoch's seconds) on the GPU; on a 2-core
# CPU the port's epoch was measured with `--time 1h --plan` (README.md, "Expected time").
set -u
OUT=${OUT:-record-out}
DEADLINE_S=${DEADLINE_S:-540}
SEEDS=${SEEDS:-0 1 2}
source experiments/gpu-sessions/device_env.sh
ARGS=(--model xvel_tiniest --recipe experiments/record-recipe/xvel.toml --precision fp32 --no-progress)
if [ "${SMOKE:-0}" = 1 ]; then
  ARGS+=(--epochs 1 --warmup-epochs 0.5 --val-split 49500 --device cpu)
else
  ARGS+=(--device cuda --compile)
fi
{ nvidia-smi 2>&1 | head -15; $PY -c "import torch; print('torch', torch.__version__)"
  lscpu | grep -E 'Model name|^CPU\(s\)|Flags' | cut -c1-300; } > "$OUT/env.txt"
export OMP_NUM_THREADS=1  # the GPU does the work; one thread each launches it
for s in $SEEDS; do
  run=$R/xvel-s$s
  resume=()
  [ -f "$run/last.pt" ] && resume=(--resume)
  timeout "$DEADLINE_S" $PY experiments/record-recipe/xvel_port.py train --seed "$s" --out "$run" \
    "${resume[@]}" "${ARGS[@]}" >> "$R/xvel-s$s.log" 2>&1 &
done
wait
tar czf "$OUT/runs.tgz" --exclude='*.pt' -C "$OUT" runs
echo "record session done: $(ls "$R"/*/metrics.json 2>/dev/null | wc -l) of $(echo $SEEDS | wc -w) seeds finished"
