"""Prediction speed in process: one image, and batches (the server under load: serve_load.py).

Measures, for the model given (default: the shipped model; without one, an untrained cnn,
whose speed is the same as a trained one's):

1. single-image latency in process, p50 and p99 over many calls, on ONNX Runtime and on
   Keras: the network alone on a (1, 28, 28) uint8 image (preprocessing excluded), and with
   the work the server does first (preprocessing included): decoding a 28x28 PNG taken as it
   is, or fitting a 280x280 canvas drawing as MNIST was made (preprocess.to_mnist);
2. batch throughput in images per second (batches of BATCH images).

The server (``mnistlab serve``) under concurrent load is benchmarks/serve_load.py.

Usage (2 shared cores: heavy jobs must not overlap):
    /work/tools/quiet.sh python benchmarks/inference.py   # about a minute
    python benchmarks/inference.py --quick                # smoke test, ~15 s

Writes benchmarks/results/inference.md (and .json beside it, or wherever --out says).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
OUT = os.path.join(HERE, "results", "inference.md")
BATCH = 256  # images per call for batch throughput
FULL = {
    "calls": 3000,
    "keras_calls": 300,
    "slow_calls": 300,
    "batches": 40,
}
QUICK = {
    "calls": 200,
    "keras_calls": 20,
    "slow_calls": 10,
    "batches": 2,
}


# --- inputs ------------------------------------------------------------------------------


def canvas_png() -> bytes:
    """A 280x280 PNG like the page sends: a white ring (a zero) drawn on black."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (280, 280), "black")
    ImageDraw.Draw(image).ellipse((80, 45, 200, 235), outline="white", width=20)
    return png(image)


def png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_digits(count: int):
    """(count, 28, 28) uint8 MNIST test images if MNIST is at hand, else the ring, fitted."""
    import numpy as np

    from mnistlab.data.idx import DataError
    from mnistlab.data.mnist import load_mnist
    from mnistlab.data.preprocess import to_mnist

    try:
        _, (x_test, _) = load_mnist(download=False)
        return x_test[:count], "MNIST test images"
    except DataError:
        return np.repeat(to_mnist(canvas_png())[None], count, axis=0), "a drawn zero"


# --- in process ----------------------------------------------------------------------------


def percentiles(seconds: list[float]) -> dict:
    ordered = sorted(seconds)

    def at(q):
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3  # ms

    return {
        "p50_ms": at(0.50),
        "p99_ms": at(0.99),
        "mean_ms": statistics.fmean(ordered) * 1e3,
        "calls": len(ordered),
    }


def time_calls(function, calls: int, warmup: int = 5) -> dict:
    for _ in range(warmup):
        function()
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - start)
    return percentiles(seconds)


