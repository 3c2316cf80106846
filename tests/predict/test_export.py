"""`medfleet export`: TorchScript and ONNX files whose outputs equal the PyTorch model's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from shared.bundle import load_bundle, save_bundle
from shared.cli import main
from shared.config import RunConfig
from shared.tasks import get_task

CASES = {
    "classification": {"task": "classification", "image-size": 32},
    "segmentation": {"task": "segmentation", "seg-channels": "4,8", "seg-patch-size": 16},
    "gan": {"task": "gan", "gan-image-size": 32, "gan-width": 4, "gan-latent-dim": 16},
}


def _model_file(tmp_path: Path, name: str) -> Path:
    task = get_task(RunConfig.from_mapping(CASES[name]))
    return save_bundle(tmp_path / "model.pt", task, task.build_model())


@pytest.mark.parametrize("name", sorted(CASES))
def test_torchscript_export_loads_without_medfleet_and_gives_the_same_outputs(
    name: str, tmp_path: Path
) -> None:
    # Prepare
    model_file = _model_file(tmp_path, name)
    task, model = load_bundle(model_file).build()
    inputs = task.example_input(5)  # another batch size than the export's check

    # Execute
    code = main(["export", "--model", str(model_file), "--out", str(tmp_path / "m.ts")])
    loaded = torch.jit.load(str(tmp_path / "m.ts"))

    # Assert
    assert code == 0
    with torch.no_grad():
        expected = task.export_module(model)(inputs)
        np.testing.assert_allclose(loaded(inputs).numpy(), expected.numpy(), atol=1e-5)


@pytest.mark.parametrize("name", ["classification", "gan"])
def test_onnx_export_runs_in_onnx_runtime_with_the_same_outputs(name: str, tmp_path: Path) -> None:
    # Prepare
    import onnxruntime

    model_file = _model_file(tmp_path, name)
    task, model = load_bundle(model_file).build()
    inputs = task.example_input(7)

    # Execute
    code = main(["export", "--model", str(model_file), "--out", str(tmp_path / "m.onnx"),
                 "--format", "onnx"])  # fmt: skip
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"))

    # Assert
    assert code == 0
    got = session.run(None, {"input": inputs.numpy()})[0]
    with torch.no_grad():
        expected = task.export_module(model)(inputs).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)
