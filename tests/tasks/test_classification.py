"""Classification task: model shapes, site loading, training, evaluation, registry."""

from pathlib import Path

import numpy as np
import pytest
import torch

from shared.config import RunConfig
from shared.errors import ConfigError, DataError
from shared.models import LesionCNN
from shared.tasks import get_task
from shared.tasks.base import TrainSettings
from simulations.synth import generate_sites


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_sites(tmp_path_factory.mktemp("sites"), n_sites=1, seed=1, scale=0.25)[0]


def _settings(**kw: object) -> TrainSettings:
    base = dict(local_epochs=1, batch_size=8, lr=1e-3, seed=0, device=torch.device("cpu"))
    base.update(kw)
    return TrainSettings(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [32, 64, 96])
def test_cnn_gives_logits_for_any_input_size(size: int) -> None:
    # Prepare
    model = LesionCNN(num_classes=2)

    # Execute
    out = model(torch.zeros(3, 1, size, size))

    # Assert
    assert out.shape == (3, 2)


def test_cnn_rejects_bad_hyperparameters() -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match="dropout"):
        LesionCNN(dropout=1.0)
    with pytest.raises(ValueError):
        LesionCNN(num_classes=1)


def test_registry_names_the_options() -> None:
    # Execute / Assert
    with pytest.raises(ConfigError, match="classification"):
        get_task(RunConfig(task="clasification"))
    with pytest.raises(ConfigError, match="image-size"):
        get_task(RunConfig.from_mapping({"image-size": 8}))


def test_same_seed_same_initial_weights() -> None:
    # Prepare
    task = get_task(RunConfig(seed=5))

    # Execute
    a, b = task.get_weights(task.build_model()), task.get_weights(task.build_model())

    # Assert
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_load_site_splits_by_patient_and_reports_counts(site_dir: Path) -> None:
    # Prepare
    task = get_task(RunConfig())

    # Execute
    data = task.load_site(site_dir)

    # Assert
    assert data.train[0]["image"].shape == (1, 64, 64)
    # Evaluation items are scaled into [0, 1]; training items add augmentation noise.
    val_image = data.val[0]["image"]
    assert val_image.shape == (1, 64, 64)
    assert float(val_image.min()) >= 0.0 and float(val_image.max()) <= 1.0
    assert data.num_train + data.num_val == data.report["usable"]
    assert data.num_val > 0


def test_training_lowers_the_loss_and_evaluation_reports_scores(site_dir: Path) -> None:
    # Prepare
    task = get_task(RunConfig(seed=0))
    data = task.load_site(site_dir)
    model = task.build_model()
    before = task.evaluate(model, data, _settings())

    # Execute: several passes over the small train split, then score on it
    data.val = data.train
    first = task.train_round(model, data, _settings(local_epochs=1))
    last = task.train_round(model, data, _settings(local_epochs=6, server_round=2))
    after = task.evaluate(model, data, _settings())

    # Assert
    assert last.metrics["train_loss"] < first.metrics["train_loss"]
    assert {"accuracy", "precision", "recall", "f1", "auc", "loss"} <= set(after.metrics)
    assert before.num_examples > 0 and after.num_examples == data.num_train


def test_site_without_labels_gets_a_clear_error(site_dir: Path, tmp_path: Path) -> None:
    # Prepare
    site = tmp_path / "site"
    site.mkdir()
    for path in list(site_dir.rglob("*.dcm"))[:3]:
        (site / path.name).write_bytes(path.read_bytes())

    # Execute / Assert
    with pytest.raises(DataError, match="labels.csv") as err:
        get_task(RunConfig()).load_site(site)
    assert str(tmp_path) not in str(err.value)
