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
    predict.add_argument(
        "--store",
        default=None,
        metavar="PACS_NAME",
        help="send the DICOM SEG, SR or Secondary Capture written to this PACS of the site's "
        "PACS file (C-STORE or STOW-RS), into the source study",
    )
    predict.add_argument(
        "--pacs-config",
        type=Path,
        default=Path("~/.medfleet/site/pacs.toml"),
        help="the site's PACS file (with --store)",
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
    if args.store:
        return _store(args, [Path(p) for paths in summary.files.values() for p in paths])
    return 0


def _store(args: argparse.Namespace, paths: list[Path]) -> int:
    """Send predict's DICOM outputs to the PACS named by --store; 0 when all were stored."""
    # The PACS code runs at sites only (client/); predict itself needs none of it.
    from client.pacs import load_pacs_settings, store_results

    config = load_pacs_settings(args.pacs_config).get(args.store)
    stored = store_results(paths, config)
    print(
        f"  stored   {stored.stored} of {len(stored.results)} DICOM object(s) in PACS "
        f"'{config.name}' ({stored.seconds:.2f} s)"
    )
    for result in stored.results:
        if not result.ok:
            print(f"  refused  {result.path} (status 0x{result.status:04X})")
    return 0 if stored.stored == len(stored.results) else 1


def _export(args: argparse.Namespace) -> int:
    from shared.predict.export import export_model

    result = export_model(args.model, args.out, args.format)
    print(
        f"MedFleet export: {result.path} ({result.format}); largest output difference "
        f"against PyTorch {result.max_abs_diff:.2e} on inputs of shape {result.input_shape}"
    )
    return 0
