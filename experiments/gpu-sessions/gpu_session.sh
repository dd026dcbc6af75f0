#!/usr/bin/env bash
# The GPU figures of the docs (docs/gpu-and-torchrun.md, the zoo's accuracy) in one go,
# for a GPU lent for minutes (issues #8, #10).
#
#   DATA=/path/holding/cifar-10-batches-py OUT=gpu-out bash experiments/gpu-sessions/gpu_session.sh
#
# 1. Alone on the GPU, timed: the default model and recipe for 3 seeds (bf16, the GPU's
#    `auto`), then seed 0 with --compile and seed 0 in fp32.
# 2. Side by side (accuracy only; their times share the GPU and are not figures): the test
#    suite on the GPU, every registered model with the common `classic` recipe (seed 0;
#    seeds 1 and 2 for the shipped models), and longer fast-recipe schedules on the
#    validation split (the search of issue #8; never the test set).
# Runs land in $OUT/runs/NAME (metrics.json, config.json, log.jsonl, environment.json);
# $OUT/runs.tgz packs them without checkpoints. SMOKE=1 runs every command for 1 epoch on
# 500 images, to check the script on a CPU.
set -u
OUT=${OUT:-gpu-out}
PHASE2_S=${PHASE2_S:-380}
source experiments/gpu-sessions/device_env.sh
SMOKE_ARGS=()
[ "${SMOKE:-0}" = 1 ] && SMOKE_ARGS=(--epochs 1 --val-split 49500 --warmup-epochs 0.5)

{ nvidia-smi 2>&1 | head -15; $PY -c "import torch; print('torch', torch.__version__)"
  lscpu | grep -E 'Model name|^CPU\(s\)'; } > "$OUT/env.txt"

train() {  # train NAME ARGS...: one run, its console output in $R/NAME.log
  local name=$1; shift
  $PY -m tinycifar train --no-progress --data-dir "$DATA" --out "$R/$name" "$@" "${SMOKE_ARGS[@]}" \
    > "$R/$name.log" 2>&1 || echo "FAILED ($?)" >> "$R/$name.log"
}

# --- 1. timed, one at a time -------------------------------------------------------------
for s in 0 1 2; do train "gpu-fastnet-fast-s$s" --seed "$s"; done
train gpu-fastnet-fast-s0-compile --seed 0 --compile
train gpu-fastnet-fast-s0-fp32 --seed 0 --precision fp32

# --- 2. side by side -----------------------------------------------------------------------
export OMP_NUM_THREADS=1  # 16 cores, ~16 processes: one thread each launching GPU work
(timeout "$PHASE2_S" $PY -m pytest -q -p no:cacheprovider > "$OUT/pytest.log" 2>&1; echo "exit $?" >> "$OUT/pytest.log") &
later() {  # later NAME ARGS...: train in the background, stopped after $PHASE2_S seconds
  timeout "$PHASE2_S" bash -c "$(declare -f train); $(declare -p R DATA PY SMOKE_ARGS); train $*" &
}
for m in fastnet tinynet dilatednet senet unshufflenet resnet8 seed; do
  later "zoo-$m-classic-s0" --model "$m" --recipe classic
done
for s in 1 2; do for m in fastnet tinynet; do
  later "zoo-$m-classic-s$s" --model "$m" --recipe classic --seed "$s"
done; done
for e in 14 28 56 112; do later "val-fastnet-fast-e$e" --val-split 5000 --epochs "$e"; done
later val-fastnet-fast-e56-cutout8 --val-split 5000 --epochs 56 --cutout 8
wait
tar czf "$OUT/runs.tgz" --exclude='*.pt' -C "$OUT" runs
echo "gpu session done"
