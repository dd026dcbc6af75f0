"""An ONNX classifier file under tinycifar's contract, run with ONNX Runtime.

The contract, which ``tinycifar export`` writes and ``evaluate --onnx`` / ``predict --onnx``
expect of any file, ours or not:

- one input ``images``: float32, NCHW ``(batch, 3, 32, 32)``, RGB pixel values in [0, 1]
  (normalisation is inside the graph), any batch size;
- one output ``logits``: float32 ``(batch, 10)``, in the order of :data:`tinycifar.data.CLASSES`;
- self-contained: no external-data side file.

A file may come from a stranger. Reading one runs no code (ONNX is a protobuf, parsed by
onnx and ONNX Runtime, never unpickled); it is size-capped before it is read, may not
point at other files (external data), and must keep the contract before a session is
built on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinycifar.data import CLASSES
from tinycifar.errors import TinyCifarError, first_line
from tinycifar.untrusted import read_bytes

INPUT, OUTPUT = "images", "logits"
IMAGE_SHAPE = (3, 32, 32)
# A model of this project is a few hundred KB; 64 MB leaves room for much larger ones and
# keeps a hostile file from filling memory before it is even parsed.
MAX_BYTES = 64 * 2**20
CONTRACT = (
    f"input {INPUT!r} float32 (batch, 3, 32, 32) RGB in [0, 1]; output {OUTPUT!r} float32 "
    f"(batch, {len(CLASSES)}); self-contained"
)


def need_onnx():
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise TinyCifarError(
            "ONNX support is an optional extra: pip install -e '.[export]' in the "
            "checkout (make setup installs every extra)"
        ) from None
    return onnx, onnxruntime


def read_model(path: Path | str) -> Any:
    """The ``onnx.ModelProto`` in ``path``, checked against the contract; one clear
    :class:`TinyCifarError` for a missing, oversized, corrupt or non-conforming file."""
    need_onnx()
    path = Path(path)
    data = read_bytes(path, MAX_BYTES, f"ONNX file {path}", "pass a tiny classifier written by `tinycifar export`")
    return model_from_bytes(data, path)


def model_from_bytes(data: bytes, path: Path | str) -> Any:
    """The ``onnx.ModelProto`` in ``data`` (read from ``path``), checked against the contract."""
    onnx, _ = need_onnx()
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise TinyCifarError(f"{path}: truncated or corrupt ONNX file ({first_line(e)}); export it again") from None
    if not model.graph.node:
        raise TinyCifarError(f"{path}: not an ONNX model (no graph found); truncated or not ONNX at all")
    check_contract(model, path)
    return model


def check_contract(model: Any, path: Path | str) -> None:
    onnx, _ = need_onnx()
    g = model.graph
    external = [
        t.name for t in _all_tensors(model) if t.data_location == onnx.TensorProto.EXTERNAL or len(t.external_data)
    ]
    if external:
        raise TinyCifarError(
            f"{path}: keeps tensors in external files ({external[0][:40]!r}, ...); "
            "tinycifar reads only self-contained files: save it with all tensors inside"
        )
    initializers = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in initializers]
    problems = []
    if [i.name for i in inputs] != [INPUT]:
        problems.append(f"inputs are {_names(inputs)}, expected [{INPUT!r}]")
    else:
        problems += _tensor_problems(inputs[0], IMAGE_SHAPE)
    if [o.name for o in g.output] != [OUTPUT]:
        problems.append(f"outputs are {_names(g.output)}, expected [{OUTPUT!r}]")
    else:
        problems += _tensor_problems(g.output[0], (len(CLASSES),))
    if problems:
        raise TinyCifarError(
            f"{path}: does not keep tinycifar's ONNX contract ({'; '.join(problems)}). The contract: {CONTRACT}"
        )


def _all_tensors(model: Any) -> Iterator[Any]:
    """Every ``TensorProto`` in a model, wherever ONNX lets one stand: graph initializers,
    sparse initializers, tensor attributes of nodes (``Constant`` and any other op), sparse
    tensor attributes, and all of these again in every subgraph (``If``, ``Loop``, ``Scan``),
    in model-local functions and in training-info graphs. Any of them may name external
    data, which ONNX Runtime would read from a path beside the current folder."""
    graphs = [model.graph, *(g for info in model.training_info for g in (info.initialization, info.algorithm))]
    nodes = [n for f in model.functions for n in f.node]
    # a function's default attributes may hold tensors too: walked as a node's would be
    onnx, _ = need_onnx()
    nodes += [onnx.NodeProto(attribute=f.attribute_proto) for f in model.functions if len(f.attribute_proto)]
    while graphs or nodes:
        if graphs:
            g = graphs.pop()
            yield from g.initializer
            for sparse in g.sparse_initializer:
                yield from (sparse.values, sparse.indices)
            nodes.extend(g.node)
            continue
        for attr in nodes.pop().attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            for sparse in (*([attr.sparse_tensor] if attr.HasField("sparse_tensor") else []), *attr.sparse_tensors):
                yield from (sparse.values, sparse.indices)
            if attr.HasField("g"):
                graphs.append(attr.g)
            graphs.extend(attr.graphs)


def _tensor_problems(value: Any, trailing: tuple[int, ...]) -> list[str]:
    onnx, _ = need_onnx()
    t = value.type.tensor_type
    problems = []
    if t.elem_type != onnx.TensorProto.FLOAT:
        problems.append(f"{value.name[:40]!r} is {_type_name(t.elem_type)}, expected float32")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    if len(dims) != 1 + len(trailing) or any(d is not None and d != want for d, want in zip(dims[1:], trailing)):
        shown = ", ".join("?" if d is None else str(d) for d in dims[:6]) + (", ..." if len(dims) > 6 else "")
        problems.append(f"{value.name[:40]!r} has shape ({shown}), expected (batch, {', '.join(map(str, trailing))})")
    return problems


def _names(values: Any) -> str:
    """A stranger's list of names, short enough for one line."""
    names = [v.name[:40] for v in list(values)[:3]]
    return str(names) if len(values) <= 3 else f"{str(names)[:-1]}, ... ({len(values)} in all)]"


