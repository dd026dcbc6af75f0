"""Advanced-convolution building blocks.

Every block is a small ``nn.Module`` whose docstring says what it is for and what it
costs in parameters (``tests/test_layers.py`` checks each formula). Convolutions are
bias-free because a BatchNorm follows each one and its shift makes a bias redundant.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn


def _act(enabled: bool) -> nn.Module:
    # ReLU, not GELU: on CPU it is in-place and measurably cheaper, and at this size the
    # accuracy difference is within seed noise.
    return nn.ReLU(inplace=True) if enabled else nn.Identity()


class Residual(nn.Module):
    """``x + block(x)``: an identity shortcut, no parameters of its own."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ConvBNAct(nn.Sequential):
    """k×k convolution → BatchNorm → ReLU; the plain workhorse.

    ``dilation`` widens the receptive field to ``(k-1)*dilation + 1`` at no extra cost;
    padding keeps the spatial size when ``stride == 1``.
    Params: ``in*out*k*k/groups + 2*out``.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        act: bool = True,
    ) -> None:
        super().__init__(
            nn.Conv2d(
                in_ch,
                out_ch,
                kernel_size,
                stride,
                padding=dilation * (kernel_size // 2),
                dilation=dilation,
                groups=groups,
                bias=False,
            ),
            nn.BatchNorm2d(out_ch),
            _act(act),
        )


class DepthwiseSeparableConv(nn.Sequential):
    """Depthwise k×k (one filter per channel) → BN → ReLU → pointwise 1×1 → BN → ReLU.

    Splits spatial and cross-channel mixing (MobileNet): roughly ``k*k`` times fewer
    parameters and MACs than a full convolution for wide layers. On CPU the depthwise part
    is memory-bound, so it pays off where channels are wide, not in the first layers.
    Params: ``in*k*k + 2*in + in*out + 2*out``.
    """

    def __init__(
        self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, dilation: int = 1, act: bool = True
    ) -> None:
        super().__init__(
            ConvBNAct(in_ch, in_ch, kernel_size, stride, dilation, groups=in_ch),
            ConvBNAct(in_ch, out_ch, 1, act=act),
        )


class TransposedConvUp(nn.Sequential):
    """Learned upsampling by a transposed convolution (kernel = stride = ``scale``) → BN → ReLU.

    Kernel equal to stride tiles the output without the checkerboard overlap of k=3, s=2.
    Params: ``in*out*scale*scale + 2*out``.
    """

    def __init__(self, in_ch: int, out_ch: int, scale: int = 2, act: bool = True) -> None:
        super().__init__(
            nn.ConvTranspose2d(in_ch, out_ch, scale, stride=scale, bias=False),
            nn.BatchNorm2d(out_ch),
            _act(act),
        )


class PixelShuffleUp(nn.Sequential):
    """Sub-pixel upsampling: 1×1 conv to ``out*scale²`` channels, then depth-to-space.

    Same cost as :class:`TransposedConvUp` with no overlap artefacts (ESPCN).
    Params: ``in*out*scale² + 2*out``.
    """

    def __init__(self, in_ch: int, out_ch: int, scale: int = 2, act: bool = True) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch * scale * scale, 1, bias=False),
            nn.PixelShuffle(scale),
            nn.BatchNorm2d(out_ch),
            _act(act),
        )


class PixelUnshuffleDown(nn.Sequential):
    """Space-to-depth downsampling: each ``scale×scale`` patch becomes channels, then a 1×1 conv.

    Loses no information (unlike pooling) and cuts the resolution the following layers pay
    for by ``scale²``; used as a stem it is the cheapest way to make a net fast on CPU.
    Params: ``in*scale²*out + 2*out``.
    """

    def __init__(self, in_ch: int, out_ch: int, scale: int = 2, act: bool = True) -> None:
        super().__init__(
            nn.PixelUnshuffle(scale),
            nn.Conv2d(in_ch * scale * scale, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
            _act(act),
        )


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation channel attention: global pool → FC → ReLU → FC → sigmoid gate.

    Reweights channels by global context (Hu et al. 2018).
    Params: ``2*ch*h + h + ch`` with ``h = max(1, ch//reduction)`` (the two FCs with biases).
    """

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))


def eca_kernel_size(channels: int, gamma: int = 2, beta: int = 1) -> int:
    """ECA's adaptive kernel size: nearest odd number to ``(log2(C) + beta) / gamma``."""
    k = int(abs((math.log2(channels) + beta) / gamma))
    return k if k % 2 else k + 1


