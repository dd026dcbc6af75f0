"""Knowledge distillation: from stored soft labels (``tinycifar soft-labels``), or from a
teacher model that sees the student's own batches.

``tinycifar soft-labels --weights A --weights B --out teacher.safetensors`` runs trained
models once over the 50,000 training images and stores each image's class probabilities,
averaged over the models (an ensemble is the usual teacher); ``tinycifar train --teacher
teacher.safetensors --distill 0.7`` then trains on targets that blend them with the true
labels. The teacher's cost is paid once and reused by every student run and seed.

Stored by default: a teacher of the student's size, or an ensemble of them, would double or
multiply each step's cost, while the augmentations here (a flip, a shift of a few pixels,
mixing, which blends the stored targets as it blends the labels) change little of what an
image shows. ReLabel (Yun et al., 2021) stores a teacher's labels for the same reason.
``train --teacher model.safetensors`` (a model's weights, not soft labels) runs the teacher
on every augmented, mixed batch instead: "consistent" teaching (Beyer et al., 2022, "A good
teacher is patient and consistent"), for augmentations that do change what an image shows,
at the cost of the teacher's forward pass each step.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from tinycifar.atomic import atomic_write
from tinycifar.checkpoint import FLOAT_DTYPES, save_safetensors
from tinycifar.errors import TinyCifarError
from tinycifar.inference import predict_logits
from tinycifar.precision import autocast
from tinycifar.untrusted import load_safetensors, read_bytes, safetensors_header

KEY = "probs"
MAX_FILE_BYTES = 64 << 20  # a file for 50,000 images is 1 MB; refuse anything that could exhaust memory
SUM_TOLERANCE = 1e-2  # float16 rounding of ten probabilities


def model_probs(
    models: list[torch.nn.Module],
    images: torch.Tensor,
    dev: torch.device,
    precision: str = "fp32",
    temperature: float = 1.0,
) -> torch.Tensor:
    """Each model's softmax(logits / ``temperature``): (models, N, classes), fp32, on the CPU.
    Their mean over the first dimension is the ensemble's."""
    return torch.stack(
        [(predict_logits(m, images, dev, precision=precision) / temperature).softmax(1).cpu() for m in models]
    )


def save_soft_labels(probs: torch.Tensor, path: Path, metadata: dict[str, str]) -> None:
    """``probs`` as float16 safetensors (1 MB for the training set), with what made them."""

    tensors = {KEY: probs.to(torch.float16).contiguous()}
    atomic_write(Path(path), lambda p: save_safetensors(tensors, p, metadata))


def load_soft_labels(path: Path, n_images: int, num_classes: int = 10) -> tuple[torch.Tensor, dict[str, str]]:
    """The (``n_images``, ``num_classes``) fp32 probabilities in a soft-labels file, and its
    metadata; one clear error for anything else (it may come from a stranger)."""
    from safetensors import SafetensorError

    path = Path(path)
    fix = "write one with `tinycifar soft-labels`"
    data = read_bytes(path, MAX_FILE_BYTES, f"teacher file {path}", fix)
    try:
        header = safetensors_header(data)  # names, shape and type are checked before the tensor is read
        keys = list(header.shapes)
        if keys != [KEY]:
            raise TinyCifarError(f"teacher file {path} holds {keys[:3]}, not one tensor {KEY!r}: {fix}")
        shape, dtype = header.shapes[KEY], header.dtypes[KEY]
        if shape != (n_images, num_classes):
            raise TinyCifarError(
                f"teacher file {path} has labels of shape {shape}, not ({n_images}, "
                f"{num_classes}) for this training set: {fix} from the same data"
            )
        if dtype not in FLOAT_DTYPES:
            raise TinyCifarError(f"teacher file {path} holds {dtype[:20]} numbers, not probabilities: {fix}")
        probs, metadata = load_safetensors(data)[KEY].float(), header.metadata
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise TinyCifarError(f"{path} is not a readable safetensors soft-labels file ({e}): {fix}") from None
    sums = probs.sum(1)
    if not (torch.isfinite(probs).all() and (probs >= 0).all() and ((sums - 1).abs() <= SUM_TOLERANCE).all()):
        raise TinyCifarError(
            f"teacher file {path} holds rows that are not probabilities (negative, "
            f"not finite, or not summing to 1): {fix}"
        )
    return probs / sums[:, None], metadata


