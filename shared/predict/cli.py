"""The `medfleet predict` and `medfleet export` commands."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``predict`` and ``export``."""
    predict = subparsers.add_parser(
        "predict",
        help="apply a trained model to new DICOM images",
        description="Apply the final global model of a run (or a model file) to every "
        "usable image under --input. Classification writes predictions.csv/.json (the "
        "probability per SOP Instance UID) and a Grad-CAM overlay per image; segmentation "
        "a DICOM SEG per series and the volume of each structure in mm3; the GAN PNG and "
        "DICOM Secondary Capture images. Unusable files are skipped and counted.",
    )
    predict.add_argument("--model", type=Path, required=True, help="run folder or model file")
    predict.add_argument("--input", type=Path, required=True, help="folder of DICOM (or NIfTI)")
    predict.add_argument("--out", type=Path, required=True, help="output folder")
    predict.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    predict.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="replace a run-config key of the model file (batch-size, seed, gan-samples)",
    )
    predict.set_defaults(func=_predict)

    export = subparsers.add_parser(
        "export",
        help="export a trained model as TorchScript or ONNX",
        description="Write the run's global model as TorchScript (default) or ONNX, then "
        "check that the exported model's outputs equal PyTorch's on a test input.",
    )
    export.add_argument("--model", type=Path, required=True, help="run folder or model file")
    export.add_argument("--out", type=Path, required=True, help="file to write")
    export.add_argument("--format", choices=("torchscript", "onnx"), default="torchscript")
    export.set_defaults(func=_export)


def _predict(args: argparse.Namespace) -> int:
    from shared.config import parse_overrides
    from shared.predict.run import SUMMARY_FILE, run_predict

    summary = run_predict(
        args.model, args.input, args.out, args.device, parse_overrides(args.overrides)
    )
    inputs = ", ".join(f"{k} {v}" for k, v in summary.inputs.items())
    print(f"MedFleet predict ({summary.task}): {summary.predictions} predictions ({inputs})")
    for kind, paths in summary.files.items():
        if paths:
            print(f"  {kind:<8} {len(paths):>5} file(s)  e.g. {paths[0]}")
    print(f"  summary  {summary.out_dir / SUMMARY_FILE}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from shared.predict.export import export_model

    result = export_model(args.model, args.out, args.format)
    print(
        f"MedFleet export: {result.path} ({result.format}); largest output difference "
        f"against PyTorch {result.max_abs_diff:.2e} on inputs of shape {result.input_shape}"
    )
    return 0