def in_process(spec: str, counts: dict) -> dict:
    """Latency and batch throughput of both runtimes, on the model loaded once."""
    from PIL import Image

    from mnistlab.models.saved import load_model
    from mnistlab.serving.inference import KerasPredictor, OnnxPredictor
    from mnistlab.serving.onnx_graph import keras_to_onnx
    from mnistlab.serving.serve import predict_image

    model = load_model(spec)
    onnx_bytes = keras_to_onnx(model).SerializeToString()
    predictors = {
        "onnx": OnnxPredictor(onnx_bytes, name=model.name),
        "keras": KerasPredictor(model),
    }
    digits, source = test_digits(max(BATCH, 1000))
    one, batch = digits[:1], digits[:BATCH]
    small_png, drawing = png(Image.fromarray(digits[0])), canvas_png()
    results = {"digits": source, "model": model.name}
    for runtime, predictor in predictors.items():
        calls = counts["calls"] if runtime == "onnx" else counts["keras_calls"]
        batches = counts["batches"] if runtime == "onnx" else max(1, counts["batches"] // 4)
        results[runtime] = {  # the server's own handler code: decode, preprocess, predict
            "network only": time_calls(lambda p=predictor: p.predict(one), calls),
            "28x28 PNG as is": time_calls(
                lambda p=predictor: predict_image(p, small_png, preprocess=False), calls
            ),
            "280x280 drawing, fitted": time_calls(
                lambda p=predictor: predict_image(p, drawing), counts["slow_calls"], warmup=2
            ),
        }
        timing = time_calls(lambda p=predictor: p.predict(batch), batches, warmup=2)
        results[runtime]["batch images per second"] = BATCH / (timing["mean_ms"] / 1e3)
    wide = OnnxPredictor(onnx_bytes, threads=os.cpu_count())  # the same batches on every core
    timing = time_calls(lambda: wide.predict(batch), counts["batches"], warmup=2)
    results["onnx"]["batch images per second, all cores"] = BATCH / (timing["mean_ms"] / 1e3)
    return results


# --- report --------------------------------------------------------------------------------


def markdown(report: dict) -> str:
    local = report["in_process"]
    lines = [
        "# Prediction speed",
        "",
        f"Model: {report['model']}. Machine: {report['machine']}, load average {report['load']} "
        f"at the start. Measured by `{report['command']}` on {report['date']}; ONNX Runtime "
        f"{report['versions']['onnxruntime']} (1 thread per call), Keras {report['versions']['keras']} "
        f"on TensorFlow {report['versions']['tensorflow']}. Images: {local['digits']}.",
        "",
        "## One image, in process (milliseconds per image)",
        "",
        "| work | ONNX Runtime p50 | p99 | Keras p50 | p99 |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row, label in (
        ("network only", "network only, 28x28 array (preprocessing excluded)"),
        (
            "28x28 PNG as is",
            "the server's work for a 28x28 PNG taken as is: decode + network + answer",
        ),
        ("280x280 drawing, fitted", "... for a 280x280 canvas PNG fitted like MNIST (to_mnist)"),
    ):
        onnx, keras = local["onnx"][row], local["keras"][row]
        lines.append(
            f"| {label} | {onnx['p50_ms']:.3f} | {onnx['p99_ms']:.3f} | {keras['p50_ms']:.3f} | {keras['p99_ms']:.3f} |"
        )
    lines += [
        "",
        f"## Batches of {BATCH}, in process (images per second)",
        "",
        "| runtime | images per second |",
        "| --- | ---: |",
        f"| ONNX Runtime, 1 thread | {local['onnx']['batch images per second']:,.0f} |",
        f"| ONNX Runtime, {os.cpu_count()} threads | {local['onnx']['batch images per second, all cores']:,.0f} |",
        f"| Keras (predict_on_batch) | {local['keras']['batch images per second']:,.0f} |",
        "",
        "The server under load: `benchmarks/serve_load.py` (results/serve_load.md).",
    ]
    lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model",
        default=None,
        help="run folder or .keras file (default: shipped, else untrained cnn)",
    )
    parser.add_argument(
        "--architecture",
        default="cnn",
        help="registry model timed untrained when there is no --model and no shipped model",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a few calls of each kind: a smoke test"
    )
    parser.add_argument("--out", default=OUT, help="Markdown file to write (JSON beside it)")
    args = parser.parse_args(argv)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, os.path.join(REPO, "src"))
    from mnistlab.core import runs
    from mnistlab.models.saved import PRETRAINED_MODEL

    counts = dict(QUICK if args.quick else FULL)
    with tempfile.TemporaryDirectory() as scratch:
        spec, description = args.model, args.model
        if spec is None and os.path.exists(PRETRAINED_MODEL):
            spec, description = PRETRAINED_MODEL, "the shipped model"
        if spec is None:  # speed does not depend on the weights
            from mnistlab.models.registry import create_model

            spec = os.path.join(scratch, f"{args.architecture}.keras")
            create_model(args.architecture).save(spec)
            description = "untrained (no shipped model installed; the speed is the same)"
        load = os.getloadavg()[0]
        local = in_process(spec, counts)
        description = f"{local['model']}, {description}"
        print(json.dumps(local, indent=1), flush=True)
    import keras
    import onnxruntime
    import tensorflow

    report = {
        "model": description,
        "machine": runs.machine_description() + f", {platform.system()}",
        "load": f"{load:.1f}",
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join(
            ["python benchmarks/inference.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "versions": {
            "onnxruntime": onnxruntime.__version__,
            "keras": keras.__version__,
            "tensorflow": tensorflow.__version__,
        },
        "in_process": local,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as handle:
        handle.write(markdown(report))
    with open(os.path.splitext(args.out)[0] + ".json", "w") as handle:
        json.dump(report, handle, indent=2)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
