"""``tinycifar soft-labels``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tinycifar.distill import check_held_out, held_out, model_probs, save_soft_labels
from tinycifar.errors import TinyCifarError


def configure_parser(p: argparse.ArgumentParser) -> None:
    from tinycifar.commands.flags import add_data_flag, add_device_flag, add_precision_flag

    p.add_argument(
        "--weights",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a trained model's weights (a run's model.safetensors); repeat for an ensemble",
    )
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME",
        help="a zoo model's shipped weights (e.g. sepnet_g31, the mcu recipe's teacher); repeatable, "
        "and mixes with --weights",
    )
    p.add_argument("--out", type=Path, required=True, help="the soft-labels file to write")
    p.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help="soften each model's probabilities: softmax(logits / T) (default 1)",
    )
    p.add_argument(
        "--val-split",
        type=int,
        default=0,
        metavar="N",
        help="also report each model's accuracy on the N held-out images of `train --val-split N` "
        "(the file always covers all 50,000 training images)",
    )
    add_device_flag(p)
    add_data_flag(p)
    add_precision_flag(p)


def run(args: argparse.Namespace) -> int:
    from tinycifar.data import load_cifar10, train_size
    from tinycifar.evaluate import metrics_from_logits
    from tinycifar.inference import resolve_device
    from tinycifar.paths import writable_dir
    from tinycifar.precision import resolve_precision
    from tinycifar.pretrained import load_model, pretrained_path, resolve_model_name, weights_metadata
    from tinycifar.splits import split_indices

    # Every option and file is checked before the data is loaded (or downloaded).
    if not args.weights and not args.model:
        raise TinyCifarError("name the teacher: --weights FILE (a run's model.safetensors) or --model NAME (shipped)")
    if not args.temperature > 0:
        raise TinyCifarError(f"--temperature must be positive (got {args.temperature})")
    held = split_indices(train_size(), args.val_split)[1]
    writable_dir(args.out.parent, "--out", "choose a folder you can write to")
    dev = resolve_device(args.device)
    precision = resolve_precision(args.precision, dev)
    # a shipped model is its weights file: the same checks, and its name in the metadata
    files = [*args.weights, *(pretrained_path(name) for name in args.model)]
    names = [resolve_model_name(None, w) for w in args.weights] + args.model
    models = [load_model(name, w, dev) for name, w in zip(names, [*args.weights, *[None] * len(args.model)])]
    # shipped weights trained on all 50,000 training images (tests/test_shipped_weights.py)
    helds = [held_out(weights_metadata(w)) for w in args.weights] + [0] * len(args.model)
    for w, h in zip(files, helds):
        check_held_out(str(w), h, args.val_split)
    images, labels = load_cifar10("train", args.data_dir)
    each = model_probs(models, images, dev, precision, args.temperature)
    probs = each.mean(0)
    if held is not None:  # a ranking of the teachers, on images none of them trained on
        for name, w, p in zip(names, files, each):
            acc = metrics_from_logits(p[held].log(), labels[held])["accuracy"]
            print(f"{w} ({name}): {acc:.2%} on the {len(held):,} held-out images")
        acc = metrics_from_logits(probs[held].log(), labels[held])["accuracy"]
        print(f"the ensemble of {len(models)}: {acc:.2%} on the same images")
    agree = metrics_from_logits(probs.log(), labels)["accuracy"]
    known = [h for h in helds if h is not None]
    save_soft_labels(
        probs,
        args.out,
        {
            "teachers": json.dumps([f"{w.name} ({n})" for w, n in zip(files, names)]),
            "temperature": str(args.temperature),
            "images": f"CIFAR-10 training set, {len(images):,} in file order",
            **({"held_out": str(min(known))} if len(known) == len(helds) else {}),
        },
    )
    # How soft the targets are: teachers trained with label smoothing or mixing give
    # targets far from one-hot even where they are right, which a share or a
    # temperature should be chosen against.
    true_p = probs.gather(1, labels[:, None].long()).mean().item()
    print(
        f"wrote {args.out}: {len(images):,} images, teacher's label = true label for {agree:.2%}, "
        f"mean probability of the true label {true_p:.1%}"
    )
    return 0