class ECA(nn.Module):
    """Efficient channel attention: global pool → 1-D conv across channels → sigmoid gate.

    SE's benefit without its bottleneck FCs (Wang et al. 2020): each channel's weight
    comes from its ``k`` neighbours. Params: ``k`` (no bias), almost free.
    """

    def __init__(self, channels: int, kernel_size: int | None = None) -> None:
        super().__init__()
        k = kernel_size or eca_kernel_size(channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv1d(1, 1, k, padding=k // 2, bias=False)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.pool(x).flatten(1).unsqueeze(1)  # (N, 1, C): channels as a sequence
        w = self.gate(self.conv(w)).transpose(1, 2).unsqueeze(-1)  # (N, C, 1, 1)
        return x * w


class PatchWhitening(nn.Conv2d):
    """A frozen k×k convolution that whitens image patches, initialised from the data.

    The first layer of the fastest CIFAR-10 trainers (Page; hlb-CIFAR10; airbench): its
    filters are the eigenvectors of the covariance of ``k×k`` training patches, scaled by
    ``1/sqrt(eigenvalue)``, each used with both signs (so a ReLU after it keeps all the
    information). Training starts from decorrelated inputs instead of having to learn
    that, which saves epochs. The filters are fixed (``requires_grad=False``) once
    :meth:`fit` sets them; only the bias trains. ``padding=0``: the output is
    ``(H-k+1)×(W-k+1)``.
    Params: ``in*k*k*out`` frozen + ``out`` trainable (bias), with ``out = 2*in*k*k``.
    """

    def __init__(self, in_ch: int = 3, kernel_size: int = 2, stride: int = 1, eps: float = 5e-4) -> None:
        out_ch = 2 * in_ch * kernel_size * kernel_size
        super().__init__(in_ch, out_ch, kernel_size, stride=stride, padding=0, bias=True)
        self.eps = eps
        self.weight.requires_grad_(False)
        with torch.no_grad():
            eye = torch.eye(out_ch // 2).view(-1, in_ch, kernel_size, kernel_size)
            self.weight.copy_(torch.cat([eye, -eye]))  # pass-through until fitted
            assert self.bias is not None  # bias=True above
            self.bias.zero_()

    @torch.no_grad()
    def fit(self, images: torch.Tensor) -> None:
        """Set the filters from normalised float images ``(N, C, H, W)`` (a few thousand suffice)."""
        k, c = self.kernel_size[0], self.in_channels
        patches = images.float().unfold(2, k, 1).unfold(3, k, 1)  # (N, C, H', W', k, k)
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k).double()
        patches = patches - patches.mean(0)
        eigvals, eigvecs = torch.linalg.eigh(patches.T @ patches / len(patches))
        filters = (eigvecs.T / torch.sqrt(eigvals.clamp_min(0) + self.eps)[:, None]).view(-1, c, k, k)
        self.weight.copy_(torch.cat([filters, -filters]).to(self.weight))


def train_whitening_bias(model: nn.Module, train: bool) -> bool:
    """Let the whitening stems' biases train, or freeze them; whether that changed anything.

    Frozen, nothing before the first trained convolution needs a gradient, so autograd
    skips that convolution's input gradient: about a fifth of fastnet's step (airbench
    trains the bias for its first 3 epochs of 10 for this reason).
    """
    biases = [m.bias for m in model.modules() if isinstance(m, PatchWhitening) and m.bias is not None]
    changed = any(b.requires_grad != train for b in biases)
    for b in biases:
        b.requires_grad_(train)
    return changed


def model_stages(model: nn.Module) -> list[nn.Module]:
    """The stages a model names for ``freeze``, first to last; [] if it names none. Every
    parameter of a stage trains unless ``freeze`` has frozen it."""
    stages = getattr(model, "stages", None)
    return list(stages()) if callable(stages) else []


def freeze_stages(model: nn.Module, count: int) -> bool:
    """Freeze the model's first ``count`` stages and let the others train; whether that changed anything.

    With everything before it frozen, the first trained stage's input needs no gradient,
    so autograd skips the frozen stages' whole backward pass (FreezeOut, Brock et al. 2017).
    """
    changed = False
    for i, stage in enumerate(model_stages(model)):
        for p in stage.parameters():
            changed |= p.requires_grad != (i >= count)
            p.requires_grad_(i >= count)
    return changed


class ConvPoolGroup(nn.Sequential):
    """3×3 conv → max-pool 2 → BN → ReLU → 3×3 conv → BN → ReLU (airbench's block).

    Pooling right after the first convolution halves the resolution before anything else
    is paid for, so the block does two convolutions for little more than the cost of one.
    Params: ``9*in*out + 9*out*out + 4*out``.
    """

    def __init__(self, in_ch: int, out_ch: int, pool: bool = True) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
            nn.MaxPool2d(2) if pool else nn.Identity(),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
            ConvBNAct(out_ch, out_ch),
        )
