#!/usr/bin/env bash
# Issue #7's bf16 figures on a lent machine whose CPU has native bf16 (a GPU host's Xeon),
# with its GPU busy on issue #8's next validation run meanwhile. One command, one deadline:
#
#   DATA=/path/holding/cifar-10-batches-py OUT=bf16-host bash experiments/gpu-sessions/bf16_host_session.sh
#
# The project's CPU has 2 cores; this host has 16. Each CPU job is pinned to 2 cores of its
# own with 2 threads (`taskset`), so each sees a 2-core machine (sharing memory bandwidth
# and cache with its neighbours: their times compare within a job, and loosely across jobs).
#   cores 0-5    with TIME_TO_ACCURACY=1, time_to_accuracy.py, one process per seed (cores
#                2s, 2s+1): the shipped recipe timed for 2 epochs beside the fast recipe in
#                bf16 for that seed, on the test set (the ratio of #7; measured twice, so off
#                by default since); then, on seed 0's cores, precision_speed.py
#                (fp32 and bf16 training img/s of every zoo model and of #8's candidates,
#                whose hour on a bf16 CPU it decides); on seed 1's cores, the epochs that
#                `train --time 1h --plan` gives each of $PLAN_MODELS there (the hour itself).
#   cores 6-11   with PARITY=1, the parity table's runs (fast recipe, validation split, fp32
#                then bf16 for each of seeds 0-2), as measured on 2026-11-26 (then with other
#                cores); off by default since.
#   cores 8-15   (12-15 with PARITY=1) the GPU, one process a core: every run of $GPU_LIST's files ("NAME ARGS..."
#                lines of experiments/hour-recipe/train_variant.py, validation split; default issue #8's
#                screens, their stretches and the distillation screens, whose teacher file
#                travels as .gpu/teacher: see distill-8.txt) whose result is not yet in
#                benchmarks/results/validation/. A run whose folder holds a checkpoint is
#                resumed, so a second call on the still-warm machine carries on where the
#                deadline stopped the first (same OUT). Beside them, the teacher stage:
#                $TEACHER_LIST's runs (default teacher-8.txt), then `tinycifar soft-labels`
#                over those that finished into $TEACHER_FILE (also copied to $OUT), then
#                $STUDENT_LIST's runs (student-8.txt), which name that file, on the cores
#                the teachers used. TEACHER_LIST= (empty) skips the stage.
# If the CPU has no native bf16 the CPU jobs are skipped (they would measure emulation).
# On the H100's host Xeon (2026-11-26) everything but three parity runs ended within 540 s:
# a 2-thread fp32 parity run took ~520 s beside the rest, and the bf16 ones queued behind
# time_to_accuracy did not start in time. Those three were rerun at once with 4 or 8
# threads (speed is no part of the parity table); give the parity runs more cores if the
# table is ever measured again. (That session's GPU run, s05, is a line of no list: its
# command is in experiments/hour-recipe/README.md.)
# Everything stops by $DEADLINE seconds after the start; runs land in $OUT/runs/NAME and
# $OUT/runs.tgz packs them without checkpoints. SMOKE=1 shrinks every job (and maps the
# cores onto however many this machine has), to check the script on a small CPU.
set -u
shopt -s nullglob
OUT=${OUT:-bf16-host}
DEADLINE=${DEADLINE:-540}
source experiments/gpu-sessions/device_env.sh
NCPU=$(nproc)
SMOKE=${SMOKE:-0}
PARITY=${PARITY:-0}
TIME_TO_ACCURACY=${TIME_TO_ACCURACY:-0}  # #7's figure, measured twice (README); 1 to measure it again
GPU_LIST=${GPU_LIST:-experiments/hour-recipe/screens-8.txt experiments/hour-recipe/stretch-8.txt experiments/hour-recipe/distill-8.txt}
TEACHER_LIST=${TEACHER_LIST-experiments/hour-recipe/teacher-8.txt}  # empty: no teacher stage
STUDENT_LIST=${STUDENT_LIST:-experiments/hour-recipe/student-8.txt}
TEACHER_FILE=${TEACHER_FILE:-.gpu/teacher/wide4.safetensors}  # the path student-8.txt's lines name
SOFT_LABELS=(--device cuda --val-split 5000)
TTA=() TRAIN=() GPU=(--device cuda)
MODELS=fastnet,tinynet,dilatednet,senet,unshufflenet,resnet8,seed,sepnet_hires,sepnet_g31,mixernet
PLAN_MODELS=${PLAN_MODELS:-sepnet_hires sepnet_g31 mixernet} PLAN_TIME=1h
HAS_BF16=$(grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo && echo 1 || echo 0)
HAS_GPU=$($PY -c "import torch; print(int(torch.cuda.is_available()))")
if [ "$SMOKE" = 1 ]; then  # every job, whatever the machine has, on 500 images
  TTA=(--limit 300) TRAIN=(--epochs 1 --warmup-epochs 0.5 --val-split 49500) MODELS=fastnet
  PLAN_MODELS=fastnet PLAN_TIME=5m
  GPU=(--device "$([ "$HAS_GPU" = 1 ] && echo cuda || echo cpu)" --epochs 1 --warmup-epochs 0.5 --val-split 49500)
  SOFT_LABELS=("${GPU[@]:0:2}" --val-split 49500)
  HAS_BF16=1 HAS_GPU=1
