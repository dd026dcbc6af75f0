"""Final-epoch test accuracy of a recipe over several seeds, mean ± std.

Runs ``tinycifar train`` once per seed (any other option is passed on to it: the default is
the default model with the shipped recipe on all 50,000 training images), then reports
each seed's final-epoch accuracy on the official 10,000-image test set, plain and with
flip TTA, and their mean ± std. Nothing is chosen by test accuracy: the last epoch is the
result. With ``--val-split N`` everything is reported on N held-out training images
instead (use that for tuning)::

    python benchmarks/accuracy.py                          # 3 seeds
    python benchmarks/accuracy.py --seeds 0 1 2 3 4 --out runs/accuracy
    python benchmarks/accuracy.py --val-split 5000 --epochs 40   # tuning, never the test set
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from tinycifar import cli, records
from tinycifar.commands import train
from tinycifar.data import load_cifar10
from tinycifar.evaluate import evaluate
from tinycifar.inference import resolve_device
from tinycifar.models import model_recipe
from tinycifar.pretrained import load_model
from tinycifar.splits import split_validation


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Other options go to `tinycifar train` (see its --help).")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", type=Path, default=Path("runs/accuracy"))
    args, train_argv = p.parse_known_args()
    train_parser = argparse.ArgumentParser(prog="tinycifar train")
    train.configure_parser(train_parser)
    targs = train_parser.parse_args(train_argv)  # to know the model and the evaluation set

    full_train = load_cifar10("train", targs.data_dir)
    _, val = split_validation(full_train, targs.val_split)
    eval_images, eval_labels = val if val is not None else load_cifar10("test", targs.data_dir)
    eval_name = "val" if val is not None else "test"
    dev = resolve_device(targs.device)

    results = []
    for seed in args.seeds:
        out = args.out / f"{targs.model}-seed{seed}"
        t0 = time.perf_counter()
        rc = cli.main(["train", *train_argv, "--seed", str(seed), "--out", str(out), "--no-progress"])
        wall = time.perf_counter() - t0
        if rc:
            raise SystemExit(f"training seed {seed} failed (exit {rc})")
        metrics = json.loads((out / "metrics.json").read_text())
        scores = evaluate(load_model(targs.model, out / "model.safetensors", dev), eval_images, eval_labels,
                          dev, tta=True)
        assert abs(scores["accuracy"] - records.metrics(metrics)["eval_acc"]) < 1e-6  # one truth
        results.append({"seed": seed, "acc": scores["accuracy"], "tta_acc": scores["tta_accuracy"],
                        "params": metrics["params"], "train_s": metrics["train_seconds"], "wall_s": wall})
        print(f"seed {seed}: {eval_name} acc {scores['accuracy']:.2%}  TTA {scores['tta_accuracy']:.2%}  "
              f"wall {wall / 60:.1f} min", flush=True)

    def spread(key: str) -> str:
        xs = [100 * r[key] for r in results]
        sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
        return f"{statistics.mean(xs):.2f} ± {sd:.2f} %  (min {min(xs):.2f}, max {max(xs):.2f})"

    recipe = targs.recipe or model_recipe(targs.model)
    print(f"\nmodel {targs.model}, {results[0]['params']:,} params, recipe {recipe}, "
          f"{len(results)} seeds, {eval_name} set of {len(eval_labels):,} images, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{eval_name} accuracy      : {spread('acc')}")
    print(f"{eval_name} accuracy, TTA : {spread('tta_acc')}")
    print(f"wall time per run : {statistics.mean(r['wall_s'] for r in results) / 60:.1f} min "
          f"(max {max(r['wall_s'] for r in results) / 60:.1f})")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "accuracy.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
