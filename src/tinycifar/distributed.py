"""Data-parallel training under ``torchrun``: which rows of each batch this process trains.

``torchrun --nproc_per_node N -m tinycifar train ...`` starts N processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set; :func:`from_env` joins them into one process group
(NCCL on GPUs, gloo on CPUs). Every rank holds the whole uint8 data set and draws the same
epoch order and augmentation (seeded by seed and epoch), then trains its own slice of each
global batch of ``batch_size`` images; DistributedDataParallel averages the gradients, so
the update is that of the whole batch. Only rank 0 writes the run folder. BatchNorm
statistics are each rank's own (``batch_size / N`` images), so a run is close to, not
equal to, a one-process run with the same batch (a test bounds how close).

Without ``torchrun`` (``WORLD_SIZE`` unset) :class:`Single` does nothing, and the loop
reads the same either way.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.nn as nn

from tinycifar.errors import TinyCifarError


class Single:
    """One process: the whole batch, no communication."""

    rank, world, is_main = 0, 1, True

    def rows(self, step: int, batch_size: int) -> slice:
        return slice(step * batch_size, (step + 1) * batch_size)

    def wrap(self, model: nn.Module) -> nn.Module:
        return model

    def total(self, value: torch.Tensor) -> torch.Tensor:
        return value

    def check_in_sync(self, model: nn.Module) -> None:
        pass

    def close(self) -> None:
        pass


class DataParallel(Single):
    """One of ``world`` processes of a torchrun job, in an initialised process group."""

    def __init__(self, rank: int, world: int) -> None:
        self.rank, self.world, self.is_main = rank, world, rank == 0

    def rows(self, step: int, batch_size: int) -> slice:
        share = batch_size // self.world
        start = step * batch_size + self.rank * share
        return slice(start, start + share)

    def wrap(self, model: nn.Module) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        ids = [model_device(model).index] if model_device(model).type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def total(self, value: torch.Tensor) -> torch.Tensor:
        value = value.clone()
        dist.all_reduce(value)
        return value

    @torch.no_grad()
    def check_in_sync(self, model: nn.Module) -> None:
        """Every rank must end with the same weights. Buffers first become rank 0's: DDP
        broadcasts them before each forward, so after the last step each rank holds its own
        BatchNorm statistics update. Then a float64 fingerprint of each rank's parameters
        and buffers (sum, sum of squares) is compared across ranks."""
        for b in model.buffers():
            dist.broadcast(b, src=0)
        tensors = [t.double() for t in model.state_dict().values() if t.is_floating_point()]
        mine = torch.stack([sum(t.sum() for t in tensors), sum((t * t).sum() for t in tensors)])
        mine = mine.to(model_device(model))
        every = [torch.empty_like(mine) for _ in range(self.world)]
        dist.all_gather(every, mine)
        if any(not torch.equal(every[0], f) for f in every[1:]):
            raise TinyCifarError(
                "the ranks ended with different weights (a bug, or a rank that ran other code): do not use this run"
            )

    def close(self) -> None:
        # Together: rank 0 still writes the run folder when the others are done, and a gloo
        # group torn down on one side while the other still holds it aborts the process.
        dist.barrier()
        dist.destroy_process_group()


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def is_main_process() -> bool:
    """Rank 0 of a torchrun job, or a process started on its own."""
    return env_int("RANK", 0) == 0


def world_size() -> int:
    world = env_int("WORLD_SIZE", 1)
    if world < 1:
        raise TinyCifarError(
            f"WORLD_SIZE={world} is not a number of processes: torchrun sets it; unset it to train in one process"
        )
    return world


def env_int(name: str, default: int) -> int:
    """A torchrun variable as a whole number; one clear error for anything else."""
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise TinyCifarError(
            f"{name}={text[:20]!r} is not a whole number: torchrun sets RANK, WORLD_SIZE and "
            "LOCAL_RANK; unset them to train in one process"
        ) from None


def from_env(device: torch.device, batch_size: int) -> tuple[Single, torch.device]:
    """The process's part (from torchrun's environment) and the device it trains on
    (``cuda:LOCAL_RANK`` on GPUs)."""
    world = world_size()
    if world == 1:
        return Single(), device
    if batch_size % world:
        raise TinyCifarError(
            f"batch size {batch_size} does not split over {world} processes: use a multiple of {world} (--batch-size)"
        )
    rank, local = env_int("RANK", 0), env_int("LOCAL_RANK", 0)
    if not 0 <= rank < world or local < 0:
        raise TinyCifarError(
            f"RANK={rank} and LOCAL_RANK={local} do not fit WORLD_SIZE={world}: start the job "
            "with torchrun, which sets them"
        )
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DataParallel(rank, world), device
