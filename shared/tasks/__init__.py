"""Task registry: pick a task implementation by name."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from shared.errors import ConfigError

if TYPE_CHECKING:
    from shared.config import RunConfig
    from shared.schema import Option
    from shared.tasks.base import Task

__all__ = ["TASKS", "TASK_OPTIONS", "get_task", "task_options"]

# name -> "module:Class"; modules are imported only when their task is asked for.
TASKS: dict[str, str] = {
    "classification": "shared.tasks.classification:ClassificationTask",
    "segmentation": "shared.tasks.segmentation:SegmentationTask",
    "gan": "shared.tasks.gan:GanTask",
    "series": "shared.tasks.series_classification:SeriesClassificationTask",
    "detection": "shared.tasks.detection:DetectionTask",
}

#: name -> module with the task's `OPTIONS` (light: no torch), for parsing at the door.
TASK_OPTIONS: dict[str, str] = {
    "classification": "shared.tasks.classification_options",
    "segmentation": "shared.tasks.seg_options",
    "gan": "shared.tasks.gan_options",
    "series": "shared.tasks.series_options",
    "detection": "shared.tasks.detection_options",
}


def task_options() -> list[Option]:
    """Every task's declared run-config options (Flower passes all of them to every run)."""
    options: list[Option] = []
    for module in TASK_OPTIONS.values():
        options.extend(importlib.import_module(module).OPTIONS)
    return options


def get_task(config: RunConfig) -> Task:
    """Build the task named by `config.task`, with a helpful error for unknown names."""
    from monai.utils import look_up_option

    try:
        target = look_up_option(config.task, TASKS)
    except ValueError as err:
        raise ConfigError(f"config key 'task': {err}") from None
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:
            raise
        raise ConfigError(f"task '{config.task}' is not available in this MedFleet build") from None
    return getattr(module, class_name)(config)
