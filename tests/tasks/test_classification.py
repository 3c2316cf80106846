"""Classification task: model shapes, site loading, training, evaluation, predict, registry."""

from pathlib import Path

import numpy as np
import pytest
import torch
from pydicom import dcmread

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


def _uid(path: Path) -> str:
    return str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def test_predict_needs_no_labels_and_scores_every_image(site_dir: Path, tmp_path: Path) -> None:
    # Prepare: the site's images without labels.csv
    images = tmp_path / "images"
    for path in site_dir.rglob("*.dcm"):
        target = images / path.relative_to(site_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    task = get_task(RunConfig(seed=0))
    model = task.build_model()

    # Execute
    predictions = task.predict(model, images, _settings())

    # Assert: one prediction per image file, keyed by SOP Instance UID
    probabilities = {p.key: p.values["probability"] for p in predictions}
    assert len(predictions) == len(probabilities) == len(list(images.rglob("*.dcm")))
    assert set(probabilities) == {_uid(p) for p in images.rglob("*.dcm")}
    assert all(0.0 <= p <= 1.0 for p in probabilities.values())
    assert all(p.array is None for p in predictions)


def test_predict_probabilities_are_those_evaluation_scores(site_dir: Path) -> None:
    # Prepare: a briefly trained model and every labelled image as the validation split
    task = get_task(RunConfig(seed=0))
    data = task.load_site(site_dir)
    model = task.build_model()
    task.train_round(model, data, _settings(local_epochs=2))
    items = task.labelled_items(site_dir)
    data.val = task.make_dataset(items, train=False)

    # Execute
    predictions = {
        p.key: p.values["probability"] for p in task.predict(model, site_dir, _settings())
    }
    evaluated = task.evaluate(model, data, _settings())

    # Assert: evaluation's mean cross-entropy is -log of the predicted class probabilities
    probs = np.array([predictions[_uid(Path(item["image"]))] for item in items])
    labels = np.array([item["label"] for item in items])
    cross_entropy = -np.log(np.where(labels == 1, probs, 1.0 - probs)).mean()
    assert evaluated.metrics["loss"] == pytest.approx(cross_entropy, rel=1e-4)
    assert float(probs.std()) > 1e-3  # a trained model tells the images apart
    with torch.no_grad():
        batch = torch.stack([data.val[i]["image"] for i in range(len(items))])
        direct = torch.softmax(model.eval()(batch), dim=1)[:, 1].numpy()
    np.testing.assert_allclose(probs, direct, rtol=1e-5, atol=1e-6)


def test_predict_on_a_folder_without_images_names_the_fix(tmp_path: Path) -> None:
    # Execute / Assert
    task = get_task(RunConfig())
    with pytest.raises(DataError, match="medfleet data check") as err:
        task.predict(task.build_model(), tmp_path, _settings())
    assert str(tmp_path) not in str(err.value)
