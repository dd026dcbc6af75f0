#!/usr/bin/env bash
# Issue #7's bf16 figures on a lent machine whose CPU has native bf16 (a GPU host's Xeon),
# with its GPU busy on issue #8's next validation run meanwhile. One command, one deadline:
#
#   DATA=/path/holding/cifar-10-batches-py OUT=bf16-host bash benchmarks/bf16_host_session.sh
#
# The project's CPU has 2 cores; this host has 16. Each CPU job is pinned to 2 cores of its
# own with 2 threads (`taskset`), so each sees a 2-core machine (sharing memory bandwidth
# and cache with its neighbours: their times compare within a job, and loosely across jobs).
#   cores 0-5    time_to_accuracy.py, one process per seed (cores 2s, 2s+1): the shipped
#                recipe timed for 2 epochs beside the fast recipe in bf16 for that seed, on
#                the test set (the ratio of #7); then, on the same cores, precision_speed.py
#                (fp32 and bf16 training img/s of every zoo model and of #8's candidates,
#                whose hour on a bf16 CPU it decides) after seed 0, and the
#                bf16 arm of the parity table (fast recipe, validation split) for seeds 1, 2.
#   cores 6-11   the fp32 arm of the parity table, seeds 0-2.
#   cores 12-13  the bf16 arm's seed 0.
#   core 15      the GPU: s05, sepnet-hires 160 epochs without mixing on the validation
#                split (the run benchmarks/README.md's rule asks for if s04 falls short).
# If the CPU has no native bf16 the CPU jobs are skipped (they would measure emulation).
# On the H100's host Xeon (2026-11-26) everything but three parity runs ended within 540 s:
# a 2-thread fp32 parity run took ~520 s beside the rest, and the bf16 ones queued behind
# time_to_accuracy did not start in time. Those three were rerun at once with 4 or 8
# threads (speed is no part of the parity table); give the parity runs more cores if the
# table is ever measured again.
# Everything stops by $DEADLINE seconds after the start; runs land in $OUT/runs/NAME and
# $OUT/runs.tgz packs them without checkpoints. SMOKE=1 shrinks every job (and maps the
# cores onto however many this machine has), to check the script on a small CPU.
set -u
shopt -s nullglob
: "${DATA:?set DATA to the folder holding cifar-10-batches-py}"
OUT=${OUT:-bf16-host}
DEADLINE=${DEADLINE:-540}
R=$OUT/runs
mkdir -p "$R"
export TINYCIFAR_DATA=$DATA PYTHONUNBUFFERED=1 PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
PY=${PYTHON:-python3}
NCPU=$(nproc)
SMOKE=${SMOKE:-0}
TTA=() TRAIN=() GPU=(--device cuda --epochs 160)
MODELS=fastnet,tinynet,dilatednet,senet,unshufflenet,resnet8,seed,sepnet_hires,mixernet
HAS_BF16=$(grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo && echo 1 || echo 0)
HAS_GPU=$($PY -c "import torch; print(int(torch.cuda.is_available()))")
if [ "$SMOKE" = 1 ]; then  # every job, whatever the machine has, on 500 images
  TTA=(--limit 300) TRAIN=(--epochs 1 --warmup-epochs 0.5 --val-split 49500) MODELS=fastnet
  GPU=(--device "$([ "$HAS_GPU" = 1 ] && echo cuda || echo cpu)" --epochs 1 --warmup-epochs 0.5 --val-split 49500)
  HAS_BF16=1 HAS_GPU=1
fi
{ lscpu; nvidia-smi 2>&1 | head -15; $PY -c "import torch; print('torch', torch.__version__)"; } > "$OUT/env.txt"

pin() {  # pin CORES LOG CMD...: run CMD on those cores (2 threads), stopped at the deadline
  local cores=$1 log=$2; shift 2
  local left=$((DEADLINE - SECONDS)) mapped
  mapped=$(echo "$cores" | tr ',' '\n' | while read -r c; do echo $((c % NCPU)); done | paste -sd,)
  OMP_NUM_THREADS=$(echo "$cores" | tr ',' '\n' | wc -l) timeout -k 10 "$left" taskset -c "$mapped" "$@" \
    > "$log" 2>&1 || echo "FAILED or stopped ($?)" >> "$log"
}
train() {  # train CORES NAME ARGS...: tinycifar train on the CPU, validation split
  local cores=$1 name=$2; shift 2
  pin "$cores" "$R/$name.log" $PY -m tinycifar train --no-progress --data-dir "$DATA" --device cpu \
    --val-split 5000 --out "$R/$name" "$@" "${TRAIN[@]}"
}

if [ "$HAS_BF16" = 1 ]; then
  for s in 0 1 2; do
    c=$((2 * s)),$((2 * s + 1))
    (
      pin "$c" "$R/tta-s$s.log" $PY benchmarks/time_to_accuracy.py --data-dir "$DATA" --device cpu \
        --precision bf16 --seeds "$s" --out "$R/tta-s$s" "${TTA[@]}"
      case $s in
        0) pin "$c" "$R/precision_speed.log" $PY benchmarks/precision_speed.py --threads 2 --steps 5 --candidates \
             --models "$MODELS" ;;
        *) train "$c" "parity-bf16-s$s" --model fastnet --recipe fast --precision bf16 --seed "$s" ;;
      esac
    ) &
    train $((6 + 2 * s)),$((7 + 2 * s)) "parity-fp32-s$s" --model fastnet --recipe fast --precision fp32 --seed "$s" &
  done
  train 12,13 parity-bf16-s0 --model fastnet --recipe fast --precision bf16 --seed 0 &
else
  echo "no avx512_bf16/amx_bf16 on this CPU: the bf16 CPU jobs are skipped" | tee "$OUT/skipped.txt"
fi
if [ "$HAS_GPU" = 1 ]; then
  pin 15 "$R/s05-sepnet-hires-160.log" $PY benchmarks/train_variant.py train --no-progress --data-dir "$DATA" \
    --model sepnet --model-args '{"pools": [false, true]}' --recipe fast --warmup-epochs 2.8 \
    --val-split 5000 --out "$R/s05-sepnet-hires-160" "${GPU[@]}" &
fi
wait
tar czf "$OUT/runs.tgz" --exclude='*.pt' --exclude='*.pt.*' --exclude='*.tmp' -C "$OUT" runs env.txt
echo "bf16 host session done after $SECONDS s"
for f in "$R"/tta-s*.log "$R"/precision_speed.log; do echo "== $f"; tail -4 "$f"; done
for d in "$R"/parity-*/ "$R"/s05-*/; do
  echo "== $d: $(tr -d '\n ' < "$d/metrics.json" 2>/dev/null || echo 'no metrics (did not finish)')"
done
