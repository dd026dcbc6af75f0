"""A TFLite classifier file under tinycifar's contract, run with LiteRT or with TFLM.

The contract, which MLPerf Tiny's IC01 reference keeps and a microcontroller firmware
relies on (it copies camera bytes in):

- one input, NHWC ``(1, 32, 32, 3)``: int8 with scale 1 and zero point -128 (an 8-bit RGB
  pixel p goes in as p - 128), or float32 RGB in [0, 1];
- one output ``(1, 10)``, int8 (dequantised with its own scale and zero point) or float32,
  in the order of :data:`tinycifar.data.CLASSES` (logits or probabilities: either ranks the
  classes).

A file may come from a stranger. It is read by the bounded reader, verified as a flatbuffer
by LiteRT before anything else uses it (TFLM does not verify), and the bytes its tensors
would allocate are summed and capped before LiteRT allocates them. ``runtime="tflm"`` then
runs it in TensorFlow Lite for Microcontrollers, the kernels a firmware runs, in an arena
of at most :data:`TFLM_ARENA` bytes.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinycifar.data import CLASSES
from tinycifar.errors import TinyCifarError, first_line
from tinycifar.untrusted import read_bytes

RUNTIMES = ("litert", "tflm")
MAX_BYTES = 16 << 20  # a microcontroller's model is a few hundred KB
MAX_TENSOR_BYTES = 64 << 20  # what LiteRT may allocate for a file's tensors
TFLM_ARENA = 4 << 20  # a microcontroller has well under 1 MB of RAM
CONTRACT = (
    "input NHWC (1, 32, 32, 3), int8 with scale 1 and zero point -128 (pixel - 128) or float32 in [0, 1]; "
    f"output (1, {len(CLASSES)}) int8 or float32"
)
_NUMPY_BYTES = {np.int8: 1, np.uint8: 1, np.int16: 2, np.float16: 2, np.int32: 4, np.float32: 4, np.int64: 8}


def need_tflite(runtime: str) -> Any:
    """LiteRT's interpreter (always: it verifies files), and TFLM's runtime for ``tflm``."""
    fix = "TFLite support is an optional extra: pip install -e '.[tflite]' in the checkout (make setup installs it)"
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise TinyCifarError(fix) from None
    if runtime == "tflm":
        try:
            from tflite_micro.python.tflite_micro import runtime as tflm  # noqa: F401
        except ImportError:
            raise TinyCifarError(fix) from None
    return Interpreter


class TfliteClassifier:
    """A contract-keeping TFLite file: uint8 images in, class scores out."""

    def __init__(self, path: Path | str, runtime: str = "litert") -> None:
        if runtime not in RUNTIMES:
            raise TinyCifarError(f"--runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
        interpreter_class = need_tflite(runtime)
        self.path, self.runtime = Path(path), runtime
        data = read_bytes(self.path, MAX_BYTES, f"TFLite file {self.path}", "pass a tiny classifier's .tflite")
        try:
            self.litert = interpreter_class(model_content=data, num_threads=1)
        except ValueError as e:  # LiteRT's verifier: not a flatbuffer, or not one of a model
            raise TinyCifarError(f"{self.path}: not a valid TFLite file ({first_line(e)}); export it again") from None
        self._check_size()
        self.input, self.output = self._check_contract()
        try:
            self.litert.allocate_tensors()
        except (RuntimeError, ValueError) as e:
            raise TinyCifarError(f"{self.path}: LiteRT cannot run it ({first_line(e)})") from None
        self._check_size()  # ops that size their outputs from constants only do so when allocated
        self.micro = self._tflm(data) if runtime == "tflm" else None
        self.size = len(data)

    def _check_size(self) -> None:
        total = 0
        for t in self.litert.get_tensor_details():
            count = math.prod(int(d) for d in t["shape"])
            total += count * _NUMPY_BYTES.get(t["dtype"], 8)
        if total > MAX_TENSOR_BYTES:
            raise TinyCifarError(
                f"{self.path}: its tensors would take {total:,} bytes, more than a tiny classifier's "
                f"({MAX_TENSOR_BYTES:,}); tinycifar does not run it"
            )

    def _check_contract(self) -> tuple[dict[str, Any], dict[str, Any]]:
        inputs, outputs = self.litert.get_input_details(), self.litert.get_output_details()
        problems = []
        if len(inputs) != 1 or len(outputs) != 1:
            problems.append(f"{len(inputs)} inputs and {len(outputs)} outputs, expected one of each")
        else:
            inp, out = inputs[0], outputs[0]
            if tuple(inp["shape"]) != (1, 32, 32, 3):
                problems.append(f"input of shape {tuple(int(d) for d in inp['shape'][:6])}, expected (1, 32, 32, 3)")
            if inp["dtype"] == np.int8 and tuple(inp["quantization"]) != (1.0, -128):
                problems.append(
                    f"int8 input quantised as (scale, zero point) {inp['quantization']}, expected (1, -128)"
                )
            elif inp["dtype"] not in (np.int8, np.float32):
                problems.append(f"input of type {np.dtype(inp['dtype']).name}, expected int8 or float32")
            if tuple(out["shape"]) != (1, len(CLASSES)):
                problems.append(
                    f"output of shape {tuple(int(d) for d in out['shape'][:6])}, expected (1, {len(CLASSES)})"
                )
            if out["dtype"] not in (np.int8, np.float32):
                problems.append(f"output of type {np.dtype(out['dtype']).name}, expected int8 or float32")
        if problems:
            raise TinyCifarError(
                f"{self.path}: does not keep tinycifar's TFLite contract ({'; '.join(problems)}). The contract: {CONTRACT}"
            )
        return inputs[0], outputs[0]

    def _tflm(self, data: bytes) -> Any:
        from tflite_micro.python.tflite_micro import runtime as tflm

        try:
            return tflm.Interpreter.from_bytes(data, arena_size=TFLM_ARENA)
        except (RuntimeError, ValueError) as e:
            raise TinyCifarError(
                f"{self.path}: TFLM cannot run it ({first_line(e)}): an operator TFLM lacks, or more than "
                f"{TFLM_ARENA:,} bytes of arena"
            ) from None

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Class scores (N, 10) for uint8 images (N, 3, 32, 32), one image at a time, as a
        microcontroller runs them."""
        out = np.empty((len(images), len(CLASSES)), np.float32)
        pixels = images.permute(0, 2, 3, 1).numpy()
        for i, image in enumerate(pixels):
            out[i] = self._dequantise(self._run(self._quantise(image[None])))
        return torch.from_numpy(out)

    def _quantise(self, image: np.ndarray) -> np.ndarray:
        if self.input["dtype"] == np.int8:
            return (image.astype(np.int16) - 128).astype(np.int8)
        return image.astype(np.float32) / 255.0

    def _run(self, x: np.ndarray) -> np.ndarray:
        try:
            if self.micro is not None:
                self.micro.set_input(x, 0)
                self.micro.invoke()
                return self.micro.get_output(0)
            self.litert.set_tensor(self.input["index"], x)
            self.litert.invoke()
            return self.litert.get_tensor(self.output["index"])
        except (RuntimeError, ValueError) as e:
            where = "TFLM" if self.micro is not None else "LiteRT"
            raise TinyCifarError(f"{self.path}: {where} failed on it ({first_line(e)})") from None

    def _dequantise(self, y: np.ndarray) -> np.ndarray:
        if self.output["dtype"] == np.int8:
            scale, zero = self.output["quantization"]
            return (y.astype(np.float32) - zero) * scale
        return y.astype(np.float32)

    def arena_bytes(self) -> int | None:
        """TFLM's arena after a run (its allocation report), or None on LiteRT."""
        if self.micro is None:
            return None
        with tempfile.TemporaryFile(mode="w+b") as report:
            saved = os.dup(2)  # the report is printed by C++ to stderr
            os.dup2(report.fileno(), 2)
            try:
                self.micro.print_allocations()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            report.seek(0)
            found = re.search(rb"Arena allocation total (\d+) bytes", report.read())
        return int(found.group(1)) if found else None
