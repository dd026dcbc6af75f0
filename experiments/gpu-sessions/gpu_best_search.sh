#!/usr/bin/env bash
# Issue #8's `best` recipe on a GPU lent for minutes: choice and test in one command.
#
#   DATA=/path/holding/cifar-10-batches-py OUT=gpu-best bash experiments/gpu-sessions/gpu_best_search.sh
#   CHOSEN=benchmarks/results/validation/s04-....json DATA=... bash experiments/gpu-sessions/gpu_best_search.sh
#   (a distilled CHOSEN run also needs TEACHER=its soft-labels file)
#
# 1. The search (skipped when CHOSEN names a validation run made elsewhere: its JSON file or
#    config.json). Side by side on the validation split (--val-split 5000, seed 0, never the
#    test set): the candidate networks of experiments/hour-recipe/train_variant.py and fastnet, each with
#    the fast recipe stretched to $EPOCHS epochs, with and without mixing (CutMix + mixup);
#    fastnet also with an EMA instead of Lookahead. Every candidate fits the hour of a 2-core
#    bf16 CPU in training compute (about 430 TMAC, experiments/hour-recipe/README.md): at 112 epochs
#    fastnet spends 177, sepnet 190, sepnet-hires 298, mixernet 313. Runs still going after
#    $SEARCH_S seconds are stopped and listed as such (on the H200, 16 runs side by side took
#    183 s for 112 epochs of fastnet).
# 2. The choice, by a rule written here before any result: the best final validation
#    accuracy among the runs that finished, and fast enough that a test run (10% more
#    images) fits the time left before $DEADLINE. Its configuration trains on all 50,000
#    images for seeds 0, 1, 2 side by side; their final test accuracy is the figure.
#    SEARCH_LIST=FILE replaces these candidates with the file's lines, "NAME ARGS..." each
#    (shell quoting, # comments), and only ranks them (experiments/hour-recipe/screens-8.txt: issue #8's
#    pre-registered screens); with MIN_VAL=0.92 as well it tests the best run that reached
#    it, and nothing if none did (issue #8's rule, for a list of runs stretched to the hour).
# Everything stops by $DEADLINE seconds after the start (the device tool allows 600 a
# command). Runs land in $OUT/runs/NAME; $OUT/choice.txt says what was chosen, the ranking
# and each seed's result; $OUT/runs.tgz packs them without checkpoints. SMOKE=1 runs each
# command for 1 epoch on 500 images (on a 2-core CPU give it DEADLINE=1800).
set -u
OUT=${OUT:-gpu-best}
EPOCHS=${EPOCHS:-112}
DEADLINE=${DEADLINE:-540}  # seconds from the start; leaves time to pack and copy back
SEARCH_S=${SEARCH_S:-300}
CHOSEN=${CHOSEN:-}
SEARCH_LIST=${SEARCH_LIST:-}
MIN_VAL=${MIN_VAL:-0}
TEACHER=${TEACHER:-}  # the soft-labels file of a distilled CHOSEN run (experiments/hour-recipe/distill-8.txt)
if [ -n "$(ls -A "$OUT/runs" 2>/dev/null)" ]; then
  echo "$OUT/runs already holds runs, which the ranking would mix in: give a new OUT" >&2; exit 2
fi
source experiments/gpu-sessions/device_env.sh
export OMP_NUM_THREADS=1
SMOKE_ARGS=()
VAL=(--val-split 5000)
if [ "${SMOKE:-0}" = 1 ]; then SMOKE_ARGS=(--epochs 1 --warmup-epochs 0.5); VAL=(--val-split 49500); fi

{ nvidia-smi 2>&1 | head -15; $PY -c "import torch; print('torch', torch.__version__)"
  lscpu | grep -E 'Model name|^CPU\(s\)|^Flags'; } > "$OUT/env.txt"

run() {  # run SECONDS NAME ARGS...: train in the background, stopped after SECONDS
  local limit=$1 name=$2; shift 2
  (timeout -k 10 "$limit" $PY experiments/hour-recipe/train_variant.py train --no-progress --data-dir "$DATA" \
     --out "$R/$name" "$@" "${SMOKE_ARGS[@]}" > "$R/$name.log" 2>&1 || echo "FAILED ($?)" >> "$R/$name.log") &
}

