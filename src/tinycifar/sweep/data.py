"""The images a space's trials train and score on: a fixed split of the training set, so
that every trial of every worker, and every retry, sees the same ones."""

from __future__ import annotations

from typing import Any

from tinycifar.sweep.space import Space


def load_data(space: Space, data_dir: str | None) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """The training images and the held-out ones a space's trials train and score on."""
    from tinycifar.data import load_cifar10
    from tinycifar.splits import split_validation, subset

    train, val = split_validation(load_cifar10("train", data_dir), space.val_split)
    assert val is not None  # load_space refuses a val_split of 0
    return subset(train, space.train_images, seed=1), subset(val, space.val_images, seed=2)
