#!/usr/bin/env bash
# Issue #8's search for the `best` recipe on a GPU lent for minutes, choice and test in one go.
#
#   DATA=/path/holding/cifar-10-batches-py OUT=gpu-best bash benchmarks/gpu_best_search.sh
#
# 1. Side by side on the validation split (--val-split 5000, seed 0, never the test set):
#    the candidate networks of benchmarks/train_variant.py and fastnet, each with the fast
#    recipe stretched to $EPOCHS epochs, with and without mixing (CutMix + mixup); fastnet
#    also with an EMA instead of Lookahead. Every candidate fits the hour of a 2-core bf16
#    CPU in training compute (about 430 TMAC, benchmarks/README.md): at 112 epochs fastnet
#    spends 177, sepnet 190, sepnet-hires 298, mixernet 313. A run still going after
#    $SEARCH_S seconds is stopped and left out of the choice (on the H200, 16 runs side by
#    side took 183 s for 112 epochs of fastnet).
# 2. The run with the best final validation accuracy is chosen by this script (the rule is
#    written here, before any result), and its configuration trains on all 50,000 images for
#    seeds 0, 1, 2 side by side; their final test accuracy is the figure.
# Runs land in $OUT/runs/NAME; $OUT/choice.txt says what was chosen and why; $OUT/runs.tgz
# packs them without checkpoints. SMOKE=1 runs each command for 1 epoch on 500 images
# (on a 2-core CPU give it SEARCH_S=900: each run still evaluates 49,500).
set -u
: "${DATA:?set DATA to the folder holding cifar-10-batches-py}"
OUT=${OUT:-gpu-best}
EPOCHS=${EPOCHS:-112}
SEARCH_S=${SEARCH_S:-330}  # each phase's runs are stopped after this, finished or not
TEST_S=${TEST_S:-240}
R=$OUT/runs
mkdir -p "$R"
export TINYCIFAR_DATA=$DATA PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
PY=${PYTHON:-python3}
SMOKE_ARGS=()
[ "${SMOKE:-0}" = 1 ] && SMOKE_ARGS=(--epochs 1 --warmup-epochs 0.5)
VAL=(--val-split 5000)
[ "${SMOKE:-0}" = 1 ] && VAL=(--val-split 49500)

{ nvidia-smi 2>&1 | head -15; $PY -c "import torch; print('torch', torch.__version__)"
  lscpu | grep -E 'Model name|^CPU\(s\)|^Flags'; } > "$OUT/env.txt"

run() {  # run SECONDS NAME ARGS...: train in the background, stopped after SECONDS
  local limit=$1 name=$2; shift 2
  (timeout "$limit" $PY benchmarks/train_variant.py train --no-progress --data-dir "$DATA" \
     --out "$R/$name" "$@" "${SMOKE_ARGS[@]}" > "$R/$name.log" 2>&1 || echo "FAILED ($?)" >> "$R/$name.log") &
}

# --- 1. the search, validation split -------------------------------------------------------
MIX=(--cutmix 1.0 --mixup 0.2)
declare -A CANDIDATE=(
  [fastnet]="--model fastnet"
  [sepnet]="--model sepnet"
  [sepnet-hires]="--model sepnet --model-args {\"pools\":[false,true]}"
  [mixernet]="--model mixernet"
)
for name in "${!CANDIDATE[@]}"; do
  read -ra args <<< "${CANDIDATE[$name]}"
  run "$SEARCH_S" "val-$name-e$EPOCHS" "${args[@]}" --recipe fast --epochs "$EPOCHS" "${VAL[@]}"
  run "$SEARCH_S" "val-$name-e$EPOCHS-mix" "${args[@]}" --recipe fast --epochs "$EPOCHS" "${VAL[@]}" "${MIX[@]}"
done
run "$SEARCH_S" "val-fastnet-e$EPOCHS-ema" --model fastnet --recipe fast --epochs "$EPOCHS" --lookahead 0 \
  --ema-decay 0.999 "${VAL[@]}"
wait

# --- 2. the choice, then 3 seeds on the test set --------------------------------------------
best=$($PY - "$R" <<'PY'
import json, sys
from pathlib import Path
runs = []
for m in Path(sys.argv[1]).glob("val-*/metrics.json"):
    runs.append((json.loads(m.read_text())["final_val_acc"], m.parent.name))
for acc, name in sorted(runs, reverse=True):
    print(f"{name} {acc:.4f}", file=sys.stderr)
print(max(runs)[1])
PY
)
[ -n "$best" ] || { echo "no validation run finished"; exit 1; }
cp "$R/$best/config.json" "$OUT/chosen-config.json"
echo "chosen by final validation accuracy: $best" > "$OUT/choice.txt"
read -ra args < <($PY - "$R/$best/config.json" "$OUT/chosen.toml" <<'PY'
import json, sys
from tinycifar.recipe import recipe_from_dict, recipe_to_toml
c = json.loads(open(sys.argv[1]).read())
open(sys.argv[2], "w").write(recipe_to_toml(recipe_from_dict(c["recipe"])))
print("--model", c["model"], "--recipe", sys.argv[2],
      *(["--model-args", json.dumps(c["model_args"], separators=(",", ":"))] if c.get("model_args") else []))
PY
)
for s in 0 1 2; do run "$TEST_S" "test-$best-s$s" "${args[@]}" --seed "$s"; done
wait
tar czf "$OUT/runs.tgz" --exclude='*.pt' -C "$OUT" runs choice.txt chosen-config.json chosen.toml
echo "gpu best search done: $(cat "$OUT/choice.txt")"
