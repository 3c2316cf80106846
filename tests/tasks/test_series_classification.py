"""The series task: padded batches change no score, every slice is kept, labels are counted."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
import torch
from pydicom import dcmread
from pydicom.uid import generate_uid

from shared.config import RunConfig
from shared.errors import ConfigError
from shared.models import LesionCNN, SeriesGRU, SliceMax
from shared.tasks import get_task
from shared.tasks.base import TrainSettings
from shared.tasks.series_data import collate_series
from simulations.synth import generate_sites
from simulations.synth.series import NODULES_FILE

SETTINGS = TrainSettings(1, 4, 1e-3, 42, torch.device("cpu"))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small synthetic series site (8 CT series of 12-40 slices, 64 px)."""
    root = tmp_path_factory.mktemp("series-site")
    return generate_sites(root, n_sites=1, seed=3, task="series", scale=0.2, difficulty=0.0)[0]


def _truth(site_dir: Path) -> dict[str, int]:
    """Slices per series, as the generator wrote them (series_nodules.csv)."""
    with (site_dir / NODULES_FILE).open() as handle:
        return {row["series_instance_uid"]: int(row["slices"]) for row in csv.DictReader(handle)}


def _task(**options: object) -> object:
    return get_task(RunConfig.from_mapping({"task": "series", **options}))


@pytest.mark.parametrize("network", ["cnn-gru", "lesion-cnn"])
def test_two_series_of_different_lengths_score_as_when_run_alone(network: str) -> None:
    # Prepare: 5 and 9 slices; the short one padded with noise a crop would not remove
    model = _task(model=network).build_model().eval()
    generator = torch.Generator().manual_seed(0)
    short = torch.rand(5, 1, 32, 32, generator=generator)
    long = torch.rand(9, 1, 32, 32, generator=generator)
    batch = torch.rand(2, 9, 1, 32, 32, generator=generator) * 10
    batch[0, :5], batch[1] = short, long
    # Execute
    with torch.no_grad():
        together = model(batch, torch.tensor([5, 9]))
        alone = [model(x[None], torch.tensor([len(x)]))[0] for x in (short, long)]
    # Assert
    assert together.shape == (2, 2)
    for row, expected in zip(together, alone, strict=True):
        torch.testing.assert_close(row, expected, rtol=1e-5, atol=1e-6)


def test_gru_reads_the_slice_order_and_max_baseline_does_not() -> None:
    # Prepare
    torch.manual_seed(0)
    gru, baseline = SeriesGRU(hidden=8).eval(), SliceMax(LesionCNN()).eval()
    series = torch.rand(1, 6, 1, 32, 32)
    reversed_series, lengths = series.flip(1), torch.tensor([6])
    # Execute
    with torch.no_grad():
        gru_change = (gru(series, lengths) - gru(reversed_series, lengths)).abs().max()
        max_change = (baseline(series, lengths) - baseline(reversed_series, lengths)).abs().max()
    # Assert: the maximum over slices ignores their order; the GRU reads them in order
    assert float(max_change) < 1e-6
    assert float(gru_change) > 1e-6


def test_collate_keeps_every_slice_in_order_and_carries_lengths() -> None:
    # Prepare: slice k of series b holds the value 10 * b + k + 1 everywhere
    lengths = (3, 7, 1)
    items = [
        {"image": torch.arange(1, n + 1).float().reshape(1, 1, 1, n).expand(1, 4, 4, n) + 10 * b,
         "label": b % 2}
        for b, n in enumerate(lengths)
    ]  # fmt: skip
    # Execute
    batch = collate_series(items)
    # Assert
    assert batch["image"].shape == (3, 7, 1, 4, 4)
    assert batch["lengths"].tolist() == list(lengths)
    assert batch["label"].tolist() == [0, 1, 0]
    for b, n in enumerate(lengths):
        values = batch["image"][b, :, 0, 0, 0].tolist()
        assert values == [10 * b + k + 1 for k in range(n)] + [0.0] * (7 - n)


