"""Tests of `index_folder`: skip reasons, counts, records, privacy of reports, memo cache."""

from __future__ import annotations

from pathlib import Path

import dicom_factory as factory
import pytest

import shared.dicom.index as index_module
from shared.dicom import DataReport, ImageRecord, SkipReason, index_folder
from shared.dicom.index import clear_index_cache
from shared.errors import DataError


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """One PACS-export-like folder shared by the tests of this module."""
    root = tmp_path_factory.mktemp("site")
    return root, factory.build_site(root)


def test_index_counts_usable_images_and_skip_reasons(site: tuple[Path, dict[str, Path]]) -> None:
    # Prepare
    root, _ = site
    clear_index_cache()

    # Execute
    records, report = index_folder(root)

    # Assert
    assert report.files == 19
    assert len(records) == 11
    assert report.usable_by_modality == {"CT": 9, "CR": 1, "OT": 1}
    assert report.series == 11
    assert report.skipped_by_reason == {
        SkipReason.NON_IMAGE.value: 1,
        SkipReason.UNSUPPORTED_PHOTOMETRIC.value: 1,
        SkipReason.UNSUPPORTED_TRANSFER_SYNTAX.value: 1,
        SkipReason.NOT_DICOM.value: 2,
        SkipReason.TRUNCATED.value: 2,
        SkipReason.DUPLICATE.value: 1,
    }


def test_index_gives_each_skipped_file_its_reason(site: tuple[Path, dict[str, Path]]) -> None:
    # Prepare
    root, paths = site
    expected = {
        "sr": SkipReason.NON_IMAGE,
        "hsv": SkipReason.UNSUPPORTED_PHOTOMETRIC,
        "mpeg": SkipReason.UNSUPPORTED_TRANSFER_SYNTAX,
        "random": SkipReason.NOT_DICOM,
        "log": SkipReason.NOT_DICOM,
        "truncated": SkipReason.TRUNCATED,
        "truncated_rle": SkipReason.TRUNCATED,
        "duplicate": SkipReason.DUPLICATE,
    }

    # Execute
    _, report = index_folder(root)

    # Assert
    reasons = {path.name: reason for path, reason in report.skipped_files}
    assert reasons == {paths[case].name: reason.value for case, reason in expected.items()}


def test_index_records_hold_geometry_and_an_opaque_patient_key(
    site: tuple[Path, dict[str, Path]],
) -> None:
    # Prepare
    root, paths = site

    # Execute
    records, _ = index_folder(root)

    # Assert
    by_name = {record.path.name: record for record in records}
    multiframe = by_name[paths["multiframe"].name]
    assert isinstance(multiframe, ImageRecord)
    assert (multiframe.rows, multiframe.columns, multiframe.frames) == (
        factory.ROWS,
        factory.COLUMNS,
        3,
    )
    assert multiframe.instance_number == 7
    assert multiframe.sop_instance_uid.startswith(factory.UID_ROOT)
    assert len({record.patient_key for record in records}) == 1
    assert factory.PATIENT_ID not in multiframe.patient_key
    assert len(multiframe.patient_key) == 16


def test_summary_and_format_hold_no_identifier(site: tuple[Path, dict[str, Path]]) -> None:
    # Prepare
    root, _ = site
    records, report = index_folder(root)
    secrets = [factory.PATIENT_NAME, factory.PATIENT_ID, factory.STUDY_DESCRIPTION, "19990101"]
    secrets += [factory.UID_ROOT, str(root), "plain", "random.bin"]

    # Execute
    texts = [str(report.summary()), report.format()]

    # Assert
    for text in texts:
        for secret in secrets:
            assert secret not in text
    assert all(isinstance(value, int) for value in report.summary().values())
    assert report.summary()["usable_CT"] == 9
    assert report.summary()["skipped_truncated"] == 2
    assert records[0].patient_key not in texts[1]


def test_verbose_format_lists_skipped_paths(site: tuple[Path, dict[str, Path]]) -> None:
    # Prepare
    root, paths = site
    _, report = index_folder(root)

    # Execute
    text = report.format(verbose=True)

    # Assert
    assert f"{paths['truncated']}: {SkipReason.TRUNCATED.value}" in text
    assert str(paths["random"]) in text


