"""Training-step time of fastnet against fastnet_sconv (first convolution at stride 2), side by side.

    python experiments/fast-recipe/sconv_bench.py base:24,40,64 sconv:24,40,64 sconv:32,40,56

Batch 128, bf16 autocast, channels-last, stem frozen (as after the fast recipe's third
epoch); three interleaved repetitions of 40 steps; ``rel`` is the fastest repetition
against the first kind's fastest.
"""
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hour-recipe"))
import train_variant as tv
from step_timing import bf16_step, frozen_stem, ms_per_step
from tinycifar.models.fastnet import FastNet
from tinycifar.summary import summarize
def make(kind):
    name, w = kind.split(":")
    w = tuple(int(v) for v in w.split(","))
    return FastNet(widths=w) if name == "base" else tv.strided_first_conv(FastNet(widths=w))
def bench(kind, n=40):
    return ms_per_step(bf16_step(frozen_stem(make(kind))), n, warmup=8)
kinds = sys.argv[1:]
res = {k: [] for k in kinds}
for rep in range(3):
    for k in kinds: res[k].append(bench(k))
for k in kinds:
    m = make(k); s = summarize(m)
    print(f"{k:18s} params {sum(p.numel() for p in m.parameters()):6d} MMAC {s.macs/1e6:5.1f} ms/step {' '.join(f'{v:.1f}' for v in res[k])} rel {min(res[k])/min(res[kinds[0]]):.2f}", flush=True)
