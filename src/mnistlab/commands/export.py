"""``mnistlab export``: write a run's model as ONNX."""

from __future__ import annotations

import os

from mnistlab.commands.common import add_backend_argument
from mnistlab.models.saved import resolve_model_path
from mnistlab.serving.export import FORMATS, export_onnx
from mnistlab.serving.onnx_graph import OPSET


def add_cli(subparsers) -> None:

    parser = subparsers.add_parser(
        "export", help="write a trained model as ONNX (for ONNX Runtime), checked against Keras"
    )
    parser.add_argument(
        "model", nargs="?", default=None, help="run folder or .keras file (default: shipped)"
    )
    parser.add_argument("--format", choices=FORMATS, default="onnx", help="file format")
    parser.add_argument(
        "--out",
        default=None,
        help="file to write (default: model.onnx beside the run's model; ./model.onnx for the "
        "shipped one)",
    )
    parser.add_argument(
        "--check",
        choices=("auto", "synthetic", "none"),
        default="auto",
        help="compare with Keras on the MNIST test set if found locally, else on synthetic "
        "images (auto); on synthetic images only; or not at all",
    )
    add_backend_argument(parser)
    parser.set_defaults(func=_export_command)


def _export_command(args) -> int:

    source = resolve_model_path(args.model)  # fails early on a wrong model name
    default = "model.onnx" if args.model is None else os.path.splitext(source)[0] + ".onnx"
    out = args.out or default
    report = export_onnx(args.model, out, check=None if args.check == "none" else args.check)
    print(f"Wrote {report['path']} ({report['bytes'] / 1e6:.2f} MB, ONNX opset {OPSET}).")
    if "images" in report:
        print(
            f"Checked against Keras on the {report['check_data']}: "
            f"{report['argmax_agree']}/{report['images']} predictions equal, largest "
            f"probability difference {report['max_difference']:.1e}."
        )
    return 0
