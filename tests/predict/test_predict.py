"""`medfleet predict` on synthetic studies: tables, Grad-CAM, DICOM SEG, Secondary Capture."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
import torch
from matplotlib.image import imread
from pydicom import dcmread

from shared.bundle import load_bundle, save_bundle
from shared.cli import main
from shared.config import RunConfig
from shared.dicom import index_folder
from shared.errors import ConfigError
from shared.predict.capture import to_uint8
from shared.predict.gradcam import class_activation_maps
from shared.tasks import get_task
from shared.tasks.base import TrainSettings
from shared.tasks.classification import ClassificationTask
from shared.volumes.seg_read import read_seg_labels
from shared.volumes.series import load_series
from simulations.synth import generate_sites

CPU = torch.device("cpu")
TINY_SEG = {"seg-channels": "4,8", "seg-patch-size": 16, "seg-res-units": 1}


def _settings(epochs: int = 1) -> TrainSettings:
    return TrainSettings(local_epochs=epochs, batch_size=16, lr=1e-3, seed=0, device=CPU)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A synthetic site and a run folder whose model trained on it for 12 epochs."""
    root = tmp_path_factory.mktemp("classification")
    site = generate_sites(root / "sites", n_sites=1, seed=1, difficulty=0.0)[0]
    task = get_task(RunConfig(seed=0))
    model = task.build_model()
    task.train_round(model, task.load_site(site), _settings(epochs=12))
    save_bundle(root / "run" / "global_model.pt", task, model, {"round": 12, "sites": ["s"]})
    return site, root / "run"


def _images_only(site: Path, target: Path) -> Path:
    """The site's DICOM files without labels, plus one corrupt file predict must skip."""
    for path in site.rglob("*.dcm"):
        copy = target / path.relative_to(site)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copy)
    (target / "broken.dcm").write_bytes(b"DICM" + b"\0" * 50)
    return target


