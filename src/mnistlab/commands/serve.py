"""``mnistlab serve``: the draw-a-digit page and its JSON API."""

from __future__ import annotations

from mnistlab.commands.common import add_backend_argument
from mnistlab.serving.inference import RUNTIMES
from mnistlab.serving.serve import DEFAULT_HOST, DEFAULT_PORT, serve

# no "from __future__ import annotations": FastAPI reads the endpoints' annotations at runtime


def add_cli(subparsers) -> None:

    parser = subparsers.add_parser("serve", help="web page to draw digits on, and a prediction API")
    parser.add_argument(
        "--model",
        default=None,
        help="run folder, .keras or .onnx file (default: the shipped model)",
    )
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port (default: %(default)s)"
    )
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="auto",
        help="auto: ONNX Runtime when the model exports and matches Keras (faster), else Keras",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes sharing the port, one model each (default: %(default)s)",
    )
    parser.add_argument("--log-requests", action="store_true", help="print one line per request")
    parser.add_argument(
        "--plain",
        action="store_true",
        help="answer /api/predict by FastAPI's route and form parser (the lean route's reference)",
    )
    add_backend_argument(parser)
    parser.set_defaults(func=_serve_command)


def _serve_command(args) -> int:
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be between 1 and 65535, got {args.port}.")
    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}.")
    try:
        serve(
            args.model,
            args.host,
            args.port,
            args.runtime,
            args.log_requests,
            args.workers,
            args.plain,
        )
    except KeyboardInterrupt:
        pass
    return 0
