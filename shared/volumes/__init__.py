"""Segmentation data: index, load and write 3D volumes (DICOM series + SEG, NIfTI pairs)."""

from typing import TYPE_CHECKING

from shared.lazy import lazy_exports

if TYPE_CHECKING:
    from shared.volumes.case import SegCase
    from shared.volumes.convert import convert_nifti_sites
    from shared.volumes.index import index_segmentation_site
    from shared.volumes.load import load_volume_case
    from shared.volumes.mr_series import MrAcquisition, write_mr_series
    from shared.volumes.seg_write import write_seg
    from shared.volumes.transforms import LoadSegCased

__all__ = [
    "LoadSegCased",
    "MrAcquisition",
    "SegCase",
    "convert_nifti_sites",
    "index_segmentation_site",
    "load_volume_case",
    "write_mr_series",
    "write_seg",
]
__getattr__ = lazy_exports(
    __name__,
    {
        "SegCase": "shared.volumes.case",
        "convert_nifti_sites": "shared.volumes.convert",
        "index_segmentation_site": "shared.volumes.index",
        "load_volume_case": "shared.volumes.load",
        "MrAcquisition": "shared.volumes.mr_series",
        "write_mr_series": "shared.volumes.mr_series",
        "write_seg": "shared.volumes.seg_write",
        "LoadSegCased": "shared.volumes.transforms",
    },
)
