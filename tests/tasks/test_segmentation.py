"""Tests of the segmentation task: U-Net shapes, metrics, config checks, weights, sites, predict."""

from __future__ import annotations

import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from shared.config import RunConfig
from shared.errors import ConfigError, DataError
from shared.tasks import get_task
from shared.tasks.base import TrainSettings
from shared.tasks.seg_metrics import case_scores, summarise_scores
from shared.tasks.seg_transforms import eval_transforms
from shared.tasks.segmentation import SegmentationTask
from shared.volumes import SegCase, index_segmentation_site, load_volume_case

TINY = {"seg-channels": "4,8", "seg-patch-size": 16, "seg-res-units": 1}


def _task(**options: object) -> SegmentationTask:
    config = RunConfig.from_mapping({"task": "segmentation", **TINY, **options})
    task = get_task(config)
    assert isinstance(task, SegmentationTask)
    return task


def _settings(epochs: int = 1) -> TrainSettings:
    return TrainSettings(
        local_epochs=epochs, batch_size=4, lr=1e-2, seed=0, device=torch.device("cpu")
    )


@pytest.mark.parametrize("dims", [3, 2])
def test_forward_backward_on_tiny_patches(dims: int) -> None:
    # Prepare
    task = _task(**{"seg-spatial-dims": dims})
    model = task.build_model()
    images = torch.randn(2, 1, *(16,) * dims)
    labels = torch.randint(0, 3, (2, 1, *(16,) * dims))

    # Execute
    logits = model(images)
    loss = task.loss_function()(logits, labels)
    loss.backward()

    # Assert
    assert logits.shape == (2, 3, *(16,) * dims)
    assert torch.isfinite(loss)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("dims", [3, 2])
def test_infer_covers_a_whole_volume_of_any_size(dims: int) -> None:
    # Prepare
    task = _task(**{"seg-spatial-dims": dims})
    model = task.build_model().eval()
    volume = torch.randn(1, 1, 21, 18, 7)

    # Execute
    with torch.no_grad():
        logits = task.infer(model, volume)

    # Assert
    assert logits.shape == (1, 3, 21, 18, 7)


def test_dice_of_two_shifted_cubes_is_computed_by_hand() -> None:
    # Prepare: 4x4x4 cubes shifted by one voxel overlap in 3x4x4 = 48 of 64 voxels.
    label = torch.zeros(1, 1, 10, 10, 10)
    pred = torch.zeros(1, 1, 10, 10, 10)
    label[0, 0, 2:6, 2:6, 2:6] = 1
    pred[0, 0, 3:7, 2:6, 2:6] = 1

    # Execute
    dice, _ = case_scores(pred, label, num_classes=2)

    # Assert: 2 * 48 / (64 + 64)
    assert dice[0] == pytest.approx(0.75)


def test_hd95_of_two_shifted_plates_is_the_shift_in_mm() -> None:
    # Prepare: one-voxel plates, class 2 shifted by 2 voxels along axis 0 of 1.5 mm.
    label = torch.zeros(1, 1, 12, 12, 12)
    pred = torch.zeros(1, 1, 12, 12, 12)
    label[0, 0, 1:5, 1:5, 1:5] = 1
    pred[0, 0, 1:5, 1:5, 1:5] = 1
    label[0, 0, 7, 1:11, 1:11] = 2
    pred[0, 0, 9, 1:11, 1:11] = 2

    # Execute
    dice, hd95 = case_scores(pred, label, num_classes=3, spacing=(1.5, 1.0, 1.0))

    # Assert: every point of one plate lies exactly 2 x 1.5 mm from the other plate.
    assert dice.tolist() == pytest.approx([1.0, 0.0])
    assert hd95.tolist() == pytest.approx([0.0, 3.0])


def test_missed_and_absent_classes() -> None:
    # Prepare: class 1 is in the reference but not predicted; class 2 is in neither.
    label = torch.zeros(1, 1, 6, 8, 10)
    label[0, 0, 1:3, 1:3, 1:3] = 1
    pred = torch.zeros_like(label)

    # Execute
    dice, hd95 = case_scores(pred, label, num_classes=3, spacing=(2.0, 1.0, 1.0))

    # Assert: a miss scores Dice 0 and the image diagonal; an absent class is undefined.
    assert dice[0] == 0.0
    assert hd95[0] == pytest.approx(math.sqrt(12**2 + 8**2 + 10**2))
    assert math.isnan(dice[1]) and math.isnan(hd95[1])


