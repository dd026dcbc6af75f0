"""Training-step time of fastnet at other widths, side by side (issue #25, u01/u02).

    python experiments/fast-recipe/widths_bench.py

Batch 128, bf16 autocast, channels-last, stem frozen; three interleaved repetitions of 40
steps; ``rel`` is the fastest repetition against (24, 40, 64)'s fastest. ``k16`` kinds
use a 16-channel stem in place of the 24-channel whitening.
"""
import torch, torch.nn as nn
from tinycifar.models.fastnet import FastNet
from step_timing import bf16_step, frozen_stem, ms_per_step, trainable
torch.manual_seed(0)
class Half(nn.Module):  # whitening without the sign copies: 12 channels, no ReLU
    def __init__(self):
        super().__init__(); self.c = nn.Conv2d(3, 12, 2)
    def forward(self, x): return self.c(x)
def make(kind):
    if kind.startswith("k16w"):
        w = tuple(int(v) for v in kind[4:].split(","))
        m = FastNet(widths=w); m.whiten = nn.Conv2d(3, 16, 2)
        m.features[1][0] = nn.Conv2d(16, w[0], 3, padding=1, bias=False)
        return m
    if kind.startswith("w"):
        w = tuple(int(v) for v in kind[1:].split(","))
        return FastNet(widths=w)
    if kind == "half12":
        m = FastNet(); m.whiten = Half(); m.features[0] = nn.Identity()
        m.features[1][0] = nn.Conv2d(12, 24, 3, padding=1, bias=False)
        return m
def bench(kind, n=40):
    m = frozen_stem(make(kind))
    return ms_per_step(bf16_step(m), n, warmup=8), trainable(m)
kinds = ["w24,40,64", "half12", "w16,40,64", "w16,48,64", "w20,40,64", "w12,40,64", "w32,40,64", "k16w16,40,64", "k16w16,48,64"]
res = {k: [] for k in kinds}
for rep in range(3):
    for k in kinds:
        res[k].append(bench(k)[0])
for k in kinds:
    print(f"{k:12s} trainable params, stem excluded {bench(k,2)[1]:6d}  ms/step {' '.join(f'{v:.1f}' for v in res[k])}  rel {min(res[k])/min(res['w24,40,64']):.2f}", flush=True)
