"""Stat-based listings and signatures used as cache keys."""

import os
from pathlib import Path

from shared.data.listing import file_signature, folder_signature, list_files, listing_signature


def test_signature_changes_on_add_rename_and_touch_but_skips_hidden_and_sidecars(
    tmp_path: Path,
) -> None:
    # Prepare
    (tmp_path / "a.dcm").write_bytes(b"12345")
    (tmp_path / "labels.csv").write_text("x")
    (tmp_path / ".hidden").write_text("x")
    before = listing_signature(tmp_path, list_files(tmp_path))

    # Execute / Assert
    assert [p.name for p, _, _ in list_files(tmp_path, {".csv"})] == ["a.dcm"]
    assert [p.name for p, _, _ in list_files(tmp_path)] == ["a.dcm", "labels.csv"]
    (tmp_path / "a.dcm").rename(tmp_path / "b.dcm")
    renamed = listing_signature(tmp_path, list_files(tmp_path))
    assert renamed != before
    os.utime(tmp_path / "b.dcm", ns=(1, 1))
    assert listing_signature(tmp_path, list_files(tmp_path)) != renamed


def test_file_signature_totals_size_and_takes_the_newest_mtime(tmp_path: Path) -> None:
    # Prepare
    first, second = tmp_path / "1", tmp_path / "2"
    first.write_bytes(b"abc")
    second.write_bytes(b"de")
    os.utime(first, ns=(5, 5))
    os.utime(second, ns=(9, 9))

    # Execute / Assert
    assert file_signature(first) == "3:5"
    assert file_signature(first, second) == "5:9"


def test_folder_signature_equals_the_listing_signature_of_a_nested_folder(
    tmp_path: Path,
) -> None:
    # Prepare: names that sort differently as strings and as paths ("a-b" < "a/b" < "a0")
    for name in ("a/b/1.dcm", "a-b/2.dcm", "a0", "z/.hidden", ".cache/x.dcm", "a/3.dcm"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x" * len(name))
    (tmp_path / "linked").symlink_to(tmp_path / "a", target_is_directory=True)

    # Execute
    signature = folder_signature(tmp_path)

    # Assert
    assert signature == listing_signature(tmp_path, list_files(tmp_path))
    os.utime(tmp_path / "a" / "b" / "1.dcm", ns=(7, 7))
    assert folder_signature(tmp_path) != signature
    assert folder_signature(tmp_path) == listing_signature(tmp_path, list_files(tmp_path))