def test_index_reads_headers_once_per_unchanged_folder(
    site: tuple[Path, dict[str, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare
    root, paths = site
    clear_index_cache()
    calls: list[Path] = []
    real_read_header = index_module.read_header

    def counting_read_header(path: Path):  # noqa: ANN202 - test double
        calls.append(path)
        return real_read_header(path)

    monkeypatch.setattr(index_module, "read_header", counting_read_header)

    # Execute
    first = index_folder(root)
    reads_first = len(calls)
    second = index_folder(root)
    reads_second = len(calls) - reads_first

    # Assert
    assert reads_first == 19
    assert reads_second == 0
    assert first[0] == second[0]
    assert first[1] == second[1]


def test_index_rereads_after_a_file_is_added(tmp_path: Path) -> None:
    # Prepare
    factory.write(factory.image_dataset(factory.stored_values()), tmp_path / "a.dcm")
    _, before = index_folder(tmp_path)

    # Execute
    factory.write(factory.image_dataset(factory.stored_values()), tmp_path / "b.dcm")
    _, after = index_folder(tmp_path)

    # Assert
    assert (before.usable, after.usable) == (1, 2)


def test_cached_report_is_a_copy(tmp_path: Path) -> None:
    # Prepare
    factory.write(factory.image_dataset(factory.stored_values()), tmp_path / "a.dcm")
    _, report = index_folder(tmp_path)

    # Execute
    report.usable_by_modality["CT"] = 99
    _, again = index_folder(tmp_path)

    # Assert
    assert again.usable_by_modality == {"CT": 1}


def test_dicomdir_is_skipped_and_its_images_indexed(tmp_path: Path) -> None:
    # Prepare
    source = factory.write(factory.image_dataset(factory.stored_values()), tmp_path / "a.dcm")
    dicomdir = factory.dicomdir(source, tmp_path / "media")

    # Execute
    records, report = index_folder(tmp_path / "media")

    # Assert
    assert len(records) == 1
    assert report.skipped_files == [(dicomdir, SkipReason.DICOMDIR.value)]


def test_missing_required_attribute_is_reported(tmp_path: Path) -> None:
    # Prepare
    ds = factory.image_dataset(factory.stored_values())
    del ds.SeriesInstanceUID
    factory.write(ds, tmp_path / "no_series.dcm")

    # Execute
    records, report = index_folder(tmp_path)

    # Assert
    assert records == []
    assert report.skipped_by_reason == {SkipReason.MISSING_ATTRIBUTE.value: 1}


@pytest.mark.parametrize("keep", [0.02, 0.05, 0.15, 0.2, 0.3, 0.5, 0.9, 0.999])
def test_truncation_anywhere_is_detected(tmp_path: Path, keep: float) -> None:
    # Prepare
    source = factory.write(factory.image_dataset(factory.stored_values()), tmp_path / "src.dcm")
    (tmp_path / "site").mkdir()
    factory.truncated(source, tmp_path / "site" / "cut.dcm", keep)

    # Execute
    records, report = index_folder(tmp_path / "site")

    # Assert
    assert records == []
    # Cut inside the preamble, nothing says it was ever DICOM.
    expected = SkipReason.NOT_DICOM if keep < 0.04 else SkipReason.TRUNCATED
    assert report.skipped_by_reason == {expected.value: 1}


def test_deflated_file_is_indexed_and_its_truncation_detected(tmp_path: Path) -> None:
    # Prepare
    ds = factory.image_dataset(factory.stored_values())
    whole = factory.write_deflated(ds, tmp_path / "deflated.dcm")
    cut = factory.truncated(whole, tmp_path / "deflated_cut.dcm", keep=0.8)

    # Execute
    records, report = index_folder(tmp_path)

    # Assert
    assert [record.path for record in records] == [whole]
    assert report.skipped_files == [(cut, SkipReason.TRUNCATED.value)]


def test_empty_report_and_missing_folder(tmp_path: Path) -> None:
    # Prepare
    (tmp_path / "empty").mkdir()

    # Execute
    records, report = index_folder(tmp_path / "empty")

    # Assert
    assert records == []
    assert report == DataReport()
    with pytest.raises(DataError, match="data folder not found"):
        index_folder(tmp_path / "absent")