# --- 1. the search, validation split -------------------------------------------------------
if [ -z "$CHOSEN" ] && [ -n "$SEARCH_LIST" ]; then
  while IFS= read -r line || [ -n "$line" ]; do
    split_line "$line"
    [ ${#words[@]} -eq 0 ] && continue
    run "$SEARCH_S" "val-${words[0]}" "${words[@]:1}" "${VAL[@]}"
  done < "$SEARCH_LIST"
  wait
  if [ "$MIN_VAL" = 0 ]; then MIN_VAL=rank; fi  # a list is ranked, not tested, unless MIN_VAL says
elif [ -z "$CHOSEN" ]; then
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
fi

# --- 2. the choice, then 3 seeds on the test set --------------------------------------------
TEST_S=$((DEADLINE - SECONDS))
# Prints the chosen run's train arguments one a line; writes chosen.toml and choice.txt.
mapfile -t args < <($PY - "$R" "$OUT" "$TEST_S" "$CHOSEN" "$MIN_VAL" "$TEACHER" <<'PY'
import json, sys
from pathlib import Path
from tinycifar.recipe import recipe_from_dict, recipe_to_toml

runs, out, test_s, chosen = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
teacher = sys.argv[6]
rank_only = sys.argv[5] == "rank"
min_val = 0.0 if rank_only else float(sys.argv[5])
lines = []
if chosen:
    data = json.loads(Path(chosen).read_text())
    config = data.get("config", data)  # a results JSON holds the run's config.json under "config"
    lines.append(f"chosen on the validation split elsewhere: {chosen} "
                 f"(final val acc {data.get('metrics', {}).get('final_val_acc', '?')})")
else:
    ranked = []
    for d in sorted(runs.glob("val-*/")):
        try:
            m = json.loads((d / "metrics.json").read_text())
        except (OSError, ValueError):
            lines.append(f"  {d.name}: did not finish in the search's time")
            continue
        fits = m["train_seconds"] * 1.1 * 1.2 <= test_s  # 10% more images, 20% margin
        ranked.append((fits, m["final_val_acc"], d.name, m["train_seconds"]))
    ranked.sort(key=lambda r: r[1], reverse=True)
    lines += [f"  {n}: final val acc {a:.4f}, {s:.0f} s" + ("" if f else f", too slow for the {test_s} s left")
              for f, a, n, s in ranked]
    eligible = [r for r in ranked if r[0] and r[1] >= min_val and not rank_only]
    if not eligible:
        why = ("ranked only (SEARCH_LIST without MIN_VAL): nothing tested" if rank_only else
               f"no validation run reached {min_val:.4f} and fits the time left" if min_val else
               "no validation run finished in time to be tested")
        (out / "choice.txt").write_text("\n".join([why] + lines) + "\n")
        print("\n".join([why] + lines), file=sys.stderr)
        sys.exit(1)
    name = eligible[0][2]
    config = json.loads((runs / name / "config.json").read_text())
    lines.insert(0, f"chosen by final validation accuracy among runs that fit: {name}")
why = None
if config.get("teacher") and not teacher:
    why = f"{chosen or name} was distilled from a teacher: give its soft-labels file as TEACHER=FILE"
elif config.get("teacher"):  # the same file, or the seeds would test another recipe
    from tinycifar.data import train_size
    from tinycifar.distill import fingerprint, load_soft_labels, training_rows

    probs, _ = load_soft_labels(Path(teacher), train_size())
    val_split = config["eval_images"] if config["eval_on"] == "val" else 0
    if fingerprint(training_rows(probs, val_split)) != config["teacher"]:
        why = f"TEACHER={teacher} is not the soft-labels file {chosen or name} learnt from"
if why:
    (out / "choice.txt").write_text("\n".join([why] + lines) + "\n")
    sys.exit(why)
(out / "chosen.toml").write_text(recipe_to_toml(recipe_from_dict(config["recipe"])))
(out / "chosen-config.json").write_text(json.dumps(config, indent=2))
(out / "choice.txt").write_text("\n".join(lines) + "\n")
print("--model", config["model"], "--recipe", out / "chosen.toml", sep="\n")
if config.get("model_args"):
    print("--model-args", json.dumps(config["model_args"], separators=(",", ":")), sep="\n")
if config.get("teacher"):  # a distilled run: its seeds learn from the same soft labels
    print("--teacher", teacher, sep="\n")
PY
)
pack() {  # the runs without checkpoints, and what was chosen, in one file to copy back
  local f files=(runs)
  for f in choice.txt chosen-config.json chosen.toml; do [ -e "$OUT/$f" ] && files+=("$f"); done
  tar czf "$OUT/runs.tgz" --exclude='*.pt' --exclude='*.pt.*' --exclude='*.tmp' -C "$OUT" "${files[@]}"
}
if [ ${#args[@]} -eq 0 ] || [ ! -s "$OUT/chosen.toml" ]; then
  echo "no configuration to test: see $OUT/choice.txt and the logs in $R" | tee -a "$OUT/choice.txt"
  pack
  exit 1
fi
[ "${SMOKE:-0}" = 1 ] && args+=(--val-split 49500)
TEST_S=$((DEADLINE - SECONDS))
for s in 0 1 2; do run "$TEST_S" "test-s$s" "${args[@]}" --seed "$s"; done
wait
$PY - "$R" >> "$OUT/choice.txt" <<'PY'
import json, sys
from pathlib import Path
for s in range(3):
    try:
        m = json.loads((Path(sys.argv[1]) / f"test-s{s}" / "metrics.json").read_text())
    except (OSError, ValueError):
        print(f"seed {s}: did not finish by the deadline")
        continue
    accs = ", ".join(f"{k} {v:.4f}" for k, v in m.items() if k.startswith("final_") and k.endswith("_acc"))
    print(f"seed {s}: {accs} ({m['train_seconds']:.0f} s of training)")
PY
pack
echo "gpu best search done:"; cat "$OUT/choice.txt"
