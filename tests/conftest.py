import os

import pytest
import torch

# Two cores here and in CI: pin threads so timings and bitwise results are repeatable.
torch.set_num_threads(min(2, os.cpu_count() or 1))


def synthetic_cifar(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Learnable fake CIFAR: each class tints the image a different colour, plus noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    palette = torch.randint(0, 256, (10, 3, 1, 1), generator=torch.Generator().manual_seed(99))
    noise = torch.randint(-60, 61, (n, 3, 32, 32), generator=g)
    images = (palette[labels] + noise).clamp(0, 255).to(torch.uint8)
    return images, labels


@pytest.fixture
def tiny_data():
    return synthetic_cifar(320, seed=0), synthetic_cifar(100, seed=1)
