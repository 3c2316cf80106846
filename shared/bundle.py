"""The trained-model file: weights plus the task, options and provenance that predict needs."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from shared.config import RunConfig
    from shared.tasks.base import Task

__all__ = [
    "BUNDLE_FORMAT",
    "MODEL_FILE",
    "ModelBundle",
    "check_evaluated_model",
    "evaluation_options",
    "evaluation_run_config",
    "load_bundle",
    "load_for_run",
    "model_path",
    "save_bundle",
]

#: The file name of a run's final global model inside its run folder.
MODEL_FILE = "global_model.pt"
#: Marks a MedFleet model file; bumped when the layout changes incompatibly.
BUNDLE_FORMAT = "medfleet-model/1"


@dataclass(frozen=True)
class ModelBundle:
    """A trained model as `medfleet predict` and `medfleet export` use it.

    Attributes
    ----------
    task : str
        The task name (``classification``, ``segmentation``, ``gan``).
    config : dict
        The run's flat run config: the task options (input size, network, classes) and
        the training settings; predict rebuilds the task and its transforms from it.
    state_dict : dict[str, torch.Tensor]
        The global model's weights.
    inputs : dict
        What the model expects, for people and viewers: size, channels, normalisation.
    provenance : dict
        Where the weights come from: round, sites, strategy, run start, version.
    """

    task: str
    config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    inputs: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def build(self) -> tuple[Task, nn.Module]:
        """The task and its network with these weights, in eval mode on the CPU."""
        from shared.config import RunConfig
        from shared.tasks import get_task

        task = get_task(RunConfig.from_mapping(self.config))
        model = task.build_model()
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as err:
            raise ConfigError(
                "the model file's weights do not fit the network its options describe: "
                "was it written by another MedFleet version?"
            ) from err
        return task, model.eval()

    def fingerprint(self) -> str:
        """SHA-256 of the weights (names, dtypes, shapes and bytes), for provenance."""
        digest = hashlib.sha256()
        for name, tensor in self.state_dict.items():
            array = tensor.detach().cpu().contiguous()
            digest.update(f"{name}:{array.dtype}:{tuple(array.shape)}".encode())
            digest.update(array.numpy().tobytes() if array.numel() else b"")
        return digest.hexdigest()


def save_bundle(
    path: Path,
    task: Task,
    model: nn.Module,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Write `model` with its task, options and `provenance` to `path` atomically."""
    content = {
        "format": BUNDLE_FORMAT,
        "task": task.name,
        "config": dict(task.config.to_mapping()),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "inputs": task.input_spec(),
        "provenance": dict(provenance or {}),
    }
    import torch  # here: `server run` reads this module to check a run, without torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(content, tmp)
    tmp.replace(path)
    return path


def model_path(source: Path) -> Path:
    """The model file `source` names: itself, or the final model of a run folder."""
    source = Path(source)
    return source / MODEL_FILE if source.is_dir() else source


def load_bundle(source: Path) -> ModelBundle:
    """Read a model file, or the final model of a run folder.

    Only tensors and plain values are unpickled (``weights_only``): a model file from
    elsewhere cannot run code when it is opened.

    Raises
    ------
    ConfigError
        When `source` is neither a MedFleet model file nor a run folder holding one.
    """
    path = model_path(source)
    if not path.is_file():
        raise ConfigError(
            f"no model at the given path: give a run folder holding {MODEL_FILE} "
            "or a model file written by MedFleet"
        )
    import torch

    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a file that is not its own
        raise ConfigError("the model file could not be read as a MedFleet model") from err
    if not isinstance(content, dict) or content.get("format") != BUNDLE_FORMAT:
        raise ConfigError(
            f"the model file is not a MedFleet model ({BUNDLE_FORMAT}): a file of weights "
            "only (older MedFleet runs wrote one) lacks the task and options; resume or "
            "rerun the training to write a model file"
        )
    return ModelBundle(
        task=str(content["task"]),
        config=dict(content["config"]),
        state_dict=dict(content["state_dict"]),
        inputs=dict(content.get("inputs", {})),
        provenance=dict(content.get("provenance", {})),
    )


def evaluation_options(bundle: ModelBundle) -> dict[str, Any]:
    """The run-config keys a model file fixes for scoring it: its task, the task's options
    (network, input size, validation fraction) and the seed (which patients are held out).

    With them, an evaluation-only run builds the same network and, at the sites it was
    trained on, scores it on the same held-out patients as the training run did.
    """
    import importlib

    from shared.tasks import TASK_OPTIONS

    module = TASK_OPTIONS.get(bundle.task)
    if module is None:
        raise ConfigError(
            f"the model file is for task '{bundle.task}', which this MedFleet build lacks: "
            f"use a model of {', '.join(sorted(TASK_OPTIONS))}"
        )
    keys = ["seed", *(o.key for o in importlib.import_module(module).OPTIONS)]
    return {"task": bundle.task, **{k: bundle.config[k] for k in keys if k in bundle.config}}


def load_for_run(source: Path, run: RunConfig, model: nn.Module) -> ModelBundle:
    """Read the model file `source` into `model`, the network `run` builds.

    Raises
    ------
    ConfigError
        When there is no model file, it is for another task, the run's task options
        differ from those the model was trained with, or the weights do not fit.
    """
    bundle = load_bundle(source)
    fixed = evaluation_options(bundle)
    mapping = run.to_mapping()
    differ = sorted(k for k, v in fixed.items() if k != "seed" and mapping.get(k) != v)
    if differ:
        shown = ", ".join(f"{k} = {fixed[k]!r} (this run: {mapping.get(k)!r})" for k in differ)
        raise ConfigError(
            f"the model file was trained with {shown}: set these keys as the model has "
            "(`--evaluate-only` takes them from the model file unless --set overrides them)"
        )
    try:
        model.load_state_dict(bundle.state_dict)
    except RuntimeError as err:
        raise ConfigError(
            "the model file's weights do not fit the network its options describe: "
            "was it written by another MedFleet version?"
        ) from err
    return bundle


def evaluation_run_config(source: Path) -> dict[str, Any]:
    """The run-config keys of an evaluation-only run of the model file (or run folder)
    `source`: its task options and seed, the file, and no training rounds."""
    options = evaluation_options(load_bundle(source))
    path = model_path(source).resolve()
    return {**options, "evaluate-model": str(path), "num-server-rounds": 0}


def check_evaluated_model(run: RunConfig) -> None:
    """At the door: the run's `evaluate-model` (if any) is a model file its network loads."""
    source = str(run.option("evaluate-model"))
    if source:
        from shared.tasks import get_task

        load_for_run(Path(source), run, get_task(run).build_model())
