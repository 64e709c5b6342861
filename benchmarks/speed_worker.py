"""One measurement of benchmarks/speed.py, in its own process, and what it reads back from it.

Run as a script, this is the mnistlab side of a measurement: it trains one network with
``mnistlab.train`` and prints one JSON line (the epochs' seconds, accuracy, precision, memory).
The plain side is benchmarks/plain/*.py, which print the same line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)


KERAS_SCRIPT = os.path.join(HERE, "plain", "keras_tutorial.py")
TORCH_SCRIPT = os.path.join(HERE, "plain", "torch_loop.py")
PLAIN = {
    # the tutorial's code, float32, TensorFlow's oneDNN kernels set as mnistlab sets them
    "keras": KERAS_SCRIPT,
    # the same script one setting away: keras.mixed_precision.set_global_policy("mixed_bfloat16")
    "keras-bf16": KERAS_SCRIPT,
    "pytorch": TORCH_SCRIPT,
    # the same loop one setting away: torch.autocast("cpu", dtype=torch.bfloat16)
    "pytorch-bf16": TORCH_SCRIPT,
    # the MLP as a hand-written JAX loop: what a Keras row on JAX could reach without Keras
    "jax-loop": os.path.join(HERE, "plain", "jax_loop.py"),
}
# the plain rows' --precision
PLAIN_PRECISION = {
    "keras": "float32",
    "keras-bf16": "mixed_bfloat16",
    "pytorch": "float32",
    "pytorch-bf16": "mixed_bfloat16",
}
# How a process's timed epochs make its one figure: their median (the default), or the fastest
# epoch, which leaves out time a shared host's other jobs took; the median over rounds either way.
EPOCH_STATISTICS = {"median": statistics.median, "fastest": min}
# --ynn-ab's rows: whether each forces XLA's dots onto YNNPACK (config.JAX_YNN_FLAG) or not
YNN_ROWS = {"mnistlab-ynn-dot": True, "mnistlab-ynn-off": False}


def mnistlab_worker(args) -> dict:
    """Trains with mnistlab.train as `mnistlab train MODEL` does, and reads the epoch times back.

    Like the command line, which trains one network a process, it first sets TensorFlow's
    kernels up for that network (backend.use_backend with the model's name).
    """
    from mnistlab.core.backend import use_backend
    from mnistlab.models import get_spec

    use_backend(args.backend, get_spec(args.model))
    import keras

    import mnistlab
    from mnistlab.core import runs
    from mnistlab.models import flops

    (x_train, y_train), (x_test, y_test) = mnistlab.load_mnist()
    data = (
        (x_train[: args.train_images], y_train[: args.train_images]),
        (x_test[: args.val_images], y_test[: args.val_images]),
    )
    overrides = {}
    for item in args.set or []:
        key, value = item.split("=", 1)
        overrides[key] = int(value) if value.isdigit() else value
    compiled = {}

    class CompileProbe(keras.callbacks.Callback):
        """Reads what Keras really used from the model that trained (a run returns the saved,
        float32 network, which is not compiled after a bfloat16 run)."""

        def on_train_end(self, logs=None):
            # Keras silently turns XLA off when TF op determinism is on
            compiled["jit_effective"] = bool(self.model.jit_compile)
            compiled["optimizer"] = type(self.model.optimizer).__name__

    with tempfile.TemporaryDirectory() as folder:
        run = mnistlab.train(
            args.model,
            data=data,
            out=os.path.join(folder, "run"),
            backend=args.backend,
            epochs=args.epochs,
            val_size=0,  # validate on the test images each epoch, as the tutorial does
            verbose=0,
            callbacks=[CompileProbe()],
            **overrides,
        )
        history = runs.read_history(run.path)
        meta = runs.read_json(os.path.join(run.path, runs.META_FILE))
    return {
        "epoch_seconds": [float(row["seconds"]) for row in history],
        "fit_seconds": run.metrics["train_seconds_this_process"],
        "val_accuracy": float(history[-1]["val_accuracy"]),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "backend": meta["versions"]["backend"],
        "onednn": meta["versions"].get("onednn"),
        "xla_flags": meta["versions"].get("xla_flags"),
        "precision": run.config.precision,
        "compile": meta["compile"],
        "train_step": meta["train_step"],
        "jit_effective": compiled["jit_effective"],
        "optimizer": compiled["optimizer"],
        "train_flops": flops.training_flops(run.model),
        "forward_flops": flops.forward_flops(run.model),
    }


def run_timed(command: list[str], env: dict) -> tuple[subprocess.CompletedProcess, float]:
    """Runs command in the repository with env and this checkout's src/ first on PYTHONPATH;
    returns the finished process and its wall seconds, start to exit."""
    env = {
        **env,
        "PYTHONPATH": os.pathsep.join([os.path.join(REPO, "src"), env.get("PYTHONPATH", "")]),
    }
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    return done, time.perf_counter() - started


def measurement_env(impl: str, backend: str, model: str) -> dict:
    """The environment a measurement's process starts with.

    The plain Keras script on TensorFlow gets the oneDNN setting mnistlab chooses for the
    network (backend.use_backend): TensorFlow turns those kernels on by itself only on CPUs with
    neural-network instructions, so without this the comparison on an AVX2 CPU would be mostly
    that one environment variable.
    """
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if impl.startswith("keras") and backend == "tensorflow":
        from mnistlab.core.backend import wants_onednn
        from mnistlab.core.config import ONEDNN_DEFAULT, ONEDNN_ENV
        from mnistlab.models import get_spec

        chosen = ONEDNN_DEFAULT if wants_onednn(get_spec(model)) else "0"
        env[ONEDNN_ENV] = os.environ.get(ONEDNN_ENV, chosen)  # the user's own setting wins
    if impl in YNN_ROWS:  # the user's own XLA_FLAGS win over mnistlab's choice (backend.py)
        from mnistlab.core.config import JAX_YNN_DEFAULT, JAX_YNN_FLAG, XLA_FLAGS_ENV

        env[XLA_FLAGS_ENV] = f"{JAX_YNN_FLAG}={JAX_YNN_DEFAULT if YNN_ROWS[impl] else ''}"
    return env


def run_measurement(impl: str, backend: str, model: str, args, settings=()) -> dict:
    """Runs one measurement in a fresh process; returns its JSON result plus images/s and the
    process's wall seconds, start to exit (process_seconds)."""
    common = [
        "--model", model, "--epochs", str(1 + args.timed_epochs),
        "--train-images", str(args.train_images), "--val-images", str(args.val_images),
    ]  # fmt: skip
    if impl.startswith("mnistlab"):
        command = [sys.executable, os.path.abspath(__file__), "--backend", backend, *common]
        command += [part for item in settings for part in ("--set", item)]
    else:
        command = [sys.executable, PLAIN[impl], *common]
        if impl in PLAIN_PRECISION:
            command += ["--precision", PLAIN_PRECISION[impl]]
    done, wall = run_timed(command, measurement_env(impl, backend, model))
    if done.returncode != 0:
        raise RuntimeError(f"{impl}/{backend}/{model} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_seconds"] = wall
    result.setdefault("precision", PLAIN_PRECISION.get(impl, "float32"))
    timed = result["epoch_seconds"][1:]  # the first epoch is the warm-up
    # Work fit does outside the timed epochs (checkpoints, callbacks), shared over the epochs.
    overhead = max(0.0, result["fit_seconds"] - sum(result["epoch_seconds"]))
    of_process = EPOCH_STATISTICS[args.epoch_statistic]
    result["seconds_per_epoch"] = of_process(timed) + overhead / len(result["epoch_seconds"])
    result["images_per_second"] = args.train_images / result["seconds_per_epoch"]
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="One mnistlab measurement of speed.py.")
    parser.add_argument("--backend", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--epochs", type=int, required=True, help="the warm-up one included")
    parser.add_argument("--train-images", type=int, required=True)
    parser.add_argument("--val-images", type=int, required=True)
    parser.add_argument("--set", action="append", help="a TrainConfig key=value to change")
    print(json.dumps(mnistlab_worker(parser.parse_args(argv))))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(REPO, "src"))
    sys.exit(main())
