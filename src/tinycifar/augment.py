"""Batched data augmentation on tensors, on the training device.

Every transform takes a float batch ``(B, C, H, W)`` already normalised (so 0 is the
dataset mean) and a ``torch.Generator``; randomness comes only from that generator, which
is what makes a resumed run repeat the interrupted epoch exactly. No per-image Python loop:
each transform is a handful of tensor ops on the whole batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _rand(n: int, g: torch.Generator, device: torch.device) -> torch.Tensor:
    # Draw on the generator's device (CPU) and move: keeps one RNG stream whatever the device.
    return torch.rand(n, generator=g).to(device)


def random_flip(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    mask = _rand(x.shape[0], g, x.device) < 0.5
    return torch.where(mask[:, None, None, None], x.flip(3), x)


def random_translate(x: torch.Tensor, pad: int, g: torch.Generator) -> torch.Tensor:
    """Random crop of the reflect-padded image: shifts each image by up to ``pad`` pixels.

    One gather for the whole batch; the result comes out channels-last in memory, which is
    the layout the model runs in anyway.
    """
    if pad <= 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=g).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=g).to(x.device)
    rows = dy[:, None] + torch.arange(h, device=x.device)  # (B, H)
    cols = dx[:, None] + torch.arange(w, device=x.device)  # (B, W)
    batch = torch.arange(b, device=x.device)[:, None, None]
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2)


def shift_scale_rotate(x: torch.Tensor, g: torch.Generator, shift: float = 0.0625,
                       scale: float = 0.1, rotate: float = 15.0, p: float = 0.5) -> torch.Tensor:
    """Albumentations' ShiftScaleRotate, batched: a random affine warp per image.

    Shift is a fraction of the image size, scale a ± fraction, rotate ± degrees; applied to
    each image with probability ``p``. Pixels from outside are filled with 0 (the mean).
    """
    b = x.shape[0]
    u = torch.rand(b, 4, generator=g) * 2 - 1  # uniform in [-1, 1]
    apply = torch.rand(b, generator=g) < p
    u = u * apply[:, None]  # untouched images get the identity transform
    angle = u[:, 0] * math.radians(rotate)
    s = 1 + u[:, 1] * scale
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s  # inverse map: sample at R^-1/s
    theta = torch.stack([
        torch.stack([cos, -sin, u[:, 2] * shift * 2], 1),
        torch.stack([sin, cos, u[:, 3] * shift * 2], 1),
    ], 1).to(x.device, x.dtype)  # shift*2: grid coordinates span [-1, 1]
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def cutout(x: torch.Tensor, size: int, g: torch.Generator, p: float = 1.0) -> torch.Tensor:
    """Erase one ``size×size`` square per image (ERA's CoarseDropout 16×16), filled with the mean.

    The centre is uniform over the image, so the square may be clipped at the border
    (DeVries & Taylor 2017). Applied with probability ``p``.
    """
    if size <= 0:
        return x
    b, _, h, w = x.shape
    cy = torch.randint(0, h, (b,), generator=g).to(x.device)
    cx = torch.randint(0, w, (b,), generator=g).to(x.device)
    apply = (_rand(b, g, x.device) < p)[:, None, None]
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    top, left = cy[:, None, None] - size // 2, cx[:, None, None] - size // 2
    inside = (ys >= top) & (ys < top + size) & (xs >= left) & (xs < left + size) & apply
    return x.masked_fill(inside[:, None], 0.0)


class AlternatingFlip:
    """airbench's alternating flip: each image gets a random mirror in the first epoch and
    the opposite of its previous epoch's after that, so every two epochs see both views
    (less redundancy than a fresh coin each epoch, which repeats a view half the time).

    The first-epoch coins come from ``seed`` alone, so a resumed run flips exactly as an
    unbroken one.
    """

    def __init__(self, n_images: int, seed: int) -> None:
        self.coins = torch.rand(n_images, generator=torch.Generator().manual_seed(seed)) < 0.5

    def __call__(self, x: torch.Tensor, index: torch.Tensor, epoch: int, g: torch.Generator) -> torch.Tensor:
        mask = self.coins[index.cpu()] ^ bool(epoch % 2)
        return torch.where(mask.to(x.device)[:, None, None, None], x.flip(3), x)


class RandomFlip:
    """A fresh coin for every image every epoch (:func:`random_flip`), with the
    interface of :class:`AlternatingFlip`."""

    def __call__(self, x: torch.Tensor, index: torch.Tensor, epoch: int, g: torch.Generator) -> torch.Tensor:
        return random_flip(x, g)


def make_flip(alternating: bool, n_images: int, seed: int) -> AlternatingFlip | RandomFlip:
    return AlternatingFlip(n_images, seed) if alternating else RandomFlip()
