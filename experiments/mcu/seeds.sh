#!/bin/sh
# The microcontroller model's test seeds (the configuration chosen as m03 in README.md), then
# seed 0's int8 file beside MLPerf Tiny's reference. Resumable: rerun after an interruption.
#   sh experiments/mcu/seeds.sh DATA_DIR [RUNS_DIR]
set -e
DATA=${1:?the folder holding cifar-10-batches-py}
RUNS=${2:-runs}
export TINYCIFAR_DATA="$DATA"
BIN=${BIN:-.venv/bin}
mkdir -p "$RUNS"
SOFT="$RUNS/sepnet_g31-shipped-soft.safetensors"
[ -f "$SOFT" ] || "$BIN/tinycifar" soft-labels --weights src/tinycifar/weights/sepnet_g31.safetensors --out "$SOFT"
# repeat reads finished seeds and resumes interrupted ones by itself
"$BIN/tinycifar" repeat --seeds 0 1 2 --out "$RUNS/mcu-seeds" -- \
    --model fastnet --model-args '{"widths": [24, 36, 56]}' --recipe long --epochs 74 \
    --teacher "$SOFT" --distill 0.7 --label-smoothing 0
"$BIN/python" benchmarks/mcu.py --reference ../shared/peers/mlperf-tiny-ic01/pretrainedResnet_quant.tflite \
    --models fastnet --weights "fastnet=$RUNS/mcu-seeds/seed-0/model.safetensors" --out "$RUNS/mcu-table"
