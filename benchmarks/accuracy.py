"""The one command behind every accuracy claim in the README.

Trains the default model with the shipped recipe (``tinycifar train``'s own ``fit``) on all
50,000 training images, once per seed, and reports each seed's final-epoch accuracy on the
official 10,000-image test set, plain and with flip TTA, then mean ± std. Nothing is chosen
by test accuracy: the last epoch is the result. With ``--val-split N`` it reports on N
held-out training images instead (use that for tuning)::

    python benchmarks/accuracy.py                  # 3 seeds, ~20 min each on a 2-core CPU
    python benchmarks/accuracy.py --seeds 0 1 2 3 4 --out runs/accuracy
    python benchmarks/accuracy.py --val-split 5000 --epochs 30   # tuning, never the test set
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from tinycifar.data import load_cifar10
from tinycifar.evaluate import evaluate
from tinycifar.inference import resolve_device
from tinycifar.models import DEFAULT_MODEL
from tinycifar.pretrained import load_model
from tinycifar.recipe import add_recipe_flags, apply_overrides, load_recipe
from tinycifar.train import fit, split_validation


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--recipe", default="default")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--val-split", type=int, default=0)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=Path("runs/accuracy"))
    add_recipe_flags(p)
    args = p.parse_args()
    recipe = apply_overrides(load_recipe(args.recipe), args)
    dev = resolve_device(args.device)

    train, val = split_validation(load_cifar10("train", args.data_dir), args.val_split)
    eval_data, eval_name = (val, "val") if val is not None else (load_cifar10("test", args.data_dir), "test")
    results = []
    for seed in args.seeds:
        out = args.out / f"{args.model}-seed{seed}"
        t0 = time.perf_counter()
        metrics = fit(args.model, recipe, out, train, eval_data, eval_name, seed=seed, device=args.device)
        wall = time.perf_counter() - t0
        model = load_model(args.model, out / "model.safetensors", dev)
        scores = evaluate(model, eval_data[0], eval_data[1], dev, tta=True)
        results.append({"seed": seed, "acc": scores["accuracy"], "tta_acc": scores["tta_accuracy"],
                        "params": metrics["params"], "wall_s": wall})
        print(f"seed {seed}: {eval_name} acc {scores['accuracy']:.2%}  TTA {scores['tta_accuracy']:.2%}  "
              f"wall {wall / 60:.1f} min", flush=True)

    def spread(key: str) -> str:
        xs = [100 * r[key] for r in results]
        sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
        return f"{statistics.mean(xs):.2f} ± {sd:.2f} %  (min {min(xs):.2f}, max {max(xs):.2f})"

    print(f"\nmodel {args.model}, {results[0]['params']:,} params, recipe {args.recipe}, "
          f"{recipe.epochs} epochs, {len(results)} seeds, {eval_name} set of {len(eval_data[0]):,}, "
          f"torch {torch.__version__} on {dev} ({torch.get_num_threads()} threads)")
    print(f"{eval_name} accuracy      : {spread('acc')}")
    print(f"{eval_name} accuracy, TTA : {spread('tta_acc')}")
    print(f"wall time per run : {statistics.mean(r['wall_s'] for r in results) / 60:.1f} min")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "accuracy.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
