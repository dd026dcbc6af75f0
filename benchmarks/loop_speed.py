"""What each design choice of the training loop buys, measured side by side in one process.

Each variant runs the same number of real training steps of a model (``--model``) on
real-sized random uint8 data and reports images/s and the ratio to the shipped loop:

- ``shipped``: uint8 data in memory; the batch's selection, translation and flip are one
  gather on the uint8 set, then it is normalised; model and batch channels-last;
- ``augment after conversion``: the batch selected and normalised first, then padded,
  cropped and flipped as floats, each a pass of its own (this project's loop until
  2026-11-26; the same numbers come out);
- ``contiguous``: as shipped, with the model and batch in the default NCHW layout;
- ``per-image aug``: augmentation done one image at a time in a Python loop (what a
  Dataset + per-sample transforms pipeline does), the rest as shipped;
- ``float32 data``: the data set kept as normalised float32 (4× the memory) instead of uint8.

The variants take turns for ``--rounds`` rounds (the order reversed every other round), and
each reports its median, so a machine that slows down mid-run shifts them all alike::

    python benchmarks/loop_speed.py --model fastnet --batch-size 256 --steps 10 --rounds 5 \
        --json benchmarks/results/loop_speed/fastnet.json      # docs/training.md's table
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from tinycifar import augment
from tinycifar.inference import prepare
from tinycifar.models import create_model
from tinycifar.optimizers import make_optimizer
from tinycifar.precision import cpu_info
from tinycifar.recipe import Recipe


def per_image_augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    out = []
    for img in x:  # the per-sample pipeline this project avoids
        img = augment.translate(img[None], 2, torch.randint(0, 5, (1, 2), generator=g))[0]
        if torch.rand(1, generator=g) < 0.5:
            img = img.flip(2)
        out.append(img)
    return torch.stack(out).contiguous(memory_format=torch.channels_last)


def augment_after_conversion(images: torch.Tensor, draws: augment.Draws, pad: int) -> torch.Tensor:
    x = prepare(images[draws.order], torch.device("cpu"))
    padded = F.pad(x, (pad,) * 4, mode="reflect")
    rows = draws.shifts[:, 0, None] + torch.arange(x.shape[2])
    cols = draws.shifts[:, 1, None] + torch.arange(x.shape[3])
    x = padded[torch.arange(len(x))[:, None, None], :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    return augment.flip(x, draws.flips).contiguous(memory_format=torch.channels_last)


def batch_ms(images: torch.Tensor, labels: torch.Tensor, bs: int, rounds: int = 20) -> dict[str, float]:
    """The batch alone (selection, conversion, translate, flip), shipped against after
    conversion, alternating: the part of a step the two variants differ in."""
    recipe = Recipe()
    aug = augment.Augmentation.from_recipe(recipe, len(images), seed=0)
    epoch = aug.draw(0, torch.Generator().manual_seed(0), torch.device("cpu"))
    make = {"shipped": lambda d: aug.batch(images, labels, d, torch.device("cpu"))[0],
            "augment after conversion": lambda d: augment_after_conversion(images, d, recipe.translate)}
    times: dict[str, list[float]] = {k: [] for k in make}
    for r in range(rounds):
        d = epoch[r * bs:(r + 1) * bs]
        for name in make if r % 2 == 0 else list(make)[::-1]:
            t0 = time.perf_counter()
            make[name](d)
            times[name].append(1000 * (time.perf_counter() - t0))
    return {k: statistics.median(v) for k, v in times.items()}


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
        elif name == "augment after conversion":
            x = augment_after_conversion(data, draws, recipe.translate)
        else:
            x = aug.batch(data, labels, draws, torch.device("cpu"))[0]
            if name == "contiguous":
                x = x.contiguous()
        loss = F.cross_entropy(model(x), labels[idx], label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * bs / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="fastnet", help="docs/training.md's table is fastnet's (default)")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON")
    args = p.parse_args()
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (50_000, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (50_000,), generator=g)
    variants = ["shipped", "augment after conversion", "contiguous", "per-image aug", "float32 data"]
    rates: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(args.rounds):
        for v in variants if r % 2 == 0 else variants[::-1]:
            rates[v].append(run_variant(v, images, labels, args.steps, args.batch_size, args.model))
    speeds = {v: statistics.median(rates[v]) for v in variants}
    print(f"{args.model}, batch {args.batch_size}, {args.steps} steps × {args.rounds} rounds (median), "
          f"torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print("| variant | train img/s | vs shipped |\n|---|---:|---:|")
    for v, s in speeds.items():
        print(f"| {v} | {s:,.0f} | {s / speeds['shipped']:.2f}× |")
    batch = batch_ms(images, labels, args.batch_size)
    print(f"the batch alone: shipped {batch['shipped']:.1f} ms, augment after conversion "
          f"{batch['augment after conversion']:.1f} ms (median of 20, alternating)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "model": args.model, "batch_size": args.batch_size, "steps": args.steps, "rounds": args.rounds,
            "cpu": cpu_info(), "img_per_s_rounds": rates,
            "threads": torch.get_num_threads(), "torch": torch.__version__, "img_per_s": speeds,
            "batch_ms": batch}, indent=2) + "\n")


if __name__ == "__main__":
    main()
