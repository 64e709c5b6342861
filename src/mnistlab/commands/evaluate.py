"""``mnistlab evaluate``: a model's test error, per-digit accuracy, confusion matrix and pictures."""

from __future__ import annotations

from mnistlab.commands.common import add_backend_argument
from mnistlab.inspect.evaluate import evaluate, format_report
from mnistlab.models.saved import load_model


def add_cli(subparsers) -> None:

    parser = subparsers.add_parser(
        "evaluate", help="error rate, per-digit accuracy and confusion matrix on the test set"
    )
    parser.add_argument(
        "model",
        nargs="?",
        default=None,
        help="run folder or .keras file (default: the shipped model)",
    )
    parser.add_argument(
        "--data", help="MNIST folder or mnist.npz (default: $MNISTLAB_DATA, caches)"
    )
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.add_argument(
        "--tta",
        action="store_true",
        help="test-time augmentation: average each image with its 4 one-pixel shifts (5x slower)",
    )
    parser.add_argument(
        "--plots",
        metavar="DIR",
        help="also save reliability.png, confusion.png and misclassified.png (worst first) in DIR",
    )
    add_backend_argument(parser)
    parser.set_defaults(func=_evaluate_command)


def _evaluate_command(args) -> int:
    import json

    metrics = evaluate(args.model, args.data, tta=args.tta)
    if args.json:
        print(json.dumps({k: v for k, v in metrics.items() if k != "predicted"}, indent=2))
    else:
        print(format_report(metrics))
    if args.plots:
        import sys

        from mnistlab.data.mnist import load_mnist
        from mnistlab.inspect.pictures import evaluation_plots

        _, (x_test, y_test) = load_mnist(args.data)
        pictures = evaluation_plots(
            load_model(args.model), x_test, y_test, metrics, args.plots, tta=args.tta
        )
        for picture in pictures:
            print(f"Saved {picture.path}", file=sys.stderr if args.json else sys.stdout)
    return 0
