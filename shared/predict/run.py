"""`medfleet predict`: load a model file, apply it to a folder, write what people open."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from shared.bundle import load_bundle
from shared.config import RunConfig, resolve_device
from shared.errors import ConfigError
from shared.tasks.base import TrainSettings

__all__ = ["SUMMARY_FILE", "PredictSummary", "run_predict"]

#: What a predict run wrote, with the model's provenance and the input counts.
SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class PredictSummary:
    """The outcome of one predict run (also written to ``summary.json``)."""

    task: str
    predictions: int
    inputs: dict[str, int]
    files: dict[str, list[str]]
    out_dir: Path


def run_predict(
    model: Path,
    source: Path,
    out_dir: Path,
    device: str = "auto",
    overrides: Mapping[str, Any] | None = None,
) -> PredictSummary:
    """Apply the model of a run folder (or model file) to every usable input of `source`.

    Parameters
    ----------
    model : Path
        A run folder holding ``global_model.pt``, or a MedFleet model file.
    source : Path
        The input: a folder of DICOM files (a study, a PACS export, a series) or NIfTI
        volumes; the GAN reads none.
    out_dir : Path
        Where the outputs go; it must not lie inside `source`, where the next predict or
        training run would read them as inputs.
    device : str
        ``auto`` (CUDA when there is one), ``cpu`` or ``cuda[:N]``.
    overrides : Mapping, optional
        Run-config keys that replace the model file's (e.g. ``batch-size``, ``seed``,
        ``gan-samples``); keys that change the network make its weights unloadable.
    """
    source, out_dir = Path(source), Path(out_dir)
    if out_dir.resolve().is_relative_to(source.resolve()):
        raise ConfigError("--out lies inside --input: choose an output folder outside it")
    bundle = load_bundle(model)
    if overrides:
        RunConfig.from_mapping({**bundle.config, **overrides})  # refuses bad keys first
        bundle = replace(bundle, config={**bundle.config, **overrides})
    task, network = bundle.build()
    settings = TrainSettings.from_run(task.config, torch.device(resolve_device(device)))
    predictions = task.predict(network, source, settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = task.write_predictions(network, predictions, out_dir, settings)
    summary = PredictSummary(task.name, len(predictions), dict(predictions.inputs), files, out_dir)
    record = {
        "task": task.name,
        "predictions": summary.predictions,
        "inputs": summary.inputs,
        "files": {kind: len(paths) for kind, paths in files.items()},
        "model": {
            "fingerprint": bundle.fingerprint(),
            "inputs": bundle.inputs,
            "provenance": bundle.provenance,
        },
    }
    (out_dir / SUMMARY_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return summary
