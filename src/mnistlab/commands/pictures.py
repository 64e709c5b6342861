"""``mnistlab samples``, ``filters``, ``responses``, ``maximize`` and ``curves``: one picture each."""

from __future__ import annotations

import os
import sys

from mnistlab.commands.common import add_backend_argument
from mnistlab.data.inputs import load_input
from mnistlab.data.mnist import load_mnist
from mnistlab.inspect.network import (
    MAXIMIZE_STEPS,
    maximize_filters,
    plot_filters,
    plot_maximized,
    plot_responses,
)
from mnistlab.inspect.pictures import Picture, plot_curves, plot_samples
from mnistlab.models.saved import load_model

# --- CLI ---------------------------------------------------------------------------------


def has_display() -> bool:
    """Whether a window can be opened (macOS, Windows, or an X11/Wayland display)."""
    return sys.platform in ("darwin", "win32") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )


def show(path: str) -> None:
    """Opens a saved PNG in a window, where a display exists."""
    if not has_display():
        print(f"No display here; open {path} to see the picture.")
        return
    import matplotlib.pyplot as pyplot

    pyplot.figure(figsize=(10, 8)).figimage(pyplot.imread(path))
    pyplot.show()


def add_cli(subparsers) -> None:

    def picture_parser(name: str, help_text: str, default_out: str, model: str | None):
        parser = subparsers.add_parser(name, help=help_text)
        if model:
            parser.add_argument("model", metavar=model, help="run folder or .keras file")
        parser.add_argument("--out", default=default_out, help=f"PNG to write ({default_out})")
        parser.add_argument("--show", action="store_true", help="also open it, if a display exists")
        if model:
            add_backend_argument(parser)
        return parser

    parser = picture_parser("samples", "picture of the first training images", "samples.png", None)
    parser.add_argument("--count", type=int, default=16, help="images to show (16)")
    parser.add_argument("--data", help="MNIST folder or mnist.npz (default: $MNISTLAB_DATA)")
    parser.set_defaults(func=_samples_command)

    parser = picture_parser(
        "filters", "picture of the first convolution's kernels", "filters.png", "RUN_OR_MODEL"
    )
    parser.set_defaults(func=_filters_command)

    parser = picture_parser(
        "responses", "feature maps of a layer for one image", "responses.png", "RUN_OR_MODEL"
    )
    parser.add_argument("image", metavar="IMAGE", help="image file, or test:INDEX (MNIST test)")
    parser.add_argument(
        "--layer",
        help="layer name or index, as 'mnistlab models NAME' numbers them (0 is the input "
        "layer; default: the first convolution)",
    )
    parser.add_argument(
        "--no-preprocess",
        dest="preprocess",
        action="store_false",
        help="feed a 28x28 image as it is",
    )
    parser.add_argument("--data", help="MNIST folder or mnist.npz, for test:INDEX")
    parser.set_defaults(func=_responses_command)

    parser = picture_parser(
        "maximize",
        "inputs that excite each filter of a layer most",
        "maximize.png",
        "RUN_OR_MODEL",
    )
    parser.add_argument("--layer", help="convolution layer name or index (default: the first)")
    parser.add_argument(
        "--steps", type=int, default=MAXIMIZE_STEPS, help=f"ascent steps ({MAXIMIZE_STEPS})"
    )
    parser.add_argument(
        "--step-size",
        type=float,
        default=0.02,
        help="change per step, input units (0-1) per pixel, root-mean-square (0.02)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the start noise (0)")
    parser.set_defaults(func=_maximize_command)

    parser = picture_parser("curves", "loss and accuracy per epoch of a run", "curves.png", None)
    parser.add_argument("run", metavar="RUN", help="run folder (reads its history.csv)")
    parser.set_defaults(func=_curves_command)


def _finish(picture: Picture, args) -> int:
    print(f"Saved {picture.path} ({picture.panels} panels)")
    if args.show:
        show(picture.path)
    return 0


def _samples_command(args) -> int:

    (x_train, y_train), _ = load_mnist(args.data)
    return _finish(plot_samples(x_train, y_train, args.out, args.count), args)


def _filters_command(args) -> int:

    return _finish(plot_filters(load_model(args.model), args.out), args)


def _responses_command(args) -> int:

    image = load_input(args.image, args.preprocess, args.data)
    model = load_model(args.model)
    return _finish(plot_responses(model, image, args.layer, args.out), args)


def _maximize_command(args) -> int:

    model = load_model(args.model)
    result = maximize_filters(model, args.layer, args.steps, args.step_size, args.seed)
    gained = sum(result.scores > result.start_scores)
    print(
        f"Layer '{result.layer}': {gained} of {len(result.filters)} filters respond more "
        f"after {args.steps} steps (mean response {result.start_scores.mean():.3f} -> "
        f"{result.scores.mean():.3f})."
    )
    return _finish(plot_maximized(result, args.out), args)


def _curves_command(args) -> int:
    return _finish(plot_curves(args.run, args.out), args)