def _type_name(elem_type: int) -> str:
    onnx, _ = need_onnx()
    try:
        return onnx.TensorProto.DataType.Name(elem_type).lower()
    except ValueError:  # a number no ONNX version defines
        return f"type {elem_type}"


class OnnxClassifier:
    """An ONNX Runtime session on a contract-keeping file: uint8 images in, logits out.

    ``threads`` caps ONNX Runtime's intra-op threads (default: PyTorch's thread count, so
    the two run on the same cores when compared).
    """

    def __init__(self, path: Path | str, threads: int | None = None) -> None:
        _, ort = need_onnx()
        self.path = Path(path)
        self.model = read_model(self.path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                self.model.SerializeToString(), options, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # noqa: BLE001 - ORT raises its own Fail/InvalidGraph/... types
            raise TinyCifarError(f"{self.path}: ONNX Runtime cannot run it ({first_line(e)})") from None
        self.metadata = {p.key: p.value for p in self.model.metadata_props}

    def logits(self, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """fp32 logits for uint8 images ``(N, 3, 32, 32)``, in batches."""
        out = []
        for i in range(0, len(images), batch_size):
            x = images[i : i + batch_size].numpy().astype(np.float32) / 255.0
            out.append(torch.from_numpy(self.run(x)))
        return torch.cat(out) if out else torch.empty(0, len(CLASSES))

    def run(self, x: np.ndarray) -> np.ndarray:
        """One batch of float [0, 1] images through the session."""
        try:
            (logits,) = self.session.run([OUTPUT], {INPUT: x})
        except Exception as e:  # noqa: BLE001
            raise TinyCifarError(f"{self.path}: ONNX Runtime failed on it ({first_line(e)})") from None
        if logits.shape != (len(x), len(CLASSES)):
            raise TinyCifarError(
                f"{self.path}: returned logits of shape {logits.shape}, expected ({len(x)}, {len(CLASSES)})"
            )
        return logits.astype(np.float32, copy=False)