def fingerprint(teacher: torch.Tensor | nn.Module) -> str:
    """A short hash of the probabilities, or of a teacher model's tensors: a run records it,
    and a resume must match it."""
    if isinstance(teacher, torch.Tensor):
        return hashlib.sha256(teacher.cpu().to(torch.float16).numpy().tobytes()).hexdigest()[:16]
    h = hashlib.sha256()
    for name, t in teacher.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def holds_model_weights(path: Path) -> bool:
    """Whether a teacher file is a model's weights (a run's ``model.safetensors``) rather
    than soft labels. A file that cannot be read is left to :func:`load_soft_labels` to
    report."""
    try:
        header = safetensors_header(read_bytes(Path(path), MAX_FILE_BYTES, "teacher file", ""))
    except (TinyCifarError, ValueError):
        return False
    return list(header.shapes) != [KEY]


def untaught(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """No teacher at the step (none at all, or stored soft labels already in the targets)."""
    return target


class ConsistentTeacher:
    """A teacher model run on the very batch the student sees: each target becomes
    ``share`` of the teacher's probabilities for that (augmented, mixed) image and the rest
    the image's label (or its mixed label)."""

    def __init__(self, model: nn.Module, share: float, precision: str, dev: torch.device) -> None:
        self.model = model.to(dev).eval().requires_grad_(False)
        self.share, self.precision, self.dev = share, precision, dev

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with autocast(self.precision, self.dev):
            probs = self.model(x).float().softmax(1)
        labels = target.float() if target.dim() == 2 else F.one_hot(target, probs.shape[1]).float()
        return self.share * probs + (1 - self.share) * labels


def blend(probs: torch.Tensor, labels: torch.Tensor, weight: float) -> torch.Tensor:
    """Each image's training target: ``weight`` of the teacher's probabilities, the rest its label."""
    return weight * probs + (1 - weight) * F.one_hot(labels, probs.shape[1]).to(probs.dtype)


def held_out(metadata: dict[str, str]) -> int | None:
    """How many images of the validation split a weights or soft-labels file's model(s) never
    trained on (``train --val-split``); None where the file does not say."""
    value = metadata.get("held_out", "")
    return int(value) if value.isdigit() else None


def check_held_out(source: str, held: int | None, val_split: int) -> None:
    """Refuse a model or teacher that trained on images of a ``val_split``-image validation
    split (a larger split holds out a superset of a smaller one's images)."""
    if val_split == 0:
        return
    if held is None:
        print(
            f"note: {source} does not record which images it held out (written before tinycifar "
            f"recorded it): make sure it trained with --val-split {val_split} or more"
        )
    elif held < val_split:
        raise TinyCifarError(
            f"{source} trained on {'all' if held == 0 else 'some'} of the {val_split:,} "
            f"validation images (it held out {held:,}): its figures on them would not be "
            f"honest; use models trained with --val-split {val_split} or more"
        )


def check_teacher(distill: float, teacher_given: bool) -> None:
    """A teacher and a share for it come together."""
    if distill > 0 and not teacher_given:
        raise TinyCifarError(
            f"the recipe's distill is {distill}, but no teacher was given: pass --teacher FILE, "
            "written by e.g. `tinycifar soft-labels --model sepnet_g31 --out FILE`, or --distill 0"
        )
    if teacher_given and distill == 0:
        raise TinyCifarError("--teacher needs a share for it: give --distill between 0 and 1 (e.g. 0.7)")
