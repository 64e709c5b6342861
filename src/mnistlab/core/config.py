"""Defaults in one place, and the flat config that a run resolves from them.

A run's config is this table, then a TOML file (``--config``), then CLI flags or keyword
arguments. An unknown key or a value of the wrong type is a ``ValueError``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields

import tomllib

DATA_ENV = "MNISTLAB_DATA"  # folder or file that holds MNIST; see data.load_mnist
HOME_ENV = "MNISTLAB_HOME"  # mnistlab's cache folder (downloads); default ~/.cache/mnistlab
BACKEND_ENV = "KERAS_BACKEND"  # the Keras backend, read once when keras is first imported
DEFAULT_BACKEND = "tensorflow"  # fastest measured on CPU: benchmarks/speed.py, README "Speed"
BACKENDS = ("tensorflow", "jax", "torch")
# TensorFlow's oneDNN kernels: TensorFlow turns them on by itself only on CPUs with neural-network
# instructions (AVX-512 VNNI or BF16, AVX-VNNI, AMX), yet on an AVX2 CPU they train the lab's
# CNNs 1.7-3.8x as fast (README "Training speed"). TensorFlow reads this once, when it loads, so
# mnistlab sets it first unless the user already has (=0 turns it off).
ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"
ONEDNN_DEFAULT = "1"
# JAX on a CPU: XLA multiplies matrices (dots, and the convolutions' kernel gradients, which it
# rewrites as dots) with its own loops unless told to hand them to YNNPACK; with them there, a
# cnn step took 74 ms on JAX against 103 (benchmarks/results/pool_probe-jax-cnn*.md; README
# "Training speed"). The MLP, two large dots, trained 1.18x as fast without them, so it trains
# without (models.ModelSpec.jax_ynn). XLA reads XLA_FLAGS once, when JAX starts, and stops the
# process on a flag it does not know, so mnistlab adds this one only for a jaxlib at least
# JAX_YNN_SINCE (the one it was measured with) and only if the user's XLA_FLAGS do not set it
# already (=... with another value, or empty, wins).
XLA_FLAGS_ENV = "XLA_FLAGS"
PLAIN_ENV = "MNISTLAB_PLAIN"  # 1: train with stock Keras alone (TrainConfig.plain's default)
JAX_YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
JAX_YNN_DEFAULT = "dot"
JAX_YNN_SINCE = (0, 10)


@dataclass
class TrainConfig:
    """Everything that decides a training run; saved as config.json in the run folder."""

    model: str = "cnn"  # a name in models.REGISTRY
    epochs: int = 10  # passes over the training images
    batch_size: int = 200  # images per step
    learning_rate: float = 0.001  # Adam's step size (peak rate when a schedule is used)
    seed: int = 7  # seeds numpy, python and the backend; same seed, same weights
    val_size: int = (
        5000  # images held out of the 60,000 for validation; 0 = validate on test (tutorial)
    )
    val_fold: int = 0  # which val_size slice to hold out, counted from the end (0 = the last)
    train_size: int = 0  # use only the first N training images (0 = all); for quick runs
    schedule: str = "constant"  # learning-rate schedule: constant, onecycle, exponential
    label_smoothing: float = 0.0  # 0 = plain categorical cross-entropy
    augment: str = "none"  # on-the-fly augmentation: none, affine, elastic
    # augment=elastic: the smooth random displacement field (Simard et al. 2003's settings)
    elastic_alpha: float = 34.0  # pixels of displacement per unit of smoothed noise
    elastic_sigma: float = 4.0  # pixels: width of the Gaussian that smooths the noise
    ema: float = 0.0  # decay of an exponential moving average of the weights (0 = off)
    # a finished run folder (one network, or an ensemble's) whose probabilities on each training
    # image become that image's target, and its warped copies' (training.distill); "" = off
    teacher: str = ""
    # the teacher's share of each target; the rest is the one-hot label (1 = the teacher alone)
    teacher_weight: float = 1.0
    # what the teacher answers for: "images", each training image once, before training, its
    # warps carrying that answer (no cost a step); or "warps", every warped batch as it is
    # drawn, its own answer for each warp (a forward pass of the teacher a step)
    teacher_sees: str = "images"
    early_stopping: int = 0  # stop after this many epochs without val improvement (0 = off)
    jit_compile: str = "auto"  # auto (fastest measured per backend), true, false
    steps_per_execution: int = 0  # train steps per compiled call (0 = fastest measured default)
    # true: TensorFlow's deterministic ops, so a rerun gives the same weights bit for bit; false:
    # TensorFlow's default ops. No speed difference measured on the CPU (results/probe_determinism)
    deterministic: str = "true"
    # true: Adam's update runs as one fused kernel on TensorFlow (optimizers.FusedAdam: the same
    # math, a faster MLP step, README "Training speed"); false: Keras's Adam, as plain scripts run
    fused_adam: str = "true"
    # true: mnistlab's own training step where it computes what Keras's does: on PyTorch, each
    # step reaches the layers through their call, past Keras's per-call bookkeeping
    # (torch_step.py); on JAX, a dense network runs 20 steps a compiled call over training data
    # kept on the device (jax_step.py). The same math, less host work a step. false: Keras's step
    lean_step: str = "true"
    # float32, or mixed_bfloat16: layers compute in bfloat16 and keep float32 weights; the output
    # layer stays float32. Pays only where bfloat16 runs in hardware (README "Training speed").
    # bfloat16_products (JAX and PyTorch): everything float32 but the Dense layers' matrix
    # products (and on PyTorch the convolutions), which multiply bfloat16 copies
    # (layers.BFloat16ProductDense, BFloat16ProductConv2D).
    # auto: one of these where it was measured faster at the same error (mixed_bfloat16: the
    # tutorial's CNNs, on TensorFlow with oneDNN; bfloat16_products: the MLP on JAX and
    # PyTorch; both on a CPU with bfloat16 instructions), else float32. A run records the
    # precision it resolved to (backend.resolve_precision)
    precision: str = "auto"
    verbose: int = 2  # 0 silent, 1 progress bar, 2 one line per epoch (the tutorial's)
    # true: stock Keras alone, the same network, data, optimizer and seed, none of mnistlab's
    # fast layers, Adam or steps (fast/seam.py); the default is true where $MNISTLAB_PLAIN is 1
    plain: str = field(
        default_factory=lambda: "true" if os.environ.get(PLAIN_ENV) == "1" else "false"
    )

    @classmethod
    def from_sources(cls, file: str | os.PathLike | None = None, **overrides) -> TrainConfig:
        """Builds a config from the defaults, then a TOML file, then keyword overrides.

        Args:
            file: optional TOML file with flat ``key = value`` lines.
            **overrides: values that win over the file; ``None`` values are ignored.

        Returns:
            A validated TrainConfig.

        Example:
            >>> TrainConfig.from_sources(model="mlp", epochs=1).epochs
            1
        """
        values: dict = {}
        if file is not None:
            try:
                with open(file, "rb") as handle:
                    values.update(tomllib.load(handle))
            except OSError as error:
                raise ValueError(f"Cannot read config file '{file}': {error.strerror}.") from None
            except tomllib.TOMLDecodeError as error:
                raise ValueError(f"Config file '{file}' is not valid TOML: {error}.") from None
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls.from_dict(values)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {field.name: field for field in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(
                f"Unknown config key(s): {', '.join(unknown)}. Known keys: {', '.join(known)}."
            )
        config = cls()
        for key, value in values.items():
            expected = type(getattr(config, key))
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if expected is str and isinstance(value, bool):
                value = str(value).lower()
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise ValueError(f"Config key '{key}' must be {expected.__name__}, got {value!r}.")
            setattr(config, key, value)
        config.validate()
        return config

    def validate(self) -> None:
        checks = [
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.batch_size >= 1, "batch_size must be at least 1"),
            (self.learning_rate > 0, "learning_rate must be positive"),
            (self.val_size >= 0, "val_size must be 0 or more"),
            (self.val_fold >= 0, "val_fold must be 0 or more"),
            (self.train_size >= 0, "train_size must be 0 or more"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
            (0 <= self.ema < 1, "ema must be in [0, 1)"),
            (0 < self.teacher_weight <= 1, "teacher_weight must be in (0, 1]"),
            (
                self.teacher_sees in TEACHER_SEES,
                f"teacher_sees must be one of {', '.join(TEACHER_SEES)}",
            ),
            (self.elastic_alpha >= 0, "elastic_alpha must be 0 or more"),
            (self.elastic_sigma > 0, "elastic_sigma must be positive"),
            (self.early_stopping >= 0, "early_stopping must be 0 or more"),
            (self.steps_per_execution >= 0, "steps_per_execution must be 0 or more"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}"),
            (self.augment in AUGMENTS, f"augment must be one of {', '.join(AUGMENTS)}"),
            (
                self.jit_compile in ("auto", "true", "false"),
                "jit_compile must be auto, true or false",
            ),
            (self.deterministic in ("true", "false"), "deterministic must be true or false"),
            (self.fused_adam in ("true", "false"), "fused_adam must be true or false"),
            (self.lean_step in ("true", "false"), "lean_step must be true or false"),
            (self.plain in ("true", "false"), "plain must be true or false"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}"),
            (self.verbose in (0, 1, 2), "verbose must be 0, 1 or 2"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"Invalid config: {message}.")
        self._validate_split()

    def _validate_split(self) -> None:
        """What prepare_data would refuse once the data is loaded, refused before (a sweep or
        an ensemble then fails at once, not in every trial's process)."""
        if self.train_size and self.val_size >= self.train_size:
            raise ValueError(
                f"Invalid config: val_size={self.val_size} leaves no training images of "
                f"train_size={self.train_size}; lower val_size or raise train_size."
            )
        needed = (self.val_fold + 1) * self.val_size
        if self.train_size and self.val_fold and needed > self.train_size:
            raise ValueError(
                f"Invalid config: val_fold={self.val_fold} with val_size={self.val_size} needs "
                f"{needed} training images, train_size={self.train_size}; use a smaller val_fold."
            )
        if self.early_stopping and not self.val_size:
            raise ValueError(
                "Invalid config: early_stopping needs a validation split held out of the "
                "training images (val_size > 0); stopping on the test set would bias the error."
            )

    def to_dict(self) -> dict:
        return asdict(self)


SCHEDULES = ("constant", "onecycle", "exponential")
AUGMENTS = ("none", "affine", "elastic")
TEACHER_SEES = ("images", "warps")
# auto, a Keras dtype policy, or float32 but for bfloat16 products (JAX and PyTorch)
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "bfloat16_products")
# What a run saved by an older mnistlab, whose config.json lacks a key, trained with: the
# default of its day where today's differs (precision became auto after those runs, and Adam
# fused after them too; plain came later still, and they trained with the fast paths)
SAVED_BEFORE = {"precision": "float32", "fused_adam": "false", "plain": "false"}


def saved_config(values: dict) -> dict:
    """A saved config.json's values, with the keys older versions did not write filled in.

    Example:
        >>> saved_config({"model": "cnn"})["precision"]
        'float32'
    """
    return {**TrainConfig().to_dict(), **SAVED_BEFORE, **values}


def cache_dir() -> str:
    """mnistlab's own cache folder: $MNISTLAB_HOME, else ~/.cache/mnistlab."""
    return os.environ.get(HOME_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "mnistlab")


def fields_of(cls) -> list[str]:
    return [field.name for field in fields(cls)]
