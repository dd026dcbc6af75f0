"""Batched data augmentation on tensors, on the training device.

Each transform is split in two: its random parameters for a whole epoch are drawn in one
go by :class:`Augmentation` (from one CPU ``torch.Generator``, moved to the device once per
epoch), and the transform applies a batch's slice of them with a handful of tensor ops:
the ones that only move pixels (translate, flip) to the uint8 images, folded into the one
gather that selects the batch, the others (warp, cutout, mixing) to the normalised float
batch ``(B, C, H, W)`` (0 is the dataset mean). So a training step
never waits on the host for random numbers (no per-step host-device sync on a GPU), CPU and
GPU runs draw the same numbers, and a resumed run repeats the interrupted epoch exactly.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tinycifar.inference import MEAN, STD, prepare
from tinycifar.recipe import Recipe

SSR_P = 0.5  # share of images shift-scale-rotate warps (Albumentations' default)


def flip(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mirror left-right the images where ``mask`` (B,) is true."""
    return torch.where(mask[:, None, None, None], x.flip(3), x)


def translate(
    x: torch.Tensor,
    pad: int,
    shifts: torch.Tensor | None,
    flips: torch.Tensor | None = None,
    order: torch.Tensor | None = None,
) -> torch.Tensor:
    """Crop of the reflect-padded image at ``shifts`` (B, 2) in ``[0, 2*pad]``: moves each
    image by up to ``pad`` pixels, and mirrors it left-right where ``flips`` (B,) is true.
    With ``order`` (B,), the batch is ``x[order]`` (``x`` the whole data set). ``shifts``
    None (or ``pad`` 0) moves nothing.

    Where pixels move, one gather for the whole batch, of any dtype: the batch's selection,
    the reflection and the mirror are all folded into the gather's indices, so on the
    training path the uint8 images are moved once, before they are converted (measured side
    by side against selecting, converting, padding, cropping and flipping in turn:
    ``benchmarks/loop_speed.py``). The result then comes out channels-last in memory, the
    layout the model runs in anyway.
    """
    if shifts is None or pad <= 0:  # nothing moves: copying whole rows beats indexing each pixel
        x = x if order is None else x[order]
        return x if flips is None else flip(x, flips)
    _, _, h, w = x.shape
    if pad >= min(h, w):
        raise ValueError(f"reflect padding of {pad} pixels needs images larger than {pad} (got {h}×{w})")
    batch = (order if order is not None else torch.arange(len(shifts), device=x.device))[:, None, None]
    rows = _reflect(shifts[:, 0, None] - pad + torch.arange(h, device=x.device), h)  # (B, H)
    cols = _reflect(shifts[:, 1, None] - pad + torch.arange(w, device=x.device), w)  # (B, W)
    if flips is not None:
        cols = torch.where(flips[:, None], cols.flip(1), cols)
    return x[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # (B, H, W, C) in memory


def _reflect(i: torch.Tensor, n: int) -> torch.Tensor:
    """Indices past either edge mirrored back inside, the edge itself not repeated
    (``F.pad(mode="reflect")``'s rule)."""
    i = i.abs()
    return torch.where(i > n - 1, 2 * (n - 1) - i, i)


def shift_scale_rotate(
    x: torch.Tensor, u: torch.Tensor, shift: float = 0.0625, scale: float = 0.1, rotate: float = 15.0
) -> torch.Tensor:
    """Albumentations' ShiftScaleRotate, batched: an affine warp per image.

    ``u`` (B, 4) in [-1, 1] picks angle, scale and the two shifts within ± ``rotate``
    degrees, ± ``scale`` and ± ``shift`` of the image size; a row of zeros is the identity.
    Pixels from outside are filled with 0 (the mean).
    """
    angle = u[:, 0] * math.radians(rotate)
    s = 1 + u[:, 1] * scale
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s  # inverse map: sample at R^-1/s
    theta = torch.stack(
        [
            torch.stack([cos, -sin, u[:, 2] * shift * 2], 1),
            torch.stack([sin, cos, u[:, 3] * shift * 2], 1),
        ],
        1,
    ).to(x.dtype)  # shift*2: grid coordinates span [-1, 1]
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def color_jitter(x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Brightness, contrast, saturation and sharpness of the normalised batch ``x``, by
    ``factors`` (B, 4), 1 leaving each as it is: torchvision's ``adjust_*`` arithmetic on
    the [0, 1] image (clamped after each), in that order, batched.

    Written here rather than taken from kornia, measured side by side on a batch of 256 at
    one thread (2026-12-05, AMD EPYC): kornia 0.9's ``enhance`` functions agree on sharpness
    but scale contrast instead of blending with the mean and change saturation in HSV, not
    torchvision's (the record's) arithmetic, and took 23 ms against 15 ms here. The factors
    are drawn with the epoch's other augmentations, so a resumed run repeats them.
    """
    mean, std = _mean_std(x.device, x.dtype)
    f = factors.to(x.dtype)[:, :, None, None, None]  # (B, 4, 1, 1, 1)
    x = (x * std + mean).clamp(0, 1)
    x = (x * f[:, 0]).clamp(0, 1)
    x = _blend(x, _gray(x).mean((1, 2, 3), keepdim=True), f[:, 1])
    x = _blend(x, _gray(x), f[:, 2])
    x = _blend(x, _smooth(x), f[:, 3])
    return (x - mean) / std


@functools.cache
def _mean_std(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    # Made once per device, as inference's normalisation: a copy at every step would make a
    # GPU step wait on the host.
    return (
        torch.tensor(MEAN, device=device, dtype=dtype).view(1, 3, 1, 1),
        torch.tensor(STD, device=device, dtype=dtype).view(1, 3, 1, 1),
    )


@functools.cache
def _smoothing_kernel(channels: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    kernel = torch.ones(3, 3, device=device, dtype=dtype)
    kernel[1, 1] = 5
    return (kernel / 13).expand(channels, 1, 3, 3)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision's ``_blend``: ``factor`` of ``x``, the rest ``other``, clamped to [0, 1]."""
    return (factor * x + (1 - factor) * other).clamp(0, 1)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma, (B, 1, H, W): torchvision's ``rgb_to_grayscale``."""
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).to(x.dtype)


