"""The trained-model file: weights plus the task, options and provenance that predict needs."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from shared.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

    from shared.tasks.base import Task

__all__ = ["BUNDLE_FORMAT", "MODEL_FILE", "ModelBundle", "load_bundle", "save_bundle"]

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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(content, tmp)
    tmp.replace(path)
    return path


def load_bundle(source: Path) -> ModelBundle:
    """Read a model file, or the final model of a run folder.

    Only tensors and plain values are unpickled (``weights_only``): a model file from
    elsewhere cannot run code when it is opened.

    Raises
    ------
    ConfigError
        When `source` is neither a MedFleet model file nor a run folder holding one.
    """
    source = Path(source)
    path = source / MODEL_FILE if source.is_dir() else source
    if not path.is_file():
        raise ConfigError(
            f"no model at the given path: give a run folder holding {MODEL_FILE} "
            "or a model file written by MedFleet"
        )
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