def test_summary_averages_cases_then_classes_ignoring_undefined() -> None:
    # Prepare
    dice = [np.array([0.8, np.nan]), np.array([0.6, 0.5])]
    hd95 = [np.array([2.0, np.nan]), np.array([4.0, 1.0])]

    # Execute
    metrics = summarise_scores(dice, hd95)

    # Assert
    assert metrics["dice_1"] == pytest.approx(0.7)
    assert metrics["dice_2"] == pytest.approx(0.5)
    assert metrics["dice"] == pytest.approx(0.6)
    assert metrics["hd95_1"] == pytest.approx(3.0)
    assert metrics["hd95"] == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("seg-spatial-dims", 4),
        ("seg-spatial-dims", "three"),
        ("seg-patch-size", 8),
        ("seg-patch-size", 36),  # not divisible by 8 with four levels
        ("seg-num-classes", 1),
        ("seg-channels", "16"),
        ("seg-channels", "16,x,64"),
        ("seg-res-units", 9),
        ("seg-samples-per-case", 0),
        ("seg-val-fraction", 1.0),
    ],
)
def test_bad_options_name_the_key(key: str, value: object) -> None:
    # Prepare
    options = {"task": "segmentation", key: value}

    # Execute / Assert
    with pytest.raises(ConfigError, match=f"'{key}'"):
        get_task(RunConfig.from_mapping(options))


