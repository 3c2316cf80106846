"""Export a trained model as TorchScript or ONNX, checked against PyTorch's own outputs."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from shared.bundle import load_bundle
from shared.errors import ConfigError, MedFleetError

__all__ = ["ExportResult", "export_model"]

#: An export whose outputs differ from PyTorch's by more than this is refused.
TOLERANCE = 1e-4


@dataclass(frozen=True)
class ExportResult:
    """What `export_model` wrote and how close its outputs are to PyTorch's."""

    path: Path
    format: str
    input_shape: tuple[int, ...]
    max_abs_diff: float


class ExportMismatch(MedFleetError):
    """The exported model's outputs differ from the PyTorch model's."""


def export_model(model: Path, out: Path, fmt: str = "torchscript") -> ExportResult:
    """Write the model of a run folder (or model file) to `out` and check its outputs.

    Parameters
    ----------
    model : Path
        Run folder holding ``global_model.pt``, or a MedFleet model file.
    out : Path
        File to write (``.pt`` for TorchScript, ``.onnx`` for ONNX by convention).
    fmt : str
        ``torchscript`` (``torch.jit.trace``; loads with ``torch.jit.load`` and no
        MedFleet) or ``onnx`` (``torch.onnx.export``; checked with ONNX Runtime). The
        batch axis is dynamic in both.

    Raises
    ------
    ExportMismatch
        When the exported model's outputs on a seeded input differ by more than 1e-4.
    """
    task, network = load_bundle(model).build()
    module = task.export_module(network).eval()
    example, other = task.example_input(2), task.example_input(3)
    expected = _outputs(module, example), _outputs(module, other)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "torchscript":
        got = _torchscript(module, example, out, other)
    elif fmt == "onnx":
        got = _onnx(module, example, out, other)
    else:
        raise ConfigError(f"--format must be torchscript or onnx, got {fmt!r}")
    diff = max(float(np.abs(want - have).max()) for want, have in zip(expected, got, strict=True))
    if not diff <= TOLERANCE:
        out.unlink(missing_ok=True)
        raise ExportMismatch(
            f"the {fmt} export's outputs differ from PyTorch's by {diff:.2e} (> {TOLERANCE}); "
            "nothing was written: try the other --format"
        )
    return ExportResult(out, fmt, tuple(example.shape), diff)


def _outputs(module: nn.Module, inputs: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return module(inputs).numpy()


def _torchscript(
    module: nn.Module, example: torch.Tensor, out: Path, other: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """Trace, save, load back, and run the loaded module on both batches."""
    # The check below compares outputs on a second batch size; the tracer's warnings
    # about Python-side shape checks (instance norm, U-Net) would only alarm a reader.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(module, example, check_trace=False)
    traced.save(str(out))
    loaded = torch.jit.load(str(out))
    with torch.no_grad():
        return loaded(example).numpy(), loaded(other).numpy()


def _onnx(
    module: nn.Module, example: torch.Tensor, out: Path, other: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """Export with a dynamic batch axis and run both batches in ONNX Runtime."""
    try:
        import onnxruntime
    except ImportError as err:
        raise ConfigError(
            "ONNX export needs the 'export' extra: pip install 'medfleet[export]'"
        ) from err
    # Its exporter lists every torchvision operator it skips (torchvision is not needed).
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    batch = torch.export.Dim("batch", min=1, max=1024)
    with warnings.catch_warnings():  # torch.export's deprecation notices, not ours to fix
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.export(
            module,
            (example,),
            str(out),
            input_names=["input"],
            output_names=["output"],
            dynamic_shapes=({0: batch},),
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    run = lambda x: session.run(None, {"input": x.numpy()})[0]  # noqa: E731
    return run(example), run(other)
