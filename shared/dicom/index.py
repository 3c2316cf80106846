"""Index a site's data folder: every usable image record plus a report of skipped files."""

from __future__ import annotations

import copy
import logging
from collections import OrderedDict
from pathlib import Path

from shared.data.listing import Listing, list_files, listing_signature
from shared.dicom.header import HeaderError, read_header, transfer_syntax
from shared.dicom.image import load_image
from shared.dicom.quiet import quiet_pydicom
from shared.dicom.reasons import SkipReason
from shared.dicom.records import ImageRecord
from shared.dicom.report import DataReport
from shared.dicom.validate import classify
from shared.errors import DataError
from shared.progress import track

__all__ = ["SIDECAR_SUFFIXES", "clear_index_cache", "index_folder"]

logger = logging.getLogger(__name__)

# Label manifests and notes that live next to the images; ignored without a report line.
SIDECAR_SUFFIXES = frozenset({".csv", ".json", ".md", ".txt"})
_CACHE_SIZE = 8
_cache: OrderedDict[tuple[str, str], tuple[list[ImageRecord], DataReport]] = OrderedDict()


def index_folder(root: Path) -> tuple[list[ImageRecord], DataReport]:
    """Read the header of every file under `root` and keep the usable images.

    Results are memoised in-process by folder and by a signature of its listing (paths,
    sizes, modification times), so a second call on an unchanged folder reads no header.

    Parameters
    ----------
    root : Path
        The site's data folder, walked recursively; hidden folders and files are skipped.

    Returns
    -------
    records : list[ImageRecord]
        Usable images, sorted by path.
    report : DataReport
        Counts by modality and by skip reason, plus the site-local skipped file list.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise DataError("data folder not found: set the site's data-dir to an existing folder")
    listing = list_files(root, SIDECAR_SUFFIXES)
    key = (str(root), listing_signature(root, listing))
    if key in _cache:
        _cache.move_to_end(key)
        records, report = _cache[key]
    else:
        records, report = _index(listing)
        _cache[key] = (records, report)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return list(records), copy.deepcopy(report)


def clear_index_cache() -> None:
    """Forget every memoised index (tests, or after files change within one mtime tick)."""
    _cache.clear()


def _index(listing: Listing) -> tuple[list[ImageRecord], DataReport]:
    """Classify every listed file; the first file of a duplicated instance wins."""
    records: list[ImageRecord] = []
    report = DataReport(files=len(listing))
    seen: set[str] = set()
    with quiet_pydicom():
        paths = track([path for path, _, _ in listing], "indexing DICOM files")
        outcomes = [(path, _classify_file(path)) for path in paths]
    for path, outcome in outcomes:
        if isinstance(outcome, ImageRecord) and outcome.sop_instance_uid in seen:
            outcome = SkipReason.DUPLICATE
        if isinstance(outcome, ImageRecord):
            seen.add(outcome.sop_instance_uid)
            records.append(outcome)
            modality = outcome.modality
            report.usable_by_modality[modality] = report.usable_by_modality.get(modality, 0) + 1
        else:
            report.add_skip(path, outcome.value)
    report.series = len({record.series_instance_uid for record in records})
    logger.debug(
        "indexed %d files: %d usable, %d skipped", report.files, len(records), report.skipped
    )
    return records, report


def _classify_file(path: Path) -> ImageRecord | SkipReason:
    """Read one file's header and classify it; never raises for a bad file.

    Compressed images are also decoded once (the frame the loader reads by default): a
    broken codestream shows only then, and must not stop training later.
    """
    try:
        header = read_header(path)
        outcome = classify(path, header)
        if isinstance(outcome, ImageRecord) and transfer_syntax(header.dataset).is_encapsulated:
            load_image(path)
        return outcome
    except DataError:
        return SkipReason.UNDECODABLE
    except HeaderError as err:
        return err.reason
    except OSError:
        return SkipReason.UNREADABLE
    except Exception:  # noqa: BLE001 - any parser failure on a damaged file is a skip
        logger.debug("unexpected failure while reading a DICOM header", exc_info=True)
        return SkipReason.TRUNCATED
