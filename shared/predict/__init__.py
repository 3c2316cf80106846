"""Apply a trained model to new DICOM: tables, Grad-CAM overlays, DICOM SEG and captures."""

from shared.predict.run import PredictSummary, run_predict

__all__ = ["PredictSummary", "run_predict"]