def test_classification_predict_writes_probabilities_and_an_overlay_per_image(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    # Prepare
    site, run = trained
    images = _images_only(site, tmp_path / "study")
    out = tmp_path / "out"
    task, model = load_bundle(run).build()
    expected = {p.key: p.values["probability"] for p in task.predict(model, images, _settings())}

    # Execute
    code = main(["predict", "--model", str(run), "--input", str(images), "--out", str(out)])

    # Assert: one row per usable image keyed by SOP Instance UID, as the task scores it
    assert code == 0
    with (out / "predictions.csv").open() as handle:
        rows = {row["key"]: float(row["probability"]) for row in csv.DictReader(handle)}
    table = json.loads((out / "predictions.json").read_text())
    uids = {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in site.rglob("*.dcm")}
    assert set(rows) == set(table) == uids
    for uid, probability in expected.items():
        assert rows[uid] == pytest.approx(probability, abs=1e-6)
        assert table[uid]["probability"] == pytest.approx(probability, abs=1e-6)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["inputs"]["usable"] == len(uids) and summary["inputs"]["skipped"] == 1
    assert summary["model"]["provenance"] == {"round": 12, "sites": ["s"]}
    assert summary["model"]["inputs"]["size"] == [64, 64]
    # A Grad-CAM overlay per image, at the image's own size (128 x 128), in colour
    records, _ = index_folder(images)
    for record in records:
        overlay = imread(out / "gradcam" / f"{record.sop_instance_uid}.png")
        assert overlay.shape[:2] == (record.rows, record.columns) == (128, 128)
    assert len(list((out / "gradcam").glob("*.png"))) == len(uids)


def test_gradcam_is_higher_over_the_lesion_than_over_the_lung_around_it(
    trained: tuple[Path, Path],
) -> None:
    # Prepare: the malignant images and where their lesions are (the generator's truth)
    site, run = trained
    task, model = load_bundle(run).build()
    assert isinstance(task, ClassificationTask)
    with (site / "lesions.csv").open() as handle:
        truth = {row["sop_instance_uid"]: row for row in csv.DictReader(handle)}
    records, _ = index_folder(site)
    malignant = [r for r in records if truth[r.sop_instance_uid]["label"] == "1"]
    network = task.make_dataset(
        [{"image": str(r.path), "modality": r.modality} for r in malignant], train=False
    )

    # Execute
    ratios = []
    for index, record in enumerate(malignant):
        image = network[index]["image"][None]
        heatmap = class_activation_maps(model, image, task.gradcam_layer, 1, (128, 128))[0]
        row = truth[record.sop_instance_uid]
        spacing = float(dcmread(record.path, stop_before_pixels=True).PixelSpacing[0])
        radius = float(row["diameter_mm"]) / 2 / spacing
        yy, xx = np.mgrid[:128, :128]
        distance = np.hypot(yy - float(row["row"]), xx - float(row["col"]))
        lesion, far = heatmap[distance <= radius], heatmap[distance > 3 * radius]
        ratios.append(lesion.mean() / max(far.mean(), 1e-6))

    # Assert: the map is in [0, 1] and, for most lesions, higher on them than away from them
    assert heatmap.min() >= 0.0 and heatmap.max() <= 1.0
    assert np.median(ratios) > 1.5, np.round(ratios, 2)
    assert np.mean(np.asarray(ratios) > 1.0) > 0.6


def test_segmentation_predict_writes_a_seg_on_each_source_series(tmp_path: Path) -> None:
    # Prepare: synthetic MR series (their label SEGs are not read by predict)
    from simulations.synth.segmentation import generate_segmentation_site
    from simulations.synth.sites import site_profiles

    site = generate_segmentation_site(tmp_path / "site", site_profiles(3, scale=0.2)[2], seed=3)
    config = {"task": "segmentation", "seg-class-names": "left,right", **TINY_SEG}
    task = get_task(RunConfig.from_mapping(config))
    model = task.build_model()
    save_bundle(tmp_path / "run" / "global_model.pt", task, model)
    expected = {p.key: p for p in task.predict(model, site, _settings())}
    out = tmp_path / "out"

    # Execute
    code = main(
        ["predict", "--model", str(tmp_path / "run"), "--input", str(site), "--out", str(out)]
    )

    # Assert: per series, a SEG that references it, lies on its slices and holds the labels
    assert code == 0
    segs = sorted((out / "seg").glob("*.dcm"))
    assert {p.stem for p in segs} == set(expected) and len(segs) == 4
    records, _ = index_folder(site)
    with (out / "predictions.csv").open() as handle:
        volumes = {row["key"]: row for row in csv.DictReader(handle)}
    for path in segs:
        seg = hd.seg.segread(path)
        uid = path.stem
        slices = sorted(
            r.path for r in records if r.series_instance_uid == uid and r.modality == "MR"
        )
        series = load_series(slices)
        assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == uid
        assert str(seg.StudyInstanceUID) == str(series.headers[0].StudyInstanceUID)
        assert [s.SegmentLabel for s in seg.SegmentSequence] == ["left", "right"]
        labels = read_seg_labels(path, series)
        np.testing.assert_array_equal(labels, expected[uid].array)
        positions = {tuple(map(float, h.ImagePositionPatient)) for h in series.headers}
        frames = {
            tuple(map(float, f.PlanePositionSequence[0].ImagePositionPatient))
            for f in seg.PerFrameFunctionalGroupsSequence
        }
        assert frames <= positions  # every frame lies on a source slice
        voxel = float(np.prod(series.stack.spacing))
        for k, name in ((1, "volume_mm3_1"), (2, "volume_mm3_2")):
            count = int((labels == k).sum())
            assert float(volumes[uid][name]) == pytest.approx(count * voxel)


def test_gan_predict_writes_png_and_secondary_capture_images(tmp_path: Path) -> None:
    # Prepare
    options = {"task": "gan", "gan-image-size": 32, "gan-width": 4, "gan-latent-dim": 16}
    task = get_task(RunConfig.from_mapping({**options, "gan-samples": 6}))
    model = task.build_model()
    save_bundle(tmp_path / "model.pt", task, model)
    four = get_task(RunConfig.from_mapping({**options, "gan-samples": 4}))
    settings = TrainSettings.from_run(four.config, CPU)  # what predict uses: the run seed
    expected = [to_uint8(p.array) for p in four.predict(model, tmp_path, settings)]  # type: ignore[arg-type]
    out = tmp_path / "out"

    # Execute
    code = main(
        ["predict", "--model", str(tmp_path / "model.pt"), "--input", str(tmp_path / "none"),
         "--out", str(out), "--set", "gan-samples=4"]
    )  # fmt: skip

    # Assert: the --set count, the task's images in both forms, one synthetic series
    assert code == 0
    dicoms = [dcmread(out / "dicom" / f"sample-{i}.dcm") for i in range(4)]
    assert len(list((out / "dicom").glob("*.dcm"))) == 4
    for i, ds in enumerate(dicoms):
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
        np.testing.assert_array_equal(ds.pixel_array, expected[i])
        png = imread(out / "png" / f"sample-{i}.png")
        np.testing.assert_array_equal(np.round(png[..., 0] * 255), expected[i])
    assert len({ds.SeriesInstanceUID for ds in dicoms}) == 1
    assert {str(ds.PatientName) for ds in dicoms} == {"MedFleet^Synthetic"}


def test_predict_refuses_an_output_inside_the_input_and_a_weights_only_file(
    tmp_path: Path,
) -> None:
    # Prepare
    from shared.predict import run_predict

    task = get_task(RunConfig())
    old = tmp_path / "old.pt"
    torch.save(task.build_model().state_dict(), old)

    # Execute / Assert
    with pytest.raises(ConfigError, match="inside --input"):
        run_predict(old, tmp_path, tmp_path / "out")
    with pytest.raises(ConfigError, match="not a MedFleet model"):
        run_predict(old, tmp_path / "in", tmp_path / "out")
    with pytest.raises(ConfigError, match="global_model.pt"):
        load_bundle(tmp_path / "no-run")
