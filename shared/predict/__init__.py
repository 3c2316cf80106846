"""Apply a trained model to new DICOM: tables, Grad-CAM overlays, DICOM SEG and captures."""

from typing import TYPE_CHECKING

from shared.lazy import lazy_exports

if TYPE_CHECKING:
    from shared.predict.run import PredictSummary, run_predict

__all__ = ["PredictSummary", "run_predict"]
__getattr__ = lazy_exports(
    __name__, {"PredictSummary": "shared.predict.run", "run_predict": "shared.predict.run"}
)
