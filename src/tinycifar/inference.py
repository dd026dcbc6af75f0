"""From uint8 images to logits: the one normalisation and batched forward pass that
training, evaluation and prediction share."""

from __future__ import annotations

import functools

import torch
import torch.nn as nn

# Per-channel mean and std of the CIFAR-10 training set in [0, 1] (`tinycifar analyze`).
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


@functools.cache
def _normalisation(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    # Made once per device: a copy to the GPU at every step would make each step wait on the host.
    scale = torch.tensor([1 / (255 * s) for s in STD], device=device).view(1, 3, 1, 1)
    shift = torch.tensor([-m / s for m, s in zip(MEAN, STD)], device=device).view(1, 3, 1, 1)
    return scale, shift


def prepare(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 ``(B, 3, H, W)`` → normalised float32 on ``device``, channels-last.

    The uint8 batch crosses to the device and changes layout before conversion (4× fewer
    bytes to move), then one fused multiply-add normalises it.
    """
    x = images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
    scale, shift = _normalisation(torch.device(device))
    return torch.addcmul(shift, x.float(), scale)


@torch.no_grad()
def predict_logits(
    model: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 1000, precision: str = "fp32"
) -> torch.Tensor:
    """fp32 logits for a uint8 image tensor, in batches, in eval mode; ``precision`` is
    ``fp32`` or ``bf16`` (resolved: see :func:`tinycifar.precision.resolve_precision`)."""
    from tinycifar.precision import autocast

    was_training = model.training
    model.eval()
    out = []
    try:
        for i in range(0, len(images), batch_size):
            with autocast(precision, device):
                logits = model(prepare(images[i : i + batch_size], device))
            out.append(logits.float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 10)


def resolve_device(name: str) -> torch.device:
    from tinycifar.errors import TinyCifarError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TinyCifarError(
            "--device cuda asked for, but this torch build sees no CUDA GPU; "
            "use --device cpu, or install a CUDA build of torch (see docs/gpu-and-torchrun.md)"
        )
    if name not in ("cpu", "cuda"):
        raise TinyCifarError(f"unknown device {name!r}; use auto, cpu or cuda")
    return torch.device(name)
