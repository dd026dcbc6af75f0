"""How much of fastnet's training step freezing its first layers saves (issue #25, FreezeOut).

With the stem frozen (the fast recipe after its third epoch) the first convolution already
skips its input gradient; freezing its filters too skips its weight gradient, and freezing
the whole first group stops the backward pass at the second group's input. Kinds, each
timed in turn for several rounds (ms a step; rel = fastest round against the base's):

    python experiments/fast-recipe/freeze_bench.py
"""
import sys

import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from step_timing import bf16_step, frozen_stem, ms_per_step, trainable  # noqa: E402

from tinycifar.models import create_model  # noqa: E402

torch.set_num_threads(2)


def build(kind: str):
    torch.manual_seed(0)
    model = frozen_stem(create_model("fastnet"))
    group1, group2 = model.features[1], model.features[2]
    frozen = {"base": [], "conv1": [group1[0]], "group1": [group1], "groups12": [group1, group2]}[kind]
    for module in frozen:
        for p in module.parameters():
            p.requires_grad_(False)
    return model


kinds = ["base", "conv1", "group1", "groups12"]
steps = {k: bf16_step(build(k)) for k in kinds}
best = {k: [] for k in kinds}
for _ in range(3):
    for k in kinds:
        best[k].append(ms_per_step(steps[k], 30, warmup=5))
for k in kinds:
    print(f"{k:9s} trainable {trainable(build(k)):6d} ms/step " + " ".join(f"{v:.1f}" for v in best[k])
          + f"  rel {min(best[k]) / min(best['base']):.2f}")
