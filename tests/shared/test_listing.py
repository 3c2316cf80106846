"""Stat-based listings and signatures used as cache keys."""

import hashlib
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


def _walked(root: Path, skip_suffixes: tuple[str, ...] = ()) -> list[tuple[Path, int, int]]:
    """The listing `list_files` must give, built independently with `os.walk`."""
    listing = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [name for name in dirs if not name.startswith(".")]
        for name in files:
            path = Path(folder, name)
            if not name.startswith(".") and path.suffix.lower() not in skip_suffixes:
                stat = path.stat()
                listing.append((path, stat.st_size, stat.st_mtime_ns))
    return sorted(listing)


def _hashed(root: Path, listing: list[tuple[Path, int, int]]) -> str:
    digest = hashlib.sha256()
    for path, size, mtime in listing:
        digest.update(f"{path.relative_to(root)}\0{size}\0{mtime}\n".encode())
    return digest.hexdigest()


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

    # Assert: the same as an os.walk over the folder (links to folders not followed)
    walked = _walked(tmp_path)
    assert list_files(tmp_path) == walked
    assert list_files(tmp_path, (".dcm",)) == _walked(tmp_path, (".dcm",))
    assert (
        signature == listing_signature(tmp_path, list_files(tmp_path)) == _hashed(tmp_path, walked)
    )
    os.utime(tmp_path / "a" / "b" / "1.dcm", ns=(7, 7))
    assert folder_signature(tmp_path) != signature
    assert folder_signature(tmp_path) == _hashed(tmp_path, _walked(tmp_path))
