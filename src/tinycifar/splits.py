"""Data splits, in one place: the validation images held out of the training set, the
teacher rows that go with what is kept, and fixed subsets for quick searches.

The held-out images are the same for every seed and every run (a fixed permutation), and
a larger split holds out a superset of a smaller one's images, so a figure measured on the
validation split never saw those images in training, whatever run it came from.
"""

from __future__ import annotations

import torch

from tinycifar.errors import TinyCifarError

Data = tuple[torch.Tensor, torch.Tensor]  # uint8 images (N, 3, 32, 32), int64 labels (N,)


SPLIT_SEED = 20_231_129  # fixed: every run holds out the same validation images


def split_indices(n: int, val_size: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The rows of an ``n``-image training set kept for training and held out for tuning
    (``val_size`` of them, the same for every seed; a larger split holds out a superset of
    a smaller one's images); both None when nothing is held out."""
    if val_size == 0:
        return None, None
    if not 0 < val_size < n:
        raise TinyCifarError(f"--val-split must be between 0 and {n - 1} (got {val_size})")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
    return perm[:-val_size].sort().values, perm[-val_size:].sort().values


def split_validation(train: Data, val_size: int) -> tuple[Data, Data | None]:
    """Hold out ``val_size`` training images (the same ones for every seed) for tuning."""
    images, labels = train
    keep, held = split_indices(len(images), val_size)
    if keep is None or held is None:
        return train, None
    return (images[keep], labels[keep]), (images[held], labels[held])


def training_rows(rows: torch.Tensor, val_split: int) -> torch.Tensor:
    """The rows (of a teacher's labels for the whole training set, say) of the images a run
    with ``--val-split val_split`` trains on, in the order it sees them."""
    keep = split_indices(len(rows), val_split)[0]
    return rows if keep is None else rows[keep]


def subset(data: Data, n: int, seed: int) -> Data:
    """``n`` of the images (all for 0 or more than there are), a fixed draw for ``seed``, in
    their original order."""
    if not n or n >= len(data[0]):
        return data
    pick = torch.randperm(len(data[0]), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return data[0][pick], data[1][pick]