def _smooth(x: torch.Tensor) -> torch.Tensor:
    """torchvision's sharpness degenerate: a 3×3 smoothing (centre 5, the rest 1, over 13)
    of the inside pixels, the border kept."""
    inside = F.conv2d(x, _smoothing_kernel(x.shape[1], x.device, x.dtype), groups=x.shape[1])
    out = x.clone()
    out[:, :, 1:-1, 1:-1] = inside
    return out


def cutout(x: torch.Tensor, size: int, centres: torch.Tensor) -> torch.Tensor:
    """Erase one ``size×size`` square per image (ERA's CoarseDropout 16×16), filled with the
    mean, centred at ``centres`` (B, 2), fractions of the height and width in [0, 1).

    Centres are uniform over the image, so the square may be clipped at the border
    (DeVries & Taylor 2017).
    """
    if size <= 0:
        return x
    _, _, h, w = x.shape
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    cy, cx = (centres[:, 0] * h).long(), (centres[:, 1] * w).long()
    top, left = cy[:, None, None] - size // 2, cx[:, None, None] - size // 2
    inside = (ys >= top) & (ys < top + size) & (xs >= left) & (xs < left + size)
    return x.masked_fill(inside[:, None], 0.0)


def mix(
    x: torch.Tensor,
    labels: torch.Tensor,
    lams: torch.Tensor,
    cut: torch.Tensor | None = None,
    centres: torch.Tensor | None = None,
    num_classes: int = 10,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup and CutMix in one: each image is blended with its partner, the image at the
    mirrored position of the batch (timm's pairing: no second gather), and its target becomes
    the same blend of the two targets: one-hot ``labels`` (B,), or probabilities (B, classes).

    ``lams`` (B,) is each image's own share. Rows where ``cut`` (B,) is true paste a box of
    the partner instead (CutMix), centred at ``centres`` (B, 2, fractions), of area
    ``1 - lam`` before clipping at the border; their share is then the area actually kept.
    ``cut`` None is mixup alone (no box is drawn). Returns the mixed batch and (B, classes)
    target probabilities.
    """
    keep = lams[:, None, None, None].to(x.dtype)  # the own image's weight at each pixel
    if cut is not None:
        assert centres is not None  # CutMix's rows and its box centres are drawn together (Augmentation._mix_draws)
        _, _, h, w = x.shape
        box = _box(lams, centres, h, w, x.device)
        keep = torch.where(cut[:, None, None, None], (~box).to(x.dtype)[:, None], keep)
    mixed = x * keep + x.flip(0) * (1 - keep)
    share = keep.mean((1, 2, 3))[:, None]
    probs = F.one_hot(labels, num_classes).to(x.dtype) if labels.dim() == 1 else labels.to(x.dtype)
    return mixed, share * probs + (1 - share) * probs.flip(0)


def _box(lams: torch.Tensor, centres: torch.Tensor, h: int, w: int, device: torch.device) -> torch.Tensor:
    """(B, H, W) masks of CutMix's boxes: area ``1 - lam`` centred at ``centres``, clipped."""
    side = torch.sqrt(1 - lams)  # box side as a fraction, for area 1 - lam
    ys = torch.arange(h, device=device)[None, :, None]
    xs = torch.arange(w, device=device)[None, None, :]
    top = ((centres[:, 0] - side / 2) * h).round()[:, None, None]
    left = ((centres[:, 1] - side / 2) * w).round()[:, None, None]
    bottom = ((centres[:, 0] + side / 2) * h).round()[:, None, None]
    right = ((centres[:, 1] + side / 2) * w).round()[:, None, None]
    return (ys >= top) & (ys < bottom) & (xs >= left) & (xs < right)


@dataclass
class Draws:
    """The random numbers of one epoch, one row per position in the epoch's order."""

    order: torch.Tensor  # (N,) image index at each position
    flips: torch.Tensor | None = None  # (N,) bool
    shifts: torch.Tensor | None = None  # (N, 2) translate offsets in [0, 2*pad]
    warps: torch.Tensor | None = None  # (N, 4) shift-scale-rotate parameters
    jitter: torch.Tensor | None = None  # (N, 4) brightness, contrast, saturation, sharpness factors
    centres: torch.Tensor | None = None  # (N, 2) cutout centres, fractions of the size
    lams: torch.Tensor | None = None  # (N,) mixup/cutmix share of the image itself
    cut: torch.Tensor | None = None  # (N,) bool: CutMix rather than mixup; None without CutMix
    boxes: torch.Tensor | None = None  # (N, 2) CutMix box centres, fractions of the size

    def __getitem__(self, rows: slice) -> Draws:
        return self._map(lambda t: t[rows])

    def to(self, device: torch.device) -> Draws:
        return self._map(lambda t: t.to(device))

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Draws:
        # Any: ``order`` is never None, the optional fields stay None where they are
        mapped: dict[str, Any] = {
            f.name: None if (v := getattr(self, f.name)) is None else fn(v) for f in dataclasses.fields(self)
        }
        return Draws(**mapped)


class Augmentation:
    """A recipe's augmentations: ``draw`` an epoch's randomness, then call on each batch.

    With ``alternating`` flip (airbench's), each image gets a random mirror in the first
    epoch and the opposite of its previous epoch's after that, so every two epochs see both
    views (a fresh coin each epoch repeats a view half the time). Its first-epoch coins come
    from ``seed`` alone, so a resumed run flips exactly as an unbroken one.

    ``mixup_ramp`` draws mixup's partner share from ``U(0, min(epoch / epochs, mixup_ramp))``
    instead of Beta(``mixup``, ``mixup``): no mixing in the first epoch, then more as
    training goes on (xvel/cifar10-tiniest's schedule, 0.5).
    """

    def __init__(
        self,
        n_images: int,
        seed: int,
        flip: bool = True,
        alternating: bool = False,
        translate: int = 0,
        ssr: bool = False,
        cutout: int = 0,
        mixup: float = 0.0,
        cutmix: float = 0.0,
        mixup_ramp: float = 0.0,
        epochs: int | None = None,
        jitter: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0),
    ) -> None:
        if mixup_ramp and not epochs:
            raise ValueError("mixup_ramp widens over the run: give the run's epochs")
        self.n, self.flip, self.alternating = n_images, flip, flip and alternating
        self.pad, self.ssr, self.cutout_size = translate, ssr, cutout
        self.mixup, self.cutmix, self.mixup_ramp, self.epochs = mixup, cutmix, mixup_ramp, epochs
        self.jitter = jitter  # the largest change of brightness, contrast, saturation; of sharpness
        self.coins = (
            torch.rand(n_images, generator=torch.Generator().manual_seed(seed)) < 0.5 if self.alternating else None
        )

    @classmethod
    def from_recipe(cls, recipe: Recipe, n_images: int, seed: int) -> Augmentation:
        return cls(
            n_images,
            seed,
            flip=recipe.flip,
            alternating=recipe.alt_flip,
            translate=recipe.translate,
            ssr=recipe.ssr,
            cutout=recipe.cutout,
            mixup=recipe.mixup,
            cutmix=recipe.cutmix,
            mixup_ramp=recipe.mixup_ramp,
            epochs=recipe.epochs,
            jitter=(recipe.brightness, recipe.contrast, recipe.saturation, recipe.sharpness),
        )

    def draw(self, epoch: int, g: torch.Generator, device: torch.device) -> Draws:
        """Epoch ``epoch``'s data order and augmentation parameters, on ``device``."""
        n = self.n
        d = Draws(order=torch.randperm(n, generator=g))
        if self.alternating:
            assert self.coins is not None  # drawn in __init__ whenever alternating
            d.flips = self.coins[d.order] ^ bool(epoch % 2)
        elif self.flip:
            d.flips = torch.rand(n, generator=g) < 0.5
        if self.pad > 0:
            d.shifts = torch.randint(0, 2 * self.pad + 1, (n, 2), generator=g)
        if self.ssr:
            u = torch.rand(n, 4, generator=g) * 2 - 1
            d.warps = u * (torch.rand(n, generator=g) < SSR_P)[:, None]
        if any(self.jitter):  # brightness, contrast, saturation in 1 ± a; sharpness in [1, 1 + a]
            low = torch.tensor([1 - a for a in self.jitter[:3]] + [1.0])
            d.jitter = low + torch.rand(n, 4, generator=g) * torch.tensor(
                [2 * a for a in self.jitter[:3]] + [self.jitter[3]]
            )
        if self.cutout_size > 0:
            d.centres = torch.rand(n, 2, generator=g)
        if self.mixup or self.mixup_ramp or self.cutmix:
            d.lams, d.cut, d.boxes = self._mix_draws(n, g, epoch)
        return d.to(device)

    def _mix_draws(
        self, n: int, g: torch.Generator, epoch: int
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        mixup = bool(self.mixup or self.mixup_ramp)
        # With both on, each image takes one of the two at even odds (timm's switch).
        # Drawn even for mixup alone (all false), so the stream after it, and a resume of a
        # run begun before mixup_ramp existed, stays the same.
        cut = torch.rand(n, generator=g) < (0.5 if mixup and self.cutmix else float(self.cutmix > 0))
        # torch has no seeded Beta sampler; NumPy's, seeded from the epoch's generator, keeps
        # the draws repeatable on a resume.
        rng = np.random.default_rng(int(torch.randint(2**62, (1,), generator=g)))
        alpha = np.where(cut.numpy(), self.cutmix, self.mixup or 1.0)  # 1.0: replaced by the ramp
        lams = rng.beta(alpha, alpha)
        if self.mixup_ramp:
            assert self.epochs is not None  # __init__ refuses mixup_ramp without epochs
            ramped = 1 - rng.uniform(0, min(epoch / self.epochs, self.mixup_ramp), n)
            lams = np.where(cut.numpy(), lams, ramped)
        shares = torch.from_numpy(lams).float()
        if not self.cutmix:
            return shares, None, None  # mixup alone: no boxes to draw or paint
        return shares, cut, torch.rand(n, 2, generator=g)

    def batch(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        d: Draws,
        dev: torch.device,
        targets: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The training batch at rows ``d`` of the uint8 set: augmented inputs, the targets
        the loss sees (class indices, or class probabilities where images are mixed or
        ``targets`` (N, classes) are given: a teacher's) and the true labels (for the
        accuracy count)."""
        x = self._paint(prepare(self._move(images, d, d.order), dev), d)
        y = labels[d.order]
        target = y if targets is None else targets[d.order]
        if d.lams is None:
            return x, target, y
        x, target = mix(x, target, d.lams, d.cut, d.boxes)
        return x.contiguous(memory_format=torch.channels_last), target, y

    def __call__(self, x: torch.Tensor, d: Draws) -> torch.Tensor:
        """Augment batch ``x`` with its rows ``d`` of the epoch's draws; channels-last out."""
        return self._paint(self._move(x, d), d)

    def _move(self, x: torch.Tensor, d: Draws, order: torch.Tensor | None = None) -> torch.Tensor:
        """The transforms that only move pixels (translate, flip), of batch ``x`` or, with
        ``order``, of ``x[order]``: any dtype, uint8 too."""
        return translate(x, self.pad, d.shifts, d.flips, order)

    def _paint(self, x: torch.Tensor, d: Draws) -> torch.Tensor:
        """The transforms that make new values (warp, colour, cutout): on the normalised batch."""
        if d.warps is not None:
            x = shift_scale_rotate(x, d.warps)
        if d.jitter is not None:
            x = color_jitter(x, d.jitter)
        if d.centres is not None:
            x = cutout(x, self.cutout_size, d.centres)
        return x.contiguous(memory_format=torch.channels_last)
