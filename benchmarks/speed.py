"""Training speed: mnistlab against the scripts people use now, and against the machine's limit.

For each of the tutorial's networks, on every installed backend, in one run, interleaved
(round r of every measurement before round r+1 of any), each measurement in its own process:

- mnistlab: ``mnistlab.train`` with the settings users get (FAST_SETTINGS, and precision auto:
  mixed bfloat16 for the tutorial's CNNs on a CPU with bfloat16 instructions, else float32);
  --float32 and --bf16 add rows that force either precision, --keras-adam one with Keras's own
  Adam instead of the fused one (mnistlab.fast.optimizers), --keras-step on PyTorch and JAX one with
  Keras's own training step instead of mnistlab's (the lean one of mnistlab.fast.torch_step, the
  scanned one of mnistlab.fast.jax_step), --ynn-ab on JAX one with
  XLA's matrix products on YNNPACK or not, the other way from mnistlab's choice for the network;
- plain Keras: benchmarks/plain/keras_tutorial.py (``model.fit`` on numpy, batch 200), same
  backend, Keras's default compile settings;
- plain PyTorch: benchmarks/plain/torch_loop.py (pytorch/examples style, data in memory);
- with --jax-loop, for the MLP: benchmarks/plain/jax_loop.py, the same math as a hand-written
  JAX loop (data on the device, 20 steps a compiled call), what JAX reaches without Keras.

Every process trains a warm-up epoch (tracing, compiling, thread start) and then timed epochs
of --train-images images, each followed by validation on --val-images test images, as the
tutorial does (60,000 : 10,000). Images per second = train images / epoch seconds, median over
rounds. GFLOP/s counts the multiply-adds analytically (mnistlab.models.flops: training and the
validation forward passes) against the float32 matrix-multiply GFLOP/s numpy reaches in the same
run (best of the measurements taken between rounds). Peak memory is the process's max RSS.

Usage:
    flock /tmp/mnistlab-heavy.lock python benchmarks/speed.py     # 84 processes: not yet timed
    python benchmarks/speed.py --tiny                                      # smoke test, ~20 s
    python benchmarks/speed.py --sweep                                     # compile settings

Writes benchmarks/results/speed.md, speed.json and a chart of them, speed.png (or
settings.md/json with --sweep); ``--replot FOLDER`` draws a folder's chart again from its JSON.
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
MODELS = ("mlp", "cnn", "larger_cnn", "branch_cnn")
ONEDNN_MARK = {True: "on", False: "off", None: "-"}  # TensorFlow's oneDNN kernels in that process
BACKENDS = ("tensorflow", "jax", "torch")
PLAIN = {
    "keras": os.path.join(HERE, "plain", "keras_tutorial.py"),
    # the same script with TensorFlow's oneDNN kernels turned on, as mnistlab does by default:
    # shows how much of mnistlab's lead is that one setting
    "keras-onednn": os.path.join(HERE, "plain", "keras_tutorial.py"),
    "pytorch": os.path.join(HERE, "plain", "torch_loop.py"),
    # the MLP as a hand-written JAX loop: what a Keras row on JAX could reach without Keras
    "jax-loop": os.path.join(HERE, "plain", "jax_loop.py"),
}
# How a process's timed epochs make its one figure. "fastest": on a shared host whose
# interference only adds time (this one has spells that make an epoch up to 2x as long), the
# fastest epoch is the process's own speed, as numpy's rate is the best of the run; the median
# over rounds is taken either way.
EPOCH_STATISTICS = {"median": statistics.median, "fastest": min}
# --ynn-ab's rows: whether each forces XLA's dots onto YNNPACK (config.JAX_YNN_FLAG) or not
YNN_ROWS = {"mnistlab-ynn-dot": True, "mnistlab-ynn-off": False}


# --- one measurement, in its own process ---------------------------------------------------


def mnistlab_worker(args) -> dict:
    """Trains with mnistlab.train as `mnistlab train MODEL` does, and reads the epoch times back.

    Like the command line, which trains one network a process, it first sets TensorFlow's
    kernels up for that network (backend.use_backend with the model's name).
    """
    from mnistlab.core.backend import use_backend
    from mnistlab.models import get_spec

    use_backend(args.backend, get_spec(args.model))
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
    import keras

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


def run_measurement(impl: str, backend: str, model: str, args, settings=()) -> dict:
    """Runs one measurement in a fresh process; returns its JSON result plus images/s."""
    common = [
        "--model", model, "--epochs", str(1 + args.timed_epochs),
        "--train-images", str(args.train_images), "--val-images", str(args.val_images),
    ]  # fmt: skip
    if impl.startswith("mnistlab"):
        command = [sys.executable, __file__, "--worker", "--backend", backend, *common]
        command += [part for item in settings for part in ("--set", item)]
    else:
        command = [sys.executable, PLAIN[impl], *common]
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if impl == "keras-onednn":
        env["TF_ENABLE_ONEDNN_OPTS"] = "1"
    if impl in YNN_ROWS:  # the user's own XLA_FLAGS win over mnistlab's choice (backend.py)
        from mnistlab.core.config import JAX_YNN_DEFAULT, JAX_YNN_FLAG, XLA_FLAGS_ENV

        env[XLA_FLAGS_ENV] = f"{JAX_YNN_FLAG}={JAX_YNN_DEFAULT if YNN_ROWS[impl] else ''}"
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(REPO, "src"), env.get("PYTHONPATH", "")])
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"{impl}/{backend}/{model} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    timed = result["epoch_seconds"][1:]  # the first epoch is the warm-up
    # Work fit does outside the timed epochs (checkpoints, callbacks), shared over the epochs.
    overhead = max(0.0, result["fit_seconds"] - sum(result["epoch_seconds"]))
    of_process = EPOCH_STATISTICS[args.epoch_statistic]
    result["seconds_per_epoch"] = of_process(timed) + overhead / len(result["epoch_seconds"])
    result["images_per_second"] = args.train_images / result["seconds_per_epoch"]
    return result


# --- the whole benchmark -------------------------------------------------------------------


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


def write_table(folder: str, name: str, lines: list[str]) -> str:
    """Writes a results page (lines of Markdown) to folder/name, prints it and returns it."""
    text = "\n".join(lines) + "\n"
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "w") as handle:
        handle.write(text)
    print(text)
    return text


def installed_backends() -> list[str]:
    from mnistlab.core.backend import is_installed

    return [name for name in BACKENDS if is_installed(name)]


def model_backends(args, model: str) -> list[str]:
    """The backends a network is timed on: --backends, or with --default-backend the one the
    command line trains it on where the user names none (backend.default_backend)."""
    if not args.default_backend:
        return args.backends
    from mnistlab.core.backend import default_backend
    from mnistlab.models import get_spec

    return [default_backend(get_spec(model))]


def plan(args) -> list[tuple]:
    """(implementation, backend, model, settings) for every measurement of one round."""
    from mnistlab.core.backend import wants_ynn
    from mnistlab.models import get_spec

    jobs = []
    for model in args.models:
        for backend in model_backends(args, model):
            if args.sweep:
                for jit in ("false", "true"):
                    for steps in args.sweep_steps:
                        settings = (f"jit_compile={jit}", f"steps_per_execution={steps}")
                        jobs.append(("mnistlab", backend, model, settings))
                continue
            jobs.append(("mnistlab", backend, model, ()))
            if args.float32:
                jobs.append(("mnistlab-f32", backend, model, ("precision=float32",)))
            if args.bf16:
                jobs.append(("mnistlab-bf16", backend, model, ("precision=mixed_bfloat16",)))
            if args.keras_adam:
                jobs.append(("mnistlab-keras-adam", backend, model, ("fused_adam=false",)))
            if args.keras_step and backend in ("torch", "jax"):
                jobs.append(("mnistlab-keras-step", backend, model, ("lean_step=false",)))
            if args.ynn_ab and backend == "jax":
                jobs.append(("mnistlab-ynn-off" if wants_ynn(get_spec(model)) else "mnistlab-ynn-dot",
                             backend, model, ()))  # fmt: skip
            jobs.append(("keras", backend, model, ()))
            if backend == "tensorflow" and args.plain_onednn:
                jobs.append(("keras-onednn", backend, model, ()))
        if not args.sweep and "torch" in installed_backends():
            jobs.append(("pytorch", "torch", model, ()))
        if args.jax_loop and model == "mlp" and "jax" in model_backends(args, model):
            jobs.append(("jax-loop", "jax", model, ()))
    return jobs


def network_flops(results: dict) -> dict:
    """(training, forward) FLOPs per image of each network, as the mnistlab workers counted."""
    counts = {}
    for (impl, _, model, _), runs in results.items():
        if impl == "mnistlab":
            counts[model] = (runs[0]["train_flops"], runs[0]["forward_flops"])
    return counts


def summarize(results: dict, matmul: float, args) -> list[dict]:
    flops = network_flops(results)
    rows = []
    for (impl, backend, model, settings), runs in results.items():
        speeds = [run["images_per_second"] for run in runs]
        seconds = statistics.median(run["seconds_per_epoch"] for run in runs)
        train_flops, forward_flops = flops[model]
        work = train_flops * args.train_images + forward_flops * args.val_images
        gflops = work / seconds / 1e9
        rows.append(
            {
                "model": model,
                "implementation": impl,
                "backend": backend,
                "settings": " ".join(settings) or "default",
                "images_per_second": statistics.median(speeds),
                "spread": [min(speeds), max(speeds)],
                "gflops": gflops,
                "percent_of_matmul": 100 * gflops / matmul,
                "peak_rss_mb": max(run["peak_rss_mb"] for run in runs),
                # each round's epochs, the warm-up first: any other statistic can be taken again
                "epoch_seconds": [run["epoch_seconds"] for run in runs],
                "val_accuracy": statistics.median(run["val_accuracy"] for run in runs),
                "compile": runs[0].get("compile"),
                "onednn": runs[0].get("onednn"),
                "precision": runs[0].get("precision", "float32"),
                "optimizer": runs[0].get("optimizer"),  # mnistlab rows: FusedAdam or Adam
                "train_step": runs[0].get("train_step"),  # mnistlab rows: lean, scan or keras (why)
            }
        )
    return rows


def row_of(rows, model, impl, backend) -> dict | None:
    for row in rows:
        if (row["model"], row["implementation"], row["backend"]) == (model, impl, backend):
            return row
    return None


def speed_of(rows, model, impl, backend) -> float | None:
    row = row_of(rows, model, impl, backend)
    return row["images_per_second"] if row else None


# the bars of the chart, top to bottom in each network's group: (implementation, label)
CHART_BARS = (("mnistlab", "mnistlab"), ("keras", "plain Keras"), ("pytorch", "plain PyTorch"))
MATMUL_TARGET = 40  # % of numpy's matrix-multiply rate that issue 6 asks of cnn and larger_cnn


def plot(rows: list[dict], title: str, path: str):
    """The table as a chart, saved to path (PNG): for each network and backend mnistlab timed,
    images/s of mnistlab, the plain Keras script on that backend and the plain PyTorch loop
    (median over rounds, whiskers from the slowest to the fastest round), with mnistlab's ratios
    to them; beside it, mnistlab's share of numpy's matrix-multiply rate, and the 40% target.

    Returns:
        The matplotlib Figure.
    """
    from matplotlib.figure import Figure

    ours = [row for row in rows if row["implementation"] == "mnistlab"]  # one group each

    def beside(row, impl):  # the row of impl timed beside mnistlab's row (PyTorch: on torch)
        backend = "torch" if impl == "pytorch" else row["backend"]
        return row_of(rows, row["model"], impl, backend)

    figure = Figure(figsize=(10, 1.2 + 0.9 * len(ours)), layout="constrained")
    speeds, shares = figure.subplots(1, 2, width_ratios=(3, 1), sharey=True)
    height = 0.8 / len(CHART_BARS)
    for index, (impl, label) in enumerate(CHART_BARS):
        bars = [  # (y position, row)
            (position + (index - 1) * height, found)
            for position, row in enumerate(ours)
            if (found := beside(row, impl))
        ]
        if not bars:
            continue
        values = [row["images_per_second"] for _, row in bars]
        whiskers = [
            [value - row["spread"][0] for value, (_, row) in zip(values, bars, strict=True)],
            [row["spread"][1] - value for value, (_, row) in zip(values, bars, strict=True)],
        ]
        positions = [position for position, _ in bars]
        speeds.barh(positions, values, height, xerr=whiskers, capsize=2, label=label)
    for position, row in enumerate(ours):
        ratios = [
            f"{row['images_per_second'] / peer['images_per_second']:.2f}x {name}"
            for impl, name in (("keras", "Keras"), ("pytorch", "PyTorch"))
            if (peer := beside(row, impl))
        ]
        speeds.annotate(
            ", ".join(ratios),
            (row["spread"][1], position - height),  # right of the fastest round's whisker
            xytext=(6, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    share = [row["percent_of_matmul"] for row in ours]
    shares.barh(range(len(ours)), share, 0.5, color="C0")
    for position, percent in enumerate(share):
        shares.annotate(f"{percent:.0f}%", (percent, position), xytext=(3, 0),
                        textcoords="offset points", va="center", fontsize=8)  # fmt: skip
    shares.axvline(MATMUL_TARGET, color="black", linestyle="--", linewidth=1)
    shares.set_xlim(0, max(60, *share) * 1.2)
    shares.set_xlabel(f"mnistlab, % of numpy's\nmatmul rate (dashed: {MATMUL_TARGET}%)")
    speeds.set_yticks(range(len(ours)), [f"{row['model']}\n{row['backend']}" for row in ours])
    speeds.invert_yaxis()
    speeds.set_xlabel("training images per second (median over rounds; whiskers: min to max)")
    speeds.margins(x=0.3)
    speeds.legend(loc="lower right", fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.savefig(path, dpi=110)
    return figure


def chart_title(report: dict) -> str:
    """The chart's title from a speed.json: the machine, numpy's rate and how it was timed."""
    timing = ", ".join(
        f"{value:,} {name}" if isinstance(value, int) else f"{value} {name}"
        for name, value in (
            ("rounds", report.get("rounds")),
            ("images an epoch", report.get("train_images")),
            ("epoch of each process", report.get("epoch_statistic")),
        )
        if value
    )
    matmul = max(report["matmul_gflops"])
    return f"{report['cpu']}; numpy matrix multiply {matmul:.0f} GFLOP/s" + (
        f"\n{timing}" if timing else ""
    )


def markdown(rows, matmul: float, args, elapsed: float) -> str:
    from mnistlab.core.runs import machine_description

    lines = [
        "# Training speed",
        "",
        f"Machine: {machine_description()}. numpy float32 matrix multiply: "
        f"**{matmul:.1f} GFLOP/s** (best of the run). {args.rounds} rounds, interleaved, each "
        f"measurement a fresh process: one warm-up epoch, then {args.timed_epochs} timed "
        f"epoch(s) of {args.train_images} training + {args.val_images} validation images, "
        f"batch 200, Adam. A process's figure: the {args.epoch_statistic} of its timed "
        "epochs. Median over rounds; [min-max] over rounds. "
        f"Whole run: {elapsed / 60:.1f} min.",
        "",
        f"Command: `python benchmarks/speed.py {' '.join(args.argv)}`".replace(" `", "`"),
        "",
    ]
    if args.sweep:
        lines += [
            "| network | backend | settings | images/s | [min-max] | GFLOP/s | % matmul |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: |",
        ]
        for row in rows:
            low, high = row["spread"]
            lines.append(
                f"| {row['model']} | {row['backend']} | {row['settings']} | "
                f"{row['images_per_second']:.0f} | {low:.0f}-{high:.0f} | {row['gflops']:.1f} | "
                f"{row['percent_of_matmul']:.0f}% |"
            )
        return "\n".join(lines) + "\n"
    lines += [
        "| network | implementation | backend | images/s | [min-max] | x plain Keras | "
        "x plain PyTorch | GFLOP/s | % matmul | peak RSS MB | val acc | oneDNN | precision |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for row in rows:
        keras_speed = speed_of(rows, row["model"], "keras", row["backend"])
        torch_speed = speed_of(rows, row["model"], "pytorch", "torch")
        speed = row["images_per_second"]
        versus_keras = f"{speed / keras_speed:.2f}" if keras_speed else "-"
        versus_torch = f"{speed / torch_speed:.2f}" if torch_speed else "-"
        low, high = row["spread"]
        name = row["implementation"] if row["implementation"] != "mnistlab" else "**mnistlab**"
        lines.append(
            f"| {row['model']} | {name} | {row['backend']} | {speed:.0f} | {low:.0f}-{high:.0f} | "
            f"{versus_keras} | {versus_torch} | {row['gflops']:.1f} | "
            f"{row['percent_of_matmul']:.0f}% | {row['peak_rss_mb']:.0f} | "
            f"{row['val_accuracy']:.3f} | {ONEDNN_MARK[row.get('onednn')]} | "
            f"{row['precision']} |"
        )
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Training speed: mnistlab against its peers.")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=None)
    parser.add_argument("--rounds", type=int, default=3, help="repetitions per measurement")
    parser.add_argument("--timed-epochs", type=int, default=1, help="timed epochs per process")
    parser.add_argument(
        "--epoch-statistic",
        choices=sorted(EPOCH_STATISTICS),
        default="median",
        help="a process's figure from its timed epochs: their median, or the fastest, which "
        "leaves out time a shared host's other jobs took (default: median)",
    )
    parser.add_argument(
        "--default-backend",
        action="store_true",
        help="time each network on the backend the command line trains it on (instead of "
        "--backends): what users get",
    )
    parser.add_argument("--train-images", type=int, default=6000, help="images per epoch")
    parser.add_argument("--val-images", type=int, default=1000, help="validation images/epoch")
    parser.add_argument("--sweep", action="store_true", help="compare compile settings instead")
    parser.add_argument("--sweep-steps", nargs="+", type=int, default=[1, 10])
    parser.add_argument("--tiny", action="store_true", help="a few batches, for CI")
    parser.add_argument(
        "--plain-onednn",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time the plain Keras script with oneDNN on, on TensorFlow (default: yes)",
    )
    parser.add_argument(
        "--float32",
        action="store_true",
        help="also time mnistlab with --precision float32 (row mnistlab-f32)",
    )
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="also time mnistlab with --precision mixed_bfloat16 (row mnistlab-bf16)",
    )
    parser.add_argument(
        "--keras-adam",
        action="store_true",
        help="also time mnistlab with Keras's own Adam, --fused-adam false (row mnistlab-keras-adam)",
    )
    parser.add_argument(
        "--keras-step",
        action="store_true",
        help="on PyTorch and JAX, also time mnistlab with Keras's own training step, "
        "--lean-step false (row mnistlab-keras-step)",
    )
    parser.add_argument(
        "--jax-loop",
        action="store_true",
        help="for the MLP on JAX, also time the same math as a hand-written JAX loop "
        "(benchmarks/plain/jax_loop.py, row jax-loop): the floor without Keras",
    )
    parser.add_argument(
        "--ynn-ab",
        action="store_true",
        help="on JAX, also time mnistlab with XLA's matrix products the other way from its "
        "choice for the network: on YNNPACK (row mnistlab-ynn-dot) or not (mnistlab-ynn-off)",
    )
    parser.add_argument("--out", default=os.path.join(HERE, "results"), help="results folder")
    parser.add_argument(
        "--replot",
        metavar="FOLDER",
        help="draw FOLDER/speed.png again from FOLDER/speed.json, timing nothing",
    )
    # worker mode (one measurement; used by the benchmark itself)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--set", action="append", help=argparse.SUPPRESS)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.worker:
        print(json.dumps(mnistlab_worker(args)))
        return 0
    if args.replot:
        return replot(args.replot)
    if args.tiny:
        args.models, args.rounds, args.train_images, args.val_images = ["cnn"], 1, 400, 200
        args.backends = args.backends or ["tensorflow"]
        args.sweep_steps = args.sweep_steps[:1]
    args.backends = args.backends or installed_backends()

    started = time.perf_counter()
    from mnistlab.models.flops import matmul_gflops

    matrix_size = 512 if args.tiny else 2048
    matmul = [matmul_gflops(matrix_size)]
    jobs = plan(args)
    results: dict = {job: [] for job in jobs}
    for round_index in range(args.rounds):
        for job in jobs:
            result = run_measurement(*job[:3], args, settings=job[3])
            results[job].append(result)
            print(
                f"round {round_index + 1}/{args.rounds} {job[0]:>8} {job[1]:>10} {job[2]:>10} "
                f"{' '.join(job[3]):<40} {result['images_per_second']:8.0f} images/s",
                flush=True,
            )
        matmul.append(matmul_gflops(matrix_size))
    rows = summarize(results, max(matmul), args)
    from mnistlab.core import runs

    name = "settings" if args.sweep else "speed"
    os.makedirs(args.out, exist_ok=True)
    text = markdown(rows, max(matmul), args, time.perf_counter() - started)
    with open(os.path.join(args.out, f"{name}.md"), "w") as handle:
        handle.write(text)
    report = {
        "cpu": runs.machine_description(),
        "matmul_gflops": matmul,
        "rounds": args.rounds,
        "train_images": args.train_images,
        "epoch_statistic": args.epoch_statistic,
        "rows": rows,
    }
    runs.write_json(os.path.join(args.out, f"{name}.json"), report)
    print(text)
    if not args.sweep:
        draw_chart(args.out, report)
    return 0


def draw_chart(folder: str, report: dict) -> None:
    """Writes folder/speed.png from a report (speed.json's contents), if matplotlib is there."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[plot]'): no speed.png")
        return
    plot(report["rows"], chart_title(report), os.path.join(folder, "speed.png"))
    print(f"Chart: {os.path.join(folder, 'speed.png')}")


def replot(folder: str) -> int:
    """Draws folder/speed.png again from folder/speed.json, without timing anything."""
    from mnistlab.core import runs

    source = os.path.join(folder, "speed.json")
    if not os.path.isfile(source):
        print(f"error: no speed.json in {folder}", file=sys.stderr)
        return 2
    draw_chart(folder, runs.read_json(source))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(REPO, "src"))
    sys.exit(main())
