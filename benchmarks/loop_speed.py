"""What each design choice of the training loop buys, measured side by side in one process.

Each variant runs the same number of real training steps of a model (tinynet unless --model) on real-sized
random uint8 data and reports images/s and the ratio to the shipped loop:

- ``shipped``: uint8 data in memory, batch gathered by index, normalised and augmented as
  one tensor (translate + flip), model and batch channels-last;
- ``contiguous``: the same with the model in the default NCHW layout;
- ``per-image aug``: augmentation done one image at a time in a Python loop (what a
  Dataset + per-sample transforms pipeline does), the rest as shipped;
- ``float32 data``: the data set kept as normalised float32 (4× the memory) instead of uint8.

    python benchmarks/loop_speed.py [--steps 8] [--batch-size 512] [--json results/loop_speed/tinynet.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from tinycifar import augment
from tinycifar.inference import prepare
from tinycifar.models import create_model
from tinycifar.precision import cpu_info
from tinycifar.recipe import Recipe
from tinycifar.train import make_optimizer


def per_image_augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    out = []
    for img in x:  # the per-sample pipeline this project avoids
        img = augment.translate(img[None], 2, torch.randint(0, 5, (1, 2), generator=g))[0]
        if torch.rand(1, generator=g) < 0.5:
            img = img.flip(2)
        out.append(img)
    return torch.stack(out).contiguous(memory_format=torch.channels_last)


def run_variant(name: str, images: torch.Tensor, labels: torch.Tensor, steps: int, bs: int,
                model_name: str) -> float:
    torch.manual_seed(0)
    model = create_model(model_name)
    if name != "contiguous":
        model = model.to(memory_format=torch.channels_last)
    recipe = Recipe()
    opt = make_optimizer(model, recipe)
    g = torch.Generator().manual_seed(0)
    aug = augment.Augmentation.from_recipe(recipe, len(images), seed=0)
    epoch = aug.draw(0, g, torch.device("cpu"))  # once an epoch in the loop too: not timed there
    data = prepare(images, torch.device("cpu")) if name == "float32 data" else images
    t0 = 0.0
    for step in range(steps + 2):  # two warm-up steps
        if step == 2:
            t0 = time.perf_counter()
        draws = epoch[step * bs:(step + 1) * bs]
        idx = draws.order
        if name == "float32 data":
            x = aug(data[idx], draws)
        elif name == "per-image aug":
            x = per_image_augment(prepare(data[idx], torch.device("cpu")), g)
        else:
            x = aug(prepare(data[idx], torch.device("cpu")), draws)
            if name == "contiguous":
                x = x.contiguous()
        loss = F.cross_entropy(model(x), labels[idx], label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * bs / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tinynet", help="the README's table is tinynet's (default)")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON")
    args = p.parse_args()
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (50_000, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (50_000,), generator=g)
    variants = ["shipped", "contiguous", "per-image aug", "float32 data"]
    speeds = {v: run_variant(v, images, labels, args.steps, args.batch_size, args.model) for v in variants}
    print(f"{args.model}, batch {args.batch_size}, {args.steps} steps, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print("| variant | train img/s | vs shipped |\n|---|---:|---:|")
    for v, s in speeds.items():
        print(f"| {v} | {s:,.0f} | {s / speeds['shipped']:.2f}× |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "model": args.model, "batch_size": args.batch_size, "steps": args.steps, "cpu": cpu_info(),
            "threads": torch.get_num_threads(), "torch": torch.__version__, "img_per_s": speeds}, indent=2) + "\n")


if __name__ == "__main__":
    main()
