"""``mnistlab predict``: classify image files, or MNIST test images by ``test:INDEX``."""

from __future__ import annotations

import os

from mnistlab.commands.common import add_backend_argument
from mnistlab.serving.predict import (
    SHOW_INPUT_SCALE,
    format_result,
    input_picture_names,
    predict,
    save_input,
)

BAD_INPUT_STATUS = 2  # exit status when some images could not be classified (bad input)


# --- CLI ---------------------------------------------------------------------------------


def add_cli(subparsers) -> None:

    parser = subparsers.add_parser(
        "predict", help="classify your own digit images (photos, scans, drawings)"
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files, or test:INDEX")
    parser.add_argument(
        "--model", default=None, help="run folder or .keras file (default: the shipped model)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--no-preprocess",
        dest="preprocess",
        action="store_false",
        help="feed 28x28 images as they are (light digit on black), without fitting them",
    )
    parser.add_argument(
        "--show-input",
        metavar="DIR",
        default=None,
        help=f"save the 28x28 image the network saw, {SHOW_INPUT_SCALE}x enlarged, per input",
    )
    parser.add_argument("--data", help="MNIST folder or mnist.npz, for test:INDEX images")
    parser.add_argument(
        "--tta",
        action="store_true",
        help="test-time augmentation: average each image with its 4 one-pixel shifts",
    )
    add_backend_argument(parser)
    parser.set_defaults(func=_predict_command)


def _predict_command(args) -> int:
    import json
    import sys

    results = predict(
        args.images, model=args.model, preprocess=args.preprocess, data=args.data, tta=args.tta
    )
    if args.show_input:
        os.makedirs(args.show_input, exist_ok=True)
        names = input_picture_names([result["source"] for result in results])
        for result, name in zip(results, names, strict=True):
            if result["input"] is not None:
                result["input_picture"] = save_input(
                    result["input"], os.path.join(args.show_input, name)
                )
    for result in results:
        if result["error"] is not None:
            print(f"mnistlab predict: error: {result['error']}", file=sys.stderr)
    if args.json:
        public = [{k: v for k, v in result.items() if k != "input"} for result in results]
        print(json.dumps(public, indent=2))
    else:
        for result in results:
            if result["error"] is None:
                print(format_result(result))
    failed = sum(result["error"] is not None for result in results)
    if failed:
        if len(results) > 1:  # one image: its own line says it all
            print(
                f"mnistlab predict: error: {failed} of {len(results)} images could not be "
                "classified.",
                file=sys.stderr,
            )
        return BAD_INPUT_STATUS
    return 0