fi
{ lscpu; nvidia-smi 2>&1 | head -15; $PY -c "import torch; print('torch', torch.__version__)"; } > "$OUT/env.txt"

pin() {  # pin CORES LOG CMD...: run CMD on those cores (2 threads), stopped at the deadline
  local cores=$1 log=$2; shift 2
  local left=$((DEADLINE - SECONDS)) mapped
  # a job that starts after a wait may find the deadline gone (and `timeout 0` never stops)
  [ "$left" -gt 0 ] || { echo "not started: the deadline had passed" >> "$log"; return; }
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
      [ "$TIME_TO_ACCURACY" = 1 ] && pin "$c" "$R/tta-s$s.log" $PY benchmarks/time_to_accuracy.py \
        --data-dir "$DATA" --device cpu --precision bf16 --seeds "$s" --out "$R/tta-s$s" "${TTA[@]}"
      [ "$s" = 0 ] && pin "$c" "$R/precision_speed.log" $PY benchmarks/precision_speed.py --threads 2 \
        --steps 5 --candidates --models "$MODELS"
      if [ "$s" = 1 ]; then  # issue #8's hour: the epochs `--time 1h` buys each candidate here
        for m in $PLAN_MODELS; do
          pin "$c" "$R/plan-$PLAN_TIME-$m.log" $PY experiments/hour-recipe/train_variant.py train --data-dir "$DATA" \
            --device cpu --model "$m" --recipe fast --time "$PLAN_TIME" --plan
        done
      fi
    ) &
    if [ "$PARITY" = 1 ]; then
      ( for p in fp32 bf16; do
          train $((6 + 2 * s)),$((7 + 2 * s)) "parity-$p-s$s" --model fastnet --recipe fast --precision "$p" --seed "$s"
        done ) &
    fi
  done
else
  echo "no avx512_bf16/amx_bf16 on this CPU: the bf16 CPU jobs are skipped" | tee "$OUT/skipped.txt"
fi
gpu_runs() {  # gpu_runs LIST...: each line not yet recorded, in the background, a host core each
  local list line name c n resume words
  for list in "$@"; do
    n=0
    while IFS= read -r line || [ -n "$line" ]; do
      split_line "$line"
      [ ${#words[@]} -eq 0 ] && continue
      [ "$SMOKE" = 1 ] && [ $((n++)) -gt 0 ] && continue  # one line of each list
      name=${words[0]}
      if [ -e "benchmarks/results/validation/$name.json" ]; then
        echo "$name: already recorded, not rerun" >> "$OUT/gpu-skipped.txt"; continue
      fi
      resume=(); [ -e "$R/$name/last.pt" ] && resume=(--resume)
      c=$core; core=$((core + 1))
      pin "$c" "$R/$name.log" $PY experiments/hour-recipe/train_variant.py --threads 1 train --no-progress \
        --data-dir "$DATA" --val-split 5000 --out "$R/$name" "${words[@]:1}" "${GPU[@]}" "${resume[@]}" &
    done < "$list"
  done
}
finished_weights() {  # finished_weights LIST: the model.safetensors of the list's runs that ended here
  local line words
  while IFS= read -r line || [ -n "$line" ]; do
    split_line "$line"
    [ ${#words[@]} -gt 0 ] && [ -e "$R/${words[0]}/metrics.json" ] && echo "$R/${words[0]}/model.safetensors"
  done < "$1"
}
if [ "$HAS_GPU" = 1 ]; then
  core=$([ "$PARITY" = 1 ] && echo 12 || echo 8)
  gpu_runs $GPU_LIST
  if [ -n "$TEACHER_LIST" ]; then
    (  # the students need the teachers' soft labels: teachers, then the file, then students
      first=$core
      gpu_runs "$TEACHER_LIST"
      wait
      if [ ! -e "$TEACHER_FILE" ]; then
        mapfile -t teachers < <(finished_weights "$TEACHER_LIST")
        if [ ${#teachers[@]} -gt 0 ]; then
          mkdir -p "$(dirname "$TEACHER_FILE")"
          pin "$first" "$R/soft-labels.log" $PY -m tinycifar soft-labels --data-dir "$DATA" \
            "${teachers[@]/#/--weights=}" --out "$TEACHER_FILE" "${SOFT_LABELS[@]}"
          cp "$TEACHER_FILE" "$OUT/" 2>/dev/null
        fi
      fi
      core=$first
      if [ -e "$TEACHER_FILE" ]; then
        gpu_runs $STUDENT_LIST
      else
        echo "$STUDENT_LIST: not run, no teacher file (no teacher finished, or see soft-labels.log)" >> "$OUT/gpu-skipped.txt"
      fi
      wait
    ) &
  fi
fi
wait
# the teachers' 8 MB weights stay behind: their soft labels ($OUT/wide4.safetensors) are what is reused
tar czf "$OUT/runs.tgz" --exclude='*.pt' --exclude='*.pt.*' --exclude='*.tmp' --exclude='t[0-9]*/model.safetensors' \
  -C "$OUT" runs env.txt
echo "bf16 host session done after $SECONDS s"
for f in "$R"/tta-s*.log "$R"/precision_speed.log "$R"/plan-*.log "$R"/soft-labels.log; do echo "== $f"; tail -4 "$f"; done
for d in "$R"/*/; do
  case $d in */tta-*) continue ;; esac
  echo "== $d: $(tr -d '\n ' < "$d/metrics.json" 2>/dev/null || echo 'no metrics (did not finish)')"
done