def test_site_batches_hold_every_slice_of_every_series(site: Path) -> None:
    # Prepare
    task = _task(**{"image-size": 32})
    data = task.load_site(site)
    # Execute
    lengths = sorted(
        n for split in (data.train, data.val) for n in collate_series(list(split))["lengths"]
    )
    # Assert: as many slices as the generator wrote for each series, none cropped
    assert lengths == sorted(_truth(site).values())
    assert data.report["series"] == len(_truth(site))


def test_unknown_uids_bad_labels_and_broken_series_are_skipped_and_counted(
    site: Path, tmp_path: Path
) -> None:
    # Prepare: a copy of the site where one series loses its label, labels.csv gains an
    # unknown UID and a label 2, and another series gets a second slice at one position
    copy = Path(shutil.copytree(site, tmp_path / "site"))
    uids = list(_truth(site))
    rows = [[uid, 1] for uid in uids[1:]] + [["1.2.3.999", 0], [uids[0], 2]]
    with (copy / "series_labels.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([["series_instance_uid", "label"], *rows])
    broken = _series_dir(copy, uids[1])
    duplicate = dcmread(sorted(broken.glob("*.dcm"))[0])
    duplicate.SOPInstanceUID = generate_uid()
    duplicate.save_as(broken / "IM99999.dcm")
    # Execute
    data = _task().load_site(copy)
    # Assert
    report = data.report
    # "unknown": a UID of no usable series, the made-up one and the broken series' own
    assert report["label_rows_skipped_unknown_uid"] == 2
    assert report["label_rows_skipped_bad_label"] == 1
    assert report["unlabelled_series"] == 1
    assert report["skipped_series_not_one_volume"] == (_truth(site)[uids[1]] + 1)
    assert data.num_train + data.num_val == len(uids) - 2


def _series_dir(site_dir: Path, uid: str) -> Path:
    for path in sorted(site_dir.rglob("IM00001.dcm")):
        if str(dcmread(path, stop_before_pixels=True).SeriesInstanceUID) == uid:
            return path.parent
    raise AssertionError("series not found")


def test_predict_writes_one_row_per_series_keyed_by_its_uid(site: Path, tmp_path: Path) -> None:
    # Prepare
    task = _task(model="cnn-gru", **{"image-size": 32})
    model = task.build_model()
    # Execute
    predictions = task.predict(model, site, SETTINGS)
    files = task.write_predictions(model, predictions, tmp_path / "out", SETTINGS)
    # Assert
    with (tmp_path / "out" / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {row["key"]: int(float(row["slices"])) for row in rows} == _truth(site)
    assert all(0.0 <= float(row["probability"]) <= 1.0 for row in rows)
    assert len(files["tables"]) == 2
    assert predictions.inputs["series"] == len(rows)


def test_series_networks_are_refused_where_they_cannot_run() -> None:
    # Execute / Assert
    with pytest.raises(ConfigError, match="use task 'series'"):
        get_task(RunConfig.from_mapping({"model": "cnn-gru"}))
    with pytest.raises(ConfigError, match="dp = 'client'"):
        _task(dp="dp-sgd")


@pytest.mark.slow
def test_cnn_gru_learns_easy_series_and_scores_unseen_ones_well_above_chance(
    tmp_path: Path,
) -> None:
    # Prepare: easy data (large nodules, no vessels); train at one site, test at another
    train_site, test_site = generate_sites(
        tmp_path, n_sites=2, seed=1, task="series", scale=0.3, difficulty=0.0
    )
    task = _task(model="cnn-gru", **{"image-size": 32, "val-fraction": 0.01})
    model, data = task.build_model(), task.load_site(train_site)
    data.val = task.labelled_dataset(test_site)
    untrained = task.evaluate(model, data, SETTINGS).metrics["auc"]
    # Execute: 6 epochs of 3 batches
    for epoch in range(1, 7):
        settings = TrainSettings(1, 4, 3e-3, 42, torch.device("cpu"), server_round=epoch)
        task.train_round(model, data, settings)
    scores = task.evaluate(model, data, SETTINGS)
    # Assert
    assert scores.num_examples == len(_truth(test_site))
    assert scores.metrics["auc"] >= 0.8, (untrained, scores.metrics)