def test_weights_round_trip_and_hold_only_learned_values() -> None:
    # Prepare
    task = _task()
    source = task.build_model()
    target = _task(seed=7).build_model()

    # Execute
    arrays = task.get_weights(source)
    task.set_weights(target, arrays)

    # Assert: no running statistics or integer buffers, values well inside SecAgg+'s range.
    assert list(source.buffers()) == []
    assert all(a.dtype == np.float32 for a in arrays)
    assert max(float(np.abs(a).max()) for a in arrays) < 8.0
    for mine, theirs in zip(arrays, task.get_weights(target), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def _write_nifti_site(root: Path, n_cases: int) -> Path:
    """A tiny imagesTr/labelsTr site: a bright two-part box in noise per case."""
    rng = np.random.default_rng(0)
    for folder in ("imagesTr", "labelsTr"):
        (root / folder).mkdir(parents=True)
    for index in range(n_cases):
        label = np.zeros((20, 20, 12), dtype=np.uint8)
        x = 4 + index % 4
        label[x : x + 5, 6:14, 3:9] = 1
        label[x + 5 : x + 9, 6:14, 3:9] = 2
        image = rng.normal(100.0, 5.0, label.shape) + 40.0 * label
        affine = np.diag([1.0, 1.0, 2.0, 1.0])
        name = f"case_{index:03d}.nii.gz"
        nib.save(nib.Nifti1Image(image.astype(np.float32), affine), root / "imagesTr" / name)
        nib.save(nib.Nifti1Image(label, affine), root / "labelsTr" / name)
    return root


@pytest.mark.parametrize("dims", [3, 2])
def test_site_round_trains_and_scores_every_validation_case(tmp_path: Path, dims: int) -> None:
    # Prepare
    task = _task(**{"seg-spatial-dims": dims, "seg-samples-per-case": 2})
    site = task.load_site(_write_nifti_site(tmp_path / "site-1", n_cases=6))
    model = task.build_model()
    before = task.get_weights(model)

    # Execute
    trained = task.train_round(model, site, _settings())
    scored = task.evaluate(model, site, _settings())

    # Assert
    assert trained.num_examples == site.num_train == 4
    assert math.isfinite(trained.metrics["train_loss"])
    after = task.get_weights(model)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    assert scored.num_examples == site.num_val == 2
    assert {"loss", "dice", "dice_1", "dice_2", "hd95", "hd95_1", "hd95_2"} <= set(scored.metrics)
    assert 0.0 <= scored.metrics["dice"] <= 1.0


def test_on_disk_cache_keeps_train_and_eval_forms_apart(tmp_path: Path) -> None:
    # Prepare
    task = _task(**{"seg-samples-per-case": 1})
    site_dir = _write_nifti_site(tmp_path / "site-1", n_cases=4)
    cache = tmp_path / "cache"

    # Execute: PersistentDataset writes on first access; a second load reads the cache.
    first = task.load_site(site_dir, cache)
    for dataset in (first.train, first.val):
        for index in range(len(dataset)):
            dataset[index]
    cached = sorted(cache.iterdir())
    site = task.load_site(site_dir, cache)
    case = site.val[0]

    # Assert: one cache file per case, and the eval form still carries the spacing.
    assert len(cached) == 4
    assert sorted(cache.iterdir()) == cached
    assert case["spacing"].tolist() == [1.0, 1.0, 2.0]
    assert task.evaluate(task.build_model(), site, _settings()).num_examples == 1


def _eval_label_map(task: SegmentationTask, model: torch.nn.Module, case: SegCase) -> np.ndarray:
    """The argmax label map that evaluation computes for `case`."""
    item = eval_transforms()({"case": case})
    with torch.no_grad():
        logits = task.infer(model.eval(), item["image"][None])
    return torch.argmax(logits[0], dim=0).numpy()


def test_predict_segments_each_dicom_series_and_measures_class_volumes(tmp_path: Path) -> None:
    # Prepare: synthetic MR series, each with a DICOM SEG that predict must ignore
    from pydicom import dcmread

    from simulations.synth.segmentation import generate_segmentation_site
    from simulations.synth.sites import site_profiles

    site = generate_segmentation_site(tmp_path / "site", site_profiles(3, scale=0.2)[2], seed=3)
    cases, _ = index_segmentation_site(site)
    task = _task()
    model = task.build_model()

    # Execute
    predictions = task.predict(model, site, _settings())

    # Assert: one prediction per series, keyed by its Series Instance UID
    by_key = {p.key: p for p in predictions}
    series_uids = {
        str(dcmread(c.image[0], stop_before_pixels=True).SeriesInstanceUID) for c in cases
    }
    assert len(predictions) == len(cases) == 4
    assert set(by_key) == series_uids
    for case in cases:
        uid = str(dcmread(case.image[0], stop_before_pixels=True).SeriesInstanceUID)
        expected = _eval_label_map(task, model, case)
        _, _, spacing = load_volume_case(case)
        voxel = spacing[0] * spacing[1] * spacing[2]
        prediction = by_key[uid]
        assert prediction.array is not None
        np.testing.assert_array_equal(prediction.array, expected)
        for k in (1, 2):
            count = int((expected == k).sum())
            assert count > 0
            assert prediction.values[f"volume_mm3_{k}"] == pytest.approx(count * voxel)


def test_predict_reads_unlabelled_nifti_images(tmp_path: Path) -> None:
    # Prepare: images only (labels removed), voxels of 1 x 1 x 2 mm
    site = _write_nifti_site(tmp_path / "site", n_cases=3)
    task = _task(**{"seg-spatial-dims": 2})
    model = task.build_model()
    cases, _ = index_segmentation_site(site)
    by_name = {case.image[0].name: case for case in cases}
    expected_maps = [_eval_label_map(task, model, by_name[n]) for n in sorted(by_name)]
    for path in (site / "labelsTr").iterdir():
        path.unlink()

    # Execute
    predictions = task.predict(model, site / "imagesTr", _settings())

    # Assert
    assert [p.key for p in predictions] == ["case_000", "case_001", "case_002"]
    for prediction, expected in zip(predictions, expected_maps, strict=True):
        assert prediction.array is not None
        np.testing.assert_array_equal(prediction.array, expected)
        assert prediction.values == {
            f"volume_mm3_{k}": pytest.approx(2.0 * int((expected == k).sum())) for k in (1, 2)
        }


def test_predict_on_a_folder_without_volumes_says_what_to_give(tmp_path: Path) -> None:
    # Execute / Assert
    with pytest.raises(DataError, match="DICOM series or NIfTI") as err:
        _task().predict(_task().build_model(), tmp_path, _settings())
    assert str(tmp_path) not in str(err.value)


@pytest.mark.parametrize("dims", [3, 2])
def test_dp_sgd_trains_the_unet_and_reports_the_sites_epsilon(tmp_path: Path, dims: int) -> None:
    # Prepare: Opacus's per-example gradients through MONAI's U-Net (PReLU, transposed conv)
    from shared.privacy import DpConfig

    options = {"seg-spatial-dims": dims, "seg-samples-per-case": 1, "dp": "dp-sgd"}
    task = _task(**options)
    site = task.load_site(_write_nifti_site(tmp_path / "site-1", n_cases=6))
    model = task.build_model()
    before = task.get_weights(model)
    dp = DpConfig.from_run(task.config)
    settings = TrainSettings(
        1, 2, 1e-2, 0, torch.device("cpu"), server_round=2, dp=dp, num_rounds=3
    )

    # Execute
    trained = task.train_round(model, site, settings)

    # Assert: trained, and epsilon = the accountant's for 2 rounds of 2 steps at rate 2/4
    after = task.get_weights(model)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    assert trained.metrics["dp_epsilon"] == pytest.approx(dp.for_site(4, 2, 1, 3).epsilon(2))
    assert [n for n, _ in model.named_parameters()] == [
        n for n, _ in task.build_model().named_parameters()
    ]
