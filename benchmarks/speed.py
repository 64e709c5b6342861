"""Training speed: mnistlab against the scripts people use now, like for like.

For each of the tutorial's networks, on every installed backend (or with --default-backend the
one the command line picks), in one run, interleaved (round r of every measurement before round
r+1 of any), each measurement in its own process:

- mnistlab: ``mnistlab.train`` with the settings users get (precision auto: mixed bfloat16 for
  the tutorial's CNNs on TensorFlow, bfloat16 products for the MLP on JAX, on a CPU with
  bfloat16 instructions; else float32), and the same with --precision float32 (row
  mnistlab-f32); --bf16 adds a row forcing mixed bfloat16, --keras-adam one with Keras's own
  Adam instead of the fused one (mnistlab.fast.optimizers), --keras-step on PyTorch and JAX one
  with Keras's own training step, --ynn-ab on JAX one with XLA's matrix products on YNNPACK or
  not, the other way from mnistlab's choice for the network;
- plain Keras: benchmarks/plain/keras_tutorial.py (``model.fit`` on numpy, batch 200), same
  backend, Keras's default compile settings, in float32 (row keras) and one setting away, with
  Keras's mixed_bfloat16 policy (row keras-bf16); on TensorFlow with the oneDNN kernels set as
  mnistlab sets them (speed_worker.measurement_env);
- plain PyTorch: benchmarks/plain/torch_loop.py (pytorch/examples style, data in memory) in
  float32 (row pytorch) and one setting away, the forward pass and loss under
  ``torch.autocast("cpu", dtype=torch.bfloat16)`` with float32 weights (row pytorch-bf16);
- with --jax-loop, for the MLP: benchmarks/plain/jax_loop.py, the same math as a hand-written
  JAX loop (data on the device, 20 steps a compiled call), what JAX reaches without Keras.

Every process trains a warm-up epoch (tracing, compiling, thread start) and then timed epochs
of --train-images images, each followed by validation on --val-images test images, as the
tutorial does (60,000 : 10,000). Images per second = train images / the median of the process's
timed epochs (--epoch-statistic fastest: its fastest), median over rounds; beside it the whole
process's wall seconds, start to exit, for the same epochs. GFLOP/s counts the multiply-adds
analytically (mnistlab.models.flops) against the float32 matrix-multiply GFLOP/s numpy reaches
in the same run (best of the measurements taken between rounds). The headline table sets each
mnistlab row against the plain Keras row and the plain PyTorch row in the same precision
(speed_report.like_for_like);
--check compares its ratios with the README's (benchmarks/expected.json) and exits 1 if one
no longer holds.

Usage:
    python benchmarks/speed.py --default-backend --rounds 3 --timed-epochs 2 --check
    python benchmarks/speed.py --tiny                                      # smoke test, ~1 min
    python benchmarks/speed.py --sweep                                     # compile settings

Writes OUT/speed.md, speed.json and a chart of them, speed.png (or settings.md/json with
--sweep); ``--replot FOLDER`` draws a folder's chart again from its JSON.
"""

from __future__ import annotations

import argparse
import os
import subprocess  # noqa: F401  (the measurements run through it; tests replace its run)
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from runinfo import git_commit  # noqa: E402
from speed_checks import load_expected, report_checks, speed_figures  # noqa: E402
from speed_report import (  # noqa: E402, F401  (re-exported for the tests and other benchmarks)
    draw_chart,
    like_for_like,
    markdown,
    plot,
    summarize,
    write_table,
)
from speed_worker import (  # noqa: E402, F401
    EPOCH_STATISTICS,
    run_measurement,
    run_timed,
)

MODELS = ("mlp", "cnn", "larger_cnn", "branch_cnn")
BACKENDS = ("tensorflow", "jax", "torch")


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
            if args.plain_bf16:
                jobs.append(("keras-bf16", backend, model, ()))
        if not args.sweep and args.pytorch and "torch" in installed_backends():
            jobs.append(("pytorch", "torch", model, ()))
            if args.pytorch_bf16:
                jobs.append(("pytorch-bf16", "torch", model, ()))
        if args.jax_loop and model == "mlp" and "jax" in model_backends(args, model):
            jobs.append(("jax-loop", "jax", model, ()))
    return jobs


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
        "--float32",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time mnistlab with --precision float32, row mnistlab-f32 (default: yes)",
    )
    parser.add_argument(
        "--plain-bf16",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time the plain Keras script with Keras's mixed_bfloat16 policy, row "
        "keras-bf16 (default: yes)",
    )
    parser.add_argument(
        "--pytorch",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time the plain PyTorch loop, where torch is installed (default: yes)",
    )
    parser.add_argument(
        "--pytorch-bf16",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --pytorch, also time the loop under torch.autocast in bfloat16, row "
        "pytorch-bf16 (default: yes)",
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
    parser.add_argument(
        "--check",
        action="store_true",
        help="compare the like-for-like ratios with the README's (benchmarks/expected.json) "
        "and exit 1 if one falls outside its range",
    )
    parser.add_argument("--out", default=os.path.join(HERE, "results"), help="results folder")
    parser.add_argument(
        "--replot",
        metavar="FOLDER",
        help="draw FOLDER/speed.png again from FOLDER/speed.json, timing nothing (with "
        "--check: check its figures)",
    )
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.replot:
        return replot(args.replot, check_figures=args.check)
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
                f"round {round_index + 1}/{args.rounds} {job[0]:>12} {job[1]:>10} {job[2]:>10} "
                f"{' '.join(job[3]):<30} {result['images_per_second']:8.0f} images/s "
                f"{result['process_seconds']:6.1f} s process",
                flush=True,
            )
        matmul.append(matmul_gflops(matrix_size))
    rows = summarize(results, max(matmul), args)
    from mnistlab.core import runs

    name = "settings" if args.sweep else "speed"
    text = markdown(rows, max(matmul), args, time.perf_counter() - started)
    write_table(args.out, f"{name}.md", [text.rstrip("\n")])
    report = {
        "cpu": runs.machine_description(),
        "date": time.strftime("%Y-%m-%d"),
        "commit": git_commit(),
        "argv": args.argv,
        "matmul_gflops": matmul,
        "rounds": args.rounds,
        "train_images": args.train_images,
        "timed_epochs": args.timed_epochs,
        "epoch_statistic": args.epoch_statistic,
        "like_for_like": [] if args.sweep else like_for_like(rows),
        "rows": rows,
    }
    runs.write_json(os.path.join(args.out, f"{name}.json"), report)
    if not args.sweep:
        draw_chart(args.out, report)
    return check(report) if args.check else 0


def check(report: dict) -> int:
    """1 if a like-for-like ratio of report (speed.json's contents) is outside the README's
    range (benchmarks/expected.json), else 0; prints each figure."""
    failed = report_checks(
        speed_figures(report["like_for_like"]), load_expected("speed.py"), "speed.py"
    )
    return 1 if failed else 0


def replot(folder: str, check_figures: bool = False) -> int:
    """Draws folder/speed.png again from folder/speed.json, without timing anything; with
    check_figures, checks its figures too (``--replot FOLDER --check``)."""
    from mnistlab.core import runs

    source = os.path.join(folder, "speed.json")
    if not os.path.isfile(source):
        print(f"error: no speed.json in {folder}", file=sys.stderr)
        return 2
    report = runs.read_json(source)
    draw_chart(folder, report)
    return check(report) if check_figures else 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(REPO, "src"))
    sys.exit(main())
