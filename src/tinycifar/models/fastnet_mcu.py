"""``fastnet_mcu``: the microcontroller model, fastnet narrowed to fit under MLPerf Tiny's IC01 file.

MLPerf Tiny's image-classification reference (an int8 ResNet-8) takes 98,496 bytes of flash
and a 55,984-byte TFLM arena. In int8 the flash is the weights plus about 16 KB of
per-channel tables, so the deep stages, which hold the parameters, are narrowed (40/64 to
36/56 channels); the arena is decided by the full-resolution tensors, so the first stage
keeps fastnet's 24 channels. Its int8 file: 93,408 bytes, a 53,776-byte arena, 9.9 M MACs.
Its recipe ``mcu`` is ``long`` for 74 epochs, distilled from sepnet_g31. Chosen on the
validation split among the candidates in ``experiments/mcu/README.md``.
"""

from __future__ import annotations

import torch.nn as nn

from tinycifar.models import register_model
from tinycifar.models.fastnet import FastNet


@register_model("fastnet_mcu", "fastnet 24/36/56: smaller than MLPerf Tiny's IC01 file in flash and RAM", recipe="mcu")
def fastnet_mcu(num_classes: int = 10) -> nn.Module:
    # no widths argument: other widths are fastnet's (--model fastnet --model-args), not this model
    return FastNet(num_classes, (24, 36, 56))
