"""``mnistlab train``: train a registered network into a run folder, or resume one."""

from __future__ import annotations

from mnistlab.commands.common import add_backend_argument
from mnistlab.core.config import TrainConfig, fields_of
from mnistlab.models.registry import REGISTRY
from mnistlab.training.distribute import STRATEGIES
from mnistlab.training.train import train

# --- CLI ---------------------------------------------------------------------------------


def add_config_arguments(parser) -> None:
    """Flags for every TrainConfig key, typed, with the default named in the help."""
    defaults = TrainConfig()
    helps = {
        "epochs": "passes over the training images",
        "batch_size": "images per step",
        "learning_rate": "Adam's (peak) step size",
        "seed": "random seed; same seed, same weights",
        "val_size": "training images held out for validation; 0 = validate on test (tutorial)",
        "val_fold": "which val_size slice to hold out, from the end (0 = the last)",
        "train_size": "use only the first N training images (0 = all)",
        "schedule": "learning-rate schedule: constant, onecycle, exponential",
        "label_smoothing": "label smoothing in [0, 1)",
        "augment": "on-the-fly augmentation: none, affine, elastic",
        "elastic_alpha": "elastic: pixels of displacement per unit of smoothed noise",
        "elastic_sigma": "elastic: width in pixels of the Gaussian that smooths the noise",
        "ema": "decay of a moving average of the weights (0 = off)",
        "teacher": "distil: a finished run folder (an ensemble's too) whose probabilities on "
        "the training images are the targets",
        "teacher_weight": "distil: the teacher's share of each target, the rest the label",
        "teacher_sees": "distil: images (the teacher answers each training image once, before "
        "training) or warps (every warped batch: its forward pass each step)",
        "early_stopping": "patience in epochs on val accuracy (0 = off)",
        "jit_compile": "auto, true or false",
        "steps_per_execution": "train steps per compiled call (0 = measured default)",
        "deterministic": "true: same seed, same weights (TensorFlow's deterministic ops)",
        "fused_adam": "true: Adam's update as one kernel on TensorFlow and PyTorch (same math); "
        "false: Keras's",
        "lean_step": "true: mnistlab's own step where it computes the same (PyTorch: without "
        "Keras's per-layer bookkeeping; JAX, dense networks: 20 steps a call over data on the "
        "device); false: Keras's step",
        "precision": "auto (bfloat16 where measured faster at the same error), float32, "
        "mixed_bfloat16 (bfloat16 compute, float32 weights and output), or bfloat16_products "
        "(JAX and PyTorch: float32 but the Dense layers' products, and on PyTorch the "
        "convolutions', of bfloat16 operands)",
        "verbose": "0 silent, 1 progress bar, 2 one line per epoch",
    }
    for key, help_text in helps.items():
        default = getattr(defaults, key)
        parser.add_argument(
            "--" + key.replace("_", "-"),
            dest=key,
            type=type(default),
            default=None,
            help=f"{help_text} (default {default}, or the model's recipe)",
        )
    parser.add_argument(
        "--plain",
        dest="plain",
        action="store_const",
        const="true",
        default=None,
        help="train with stock Keras alone: the same network, data, optimizer and seed, none "
        "of mnistlab's fast layers, Adam or steps (default: on where MNISTLAB_PLAIN=1)",
    )


def add_cli(subparsers) -> None:
    from mnistlab.commands.train import add_cli_argument as distribute_argument

    parser = subparsers.add_parser("train", help="train a registered model and save a run folder")
    parser.add_argument("model", nargs="?", help="registry name (see 'mnistlab models')")
    add_config_arguments(parser)
    parser.add_argument(
        "--data", help="MNIST folder or mnist.npz (default: $MNISTLAB_DATA, caches)"
    )
    parser.add_argument("--out", help="run folder to write (default runs/MODEL-TIMESTAMP)")
    parser.add_argument("--resume", metavar="RUN", help="continue an interrupted run folder")
    parser.add_argument("--config", help="TOML file of training settings")
    add_backend_argument(parser)
    distribute_argument(parser)
    parser.set_defaults(func=_train_command)


def _train_command(args) -> int:

    overrides = {key: getattr(args, key) for key in fields_of(TrainConfig) if key != "model"}
    note = short_run_note(args.model, args.epochs)
    if note:
        print(note, flush=True)
    run = train(
        args.model,
        data=args.data,
        out=args.out,
        resume=args.resume,
        config_file=args.config,
        distribute=args.distribute,
        **overrides,
    )
    print(f"Run folder: {run.path}")
    return 0


SHORT_RUN_SHARE = 4  # epochs under 1/4 of a recipe's: the run is a rough try, said so at once


def short_run_note(model: str | None, epochs: int | None) -> str | None:
    """A line for ``--epochs`` far under the recipe's own (a long recipe, cut to a try, ends
    at a high error: ``train best --epochs 1`` at about 84%); None where nothing is cut.

    Example:
        >>> short_run_note("best", 1).startswith("note: best's recipe trains 40 epochs")
        True
    """
    if not model or not epochs or model not in REGISTRY:
        return None
    recipe = REGISTRY[model].recipe or {}
    planned = recipe.get("epochs")  # the lab's networks keep TrainConfig's 10: no long recipe
    if not planned or epochs * SHORT_RUN_SHARE >= planned:
        return None
    schedule = recipe.get("schedule", "constant")
    unit = "epoch" if epochs == 1 else "epochs"
    squeezed = f" (its {schedule} schedule is squeezed into {epochs} {unit})"
    return (
        f"note: {model}'s recipe trains {planned} epochs; --epochs {epochs} gives a rough "
        f"network{squeezed if schedule != 'constant' else ''}."
    )


def add_cli_argument(parser) -> None:
    """The ``--distribute`` flag of ``mnistlab train``."""
    parser.add_argument(
        "--distribute",
        choices=STRATEGIES,
        default="none",
        help="none (one device), or data-parallel: split each batch across all devices "
        "(JAX backend; multi-host via KERAS_DISTRIBUTION_* variables, see docs/scaling.md)",
    )
