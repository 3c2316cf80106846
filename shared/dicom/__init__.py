"""DICOM data pipeline: index a site's folder into image records and decode images."""

from shared.dicom.image import load_image
from shared.dicom.index import index_folder
from shared.dicom.reasons import SkipReason
from shared.dicom.records import ImageRecord
from shared.dicom.report import DataReport

__all__ = ["DataReport", "ImageRecord", "SkipReason", "index_folder", "load_image"]
