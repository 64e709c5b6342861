"""Training: resolve a config, fit a registered model, and leave a complete run folder.

The loop is Keras's own ``fit``; mnistlab adds the run folder (checkpoint after every epoch,
so ``--resume`` loses no finished epoch), the tutorial's one line per epoch, the learning-rate
schedules, label smoothing and weight averaging, and the fastest measured compile settings.

The probes named below (ab_probe.py) were one-off scripts, deleted once they had
answered their question; docs/speed.md gives each one's finding and the commit to read it from.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from mnistlab.core import runs
from mnistlab.core.backend import resolve_precision, use_backend
from mnistlab.core.config import TrainConfig, saved_config
from mnistlab.data import mnist as data_module
from mnistlab.fast import seam
from mnistlab.fast.seam import choose_train_step  # noqa: F401  (training's API, tests)
from mnistlab.models.registry import NUM_CLASSES, create_model, float32_copy, get_spec, to_input
from mnistlab.models.saved import load_model, measure
from mnistlab.training import distill
from mnistlab.training import distribute as distribution
from mnistlab.training.calibrate import calibrate_model

# Compile settings measured fastest on a 2-core CPU; "auto" picks these. On TensorFlow, XLA
# (jit_compile) made a cnn epoch about 8x slower on this CPU (38 s against 4.1 s for 12,000
# images), and 20 steps per compiled call cut the epoch time by 10-25% (noisy: the machine was
# shared). Measured by benchmarks/settings_probe.sh; logs in benchmarks/results/probe_*.log.
# On JAX, 20 steps per call made a step 1.04x (mlp) and 1.01x-1.05x (the CNNs) as fast as one
# (ab_probe.py --compare steps --backend jax; results/steps_probe-jax-*.md). PyTorch
# runs one step per call: Keras refuses more there.
FAST_SETTINGS = {
    "tensorflow": {"jit_compile": False, "steps_per_execution": 20},
    "jax": {"jit_compile": True, "steps_per_execution": 20},
    "torch": {"jit_compile": False, "steps_per_execution": 1},
}

RESUMABLE_CHANGES = ("epochs", "verbose")  # what --resume may change; the rest is the recipe


@dataclass
class Run:
    """What ``train`` returns: the run folder, the trained model and what it measured."""

    path: str
    model: object
    config: TrainConfig
    history: list
    metrics: dict


def resolve_config(model: str | None, config_file=None, resume: str | None = None, **overrides):
    """Defaults, then the model's own recipe, then a TOML file, then explicit overrides."""

    if resume:
        saved = saved_config(read_resumed_config(resume))
        if model and model != saved["model"]:
            raise ValueError(
                f"--resume {resume} continues a '{saved['model']}' run, not '{model}'."
            )
        changed = {
            k
            for k, v in overrides.items()
            if v is not None and k not in RESUMABLE_CHANGES and v != saved.get(k)
        }
        if changed:
            raise ValueError(
                "A resumed run keeps its recipe; only --epochs and --verbose may change. "
                f"Got: {', '.join(sorted(changed))}."
            )
        saved.update({k: v for k, v in overrides.items() if v is not None})
        return TrainConfig.from_dict(saved)
    if model is None:
        raise ValueError("Name a model to train (see 'mnistlab models'), or --resume a run folder.")
    recipe = dict(get_spec(model).recipe or {})
    file_values = TrainConfig.from_sources(config_file).to_dict() if config_file else {}
    defaults = TrainConfig().to_dict()
    values = {**recipe, **{k: v for k, v in file_values.items() if v != defaults[k]}}
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["model"] = model
    return TrainConfig.from_dict(values)


def read_resumed_config(folder: str) -> dict:
    """The config.json of the run folder that ``--resume`` names, or a one-line ValueError."""
    path = os.path.join(folder, runs.CONFIG_FILE)
    if not os.path.isdir(folder):
        raise ValueError(f"No run folder '{folder}' to resume.")
    if not os.path.exists(path):
        raise ValueError(
            f"'{folder}' is not an mnistlab run folder (no {runs.CONFIG_FILE}); nothing to resume."
        )
    try:
        return runs.read_json(path)
    except ValueError:
        raise ValueError(f"Cannot resume '{folder}': its {runs.CONFIG_FILE} is not JSON.") from None


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seeds every generator; with ``deterministic``, same seed, machine and backend: same weights.

    On TensorFlow, ``deterministic`` turns op determinism on, and off again when false (the
    setting is global to the process, so a run must not inherit an earlier run's).
    """
    import keras

    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        from tensorflow.python.framework import config as tf_config

        if deterministic:
            tf.config.experimental.enable_op_determinism()
        else:  # no public switch back; this is the one enable_op_determinism's tests use
            tf_config.disable_op_determinism()


def prepare_data(config: TrainConfig, data=None):
    """Loads MNIST (or takes arrays) and splits it as the config says.

    Args:
        data: None ($MNISTLAB_DATA and the caches), a path, or ((x_train, y_train), (x_test, y_test)).

    Returns:
        dict with x_train, y_train, x_val, y_val, x_test, y_test (uint8 images, int labels),
        "validation" ("held-out" or "test"), and "source".
    """

    if isinstance(data, (tuple, list)):
        (x_train, y_train), (x_test, y_test) = data
        source = "arrays given by the caller"
    else:
        (x_train, y_train), (x_test, y_test) = data_module.load_mnist(data)
        source = data_module.find_source(data)
    if config.train_size:
        x_train, y_train = x_train[: config.train_size], y_train[: config.train_size]
    if config.val_size:
        if config.val_size >= len(x_train):
            raise ValueError(
                f"val_size={config.val_size} leaves no training images (only {len(x_train)})."
            )
        (x_train, y_train), (x_val, y_val) = split_fold(x_train, y_train, config)
        validation = "held-out"
    else:
        if config.early_stopping:
            raise ValueError(
                "early_stopping needs a validation split held out of the training images "
                "(val_size > 0); stopping on the test set would report a biased error."
            )
        x_val, y_val, validation = x_test, y_test, "test"
    return dict(
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        validation=validation,
        source=source,
    )


def split_fold(x, y, config: TrainConfig):
    """Holds out fold ``val_fold`` of size ``val_size``, counted from the end of the images.

    Fold 0 is the last val_size images (data.split_validation's split); fold k ends k*val_size
    images earlier, so ensemble members can each validate on different images.
    """
    import numpy as np

    if not config.val_fold:
        return data_module.split_validation(x, y, config.val_size)
    end = len(x) - config.val_fold * config.val_size
    start = end - config.val_size
    if start < 0 or len(x) - config.val_size < 1:
        raise ValueError(
            f"val_fold={config.val_fold} with val_size={config.val_size} needs "
            f"{(config.val_fold + 1) * config.val_size} training images, only {len(x)} given; "
            "use a smaller val_fold."
        )
    keep = np.r_[0:start, end : len(x)]
    return (x[keep], y[keep]), (x[start:end], y[start:end])


def build_optimizer(config: TrainConfig, steps_per_epoch: int):
    """Keras's Adam with the config's schedule and weight average (seam.speed_up may fuse it)."""
    import keras

    from mnistlab.models.schedules import make_schedule

    rate = make_schedule(config, steps_per_epoch)
    if config.ema:
        return keras.optimizers.Adam(rate, use_ema=True, ema_momentum=config.ema)
    return keras.optimizers.Adam(rate)


def compile_settings(config: TrainConfig, steps_per_epoch: int = 0) -> dict:
    """jit_compile and steps_per_execution: the config's, or the measured fastest (FAST_SETTINGS).

    With augmentation the input is endless and Keras runs every compiled call to its full
    steps_per_execution, so a call would run past the end of an epoch into the next one's
    batches; steps_per_execution is then cut to the largest divisor of steps_per_epoch.
    """
    import keras

    fast = FAST_SETTINGS[keras.backend.backend()]
    jit = fast["jit_compile"] if config.jit_compile == "auto" else config.jit_compile == "true"
    steps = config.steps_per_execution or fast["steps_per_execution"]
    if config.augment != "none" and steps_per_epoch:
        steps = max(
            d for d in range(1, min(steps, steps_per_epoch) + 1) if steps_per_epoch % d == 0
        )
    return {"jit_compile": jit, "steps_per_execution": steps}


def compile_model(model, config: TrainConfig, steps_per_epoch: int) -> str:
    """Compiles the model as mnistlab trains it, then makes its step fast (``speed_up``).

    Returns:
        Which training step it got, as a run's meta.json records it.
    """
    import keras

    model.compile(
        optimizer=build_optimizer(config, steps_per_epoch),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
        **compile_settings(config, steps_per_epoch),
    )
    return speed_up(model, config)


def speed_up(model, config: TrainConfig) -> str:
    """The one place a compiled model gets mnistlab's fast layers, Adam and step
    (``fast.seam.speed_up``), unless the config trains with plain Keras (``plain``)."""
    if config.plain == "true":
        return "keras (plain)"
    return seam.speed_up(model, config)


def _epoch_recorder(folder: str, config: TrainConfig):
    import keras

    class EpochRecorder(keras.callbacks.Callback):
        """After each epoch: print the tutorial's line, checkpoint, append history."""

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self.started
            logs = dict(logs or {})
            logs.pop("learning_rate", None)
            logs["seconds"] = seconds
            with seam.stock(self.model):  # the file holds Keras's own classes
                runs.save_model_atomic(self.model, os.path.join(folder, runs.CHECKPOINT_FILE))
            runs.append_history(folder, epoch + 1, logs)
            runs.write_json(os.path.join(folder, runs.STATE_FILE), {"epoch": epoch + 1})
            if config.verbose:
                parts = " - ".join(
                    f"{key}: {value:.4f}" for key, value in logs.items() if key != "seconds"
                )
                print(f"Epoch {epoch + 1}/{config.epochs} - {seconds:.1f}s - {parts}", flush=True)

    return EpochRecorder()


def default_out(model: str) -> str:
    return os.path.join("runs", f"{model}-{time.strftime('%Y%m%d-%H%M%S')}")


def train(
    model: str | None = None,
    *,
    data=None,
    out: str | None = None,
    resume: str | None = None,
    config_file=None,
    backend: str | None = None,
    distribute: str = "none",
    callbacks: list | None = None,
    **overrides,
) -> Run:
    """Trains a registered model and writes a run folder.

    Args:
        model: registry name ("mlp", "cnn", "larger_cnn", "branch_cnn", ...).
        data: None (use $MNISTLAB_DATA, then the caches, then a download), a path to MNIST
            files, or arrays ((x_train, y_train), (x_test, y_test)) as load_mnist returns.
        out: run folder to create (default runs/MODEL-TIMESTAMP).
        resume: an incomplete run folder to continue from its last finished epoch.
        config_file: TOML file of TrainConfig keys.
        backend: "tensorflow", "jax" or "torch" (must be chosen before Keras is imported).
        distribute: "none", or "data-parallel" to split each batch across all devices
            (JAX backend only; see mnistlab.distribute and docs/scaling.md).
        callbacks: extra Keras callbacks for ``fit``, run after mnistlab's own (the speedrun's
            clock is one).
        **overrides: any TrainConfig key, e.g. epochs=1, batch_size=128, seed=3.

    Returns:
        Run with the folder path, the trained keras.Model, the config, the per-epoch
        history and the final test metrics (``metrics["error"]`` in percent).

    Example:
        >>> run = mnistlab.train("mlp", epochs=1, out="runs/mlp")   # doctest: +SKIP
        >>> run.metrics["error"]                                      # doctest: +SKIP
        2.91
    """

    # Before any folder is made, and before Keras loads: where Keras is not yet imported and
    # no backend is named ($KERAS_BACKEND included), the network's own backend, as the command
    # line chooses it (use_backend). Once Keras is imported its backend stays. The kernels stay
    # those that suit most networks (tune=False): one Python process may train several, and
    # TensorFlow fixes its kernels when it loads, so the MLP's choice (oneDNN off) must not
    # slow the CNN that follows; the command line, one network a process, tunes them.
    named = model or (resume and read_resumed_config(resume).get("model"))
    network = get_spec(named) if isinstance(named, str) else None
    distribution.check_strategy(distribute, use_backend(backend, network, tune=False))
    config = resolve_config(model, config_file, resume, **overrides)
    config.precision = _resolved_precision(config)  # as saved
    folder = resume or out or default_out(config.model)
    if not resume and os.path.exists(os.path.join(folder, runs.CONFIG_FILE)):
        raise ValueError(
            f"Run folder '{folder}' already holds a run. Continue it with --resume {folder}, "
            "or choose another --out folder."
        )
    kept = os.path.exists(os.path.join(folder, distill.TARGETS_FILE))
    if config.teacher and (config.teacher_sees == "warps" or not kept):
        distill.check_teacher(config.teacher)  # a resumed run keeps its targets: no teacher
    # a folder this call makes is removed again if training fails before its first epoch
    with (
        runs.lock_run(folder, discard_unstarted=True),
        distribution.scope(distribute, config) as plan,
    ):
        return _train_locked(config, folder, data, bool(resume), plan, callbacks or [])


def _resolved_precision(config: TrainConfig) -> str:
    """The precision the run trains in (backend.resolve_precision); with ``plain``, never
    bfloat16_products, which is one of mnistlab's fast paths (fast/layers.py)."""
    precision = resolve_precision(config.precision, get_spec(config.model))
    if config.plain == "true" and precision == "bfloat16_products":
        if config.precision == "auto":
            return "float32"
        raise ValueError(
            "precision bfloat16_products is one of mnistlab's fast paths, and plain trains "
            "with stock Keras alone; choose --precision float32 or mixed_bfloat16, or drop --plain."
        )
    return precision


def _train_locked(
    config: TrainConfig, folder: str, data, resumed: bool, plan, extra_callbacks: list
) -> Run:
    import keras
    import numpy as np

    seed_everything(config.seed, config.deterministic == "true")
    split = plan.shard(prepare_data(config, data))  # this process's share of the images
    steps_per_epoch = int(np.ceil(len(split["x_train"]) / plan.local_batch_size(config.batch_size)))
    model, train_step, done = _model_to_train(config, folder, resumed, steps_per_epoch)
    runs.write_json(os.path.join(folder, runs.CONFIG_FILE), config.to_dict())
    meta = {
        "seed": config.seed,
        "versions": runs.environment_versions(),
        "data_source": split["source"],
        "validation": split["validation"],
        "train_images": len(split["x_train"]),
        "compile": compile_settings(config, steps_per_epoch),
        "train_step": train_step,
        "distribution": plan.describe(),
    }
    runs.write_json(os.path.join(folder, runs.META_FILE), meta)
    if config.verbose:  # the backend can differ per network (ModelSpec.backend): say which
        print(
            f"Training {config.model} on {keras.backend.backend()}, {config.precision}.", flush=True
        )
    train_seconds = _fit(model, config, folder, split, plan, done, extra_callbacks)
    # model.keras holds the network computing in float32 (the weights are float32 whatever the
    # precision) and of Keras's own classes, so every later command, and plain Keras, meets a
    # plain network; checkpoint.keras keeps the training precision and optimizer, for --resume.
    model = float32_copy(seam.to_stock(model))
    return _finish(model, config, folder, split, plan, train_seconds)


def _model_to_train(config: TrainConfig, folder: str, resumed: bool, steps_per_epoch: int):
    """(model, its training step, epochs already done): the checkpoint of a resumed run, or a
    fresh network, compiled and sped up (``speed_up``)."""
    done = runs.finished_epochs(folder) if resumed else 0
    if done and os.path.exists(os.path.join(folder, runs.CHECKPOINT_FILE)):
        # mnistlab's loader registers the schedules saved with the optimizer (one-cycle)
        model = load_model(os.path.join(folder, runs.CHECKPOINT_FILE))
        train_step = speed_up(model, config)
        if config.verbose:
            print(f"Resuming {folder} after epoch {done} of {config.epochs}.", flush=True)
        return model, train_step, done
    model = create_model(config.model, config.precision)
    return model, compile_model(model, config, steps_per_epoch), 0


def _fit(model, config: TrainConfig, folder: str, split: dict, plan, done: int, extra: list):
    """Runs Keras's fit from epoch ``done`` to config.epochs; returns the seconds it took."""
    import keras

    from mnistlab.training.augment import training_inputs

    y_train = keras.utils.to_categorical(split["y_train"], NUM_CLASSES)
    y_val = keras.utils.to_categorical(split["y_val"], NUM_CLASSES)
    callbacks = [_epoch_recorder(folder, config), *extra]
    if config.early_stopping:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy", patience=config.early_stopping, restore_best_weights=True
            )
        )
    # The images are scaled before the clock starts: train_seconds times training, as the
    # plain scripts' clocks do (they scale their arrays before fit, untimed).
    x_train, x_val = to_input(split["x_train"]), to_input(split["x_val"])
    asks_per_batch = config.teacher_sees == "warps" and config.augment != "none"
    if config.teacher and not asks_per_batch:  # distillation: the teacher's answers as targets
        y_train = distill.distilled_targets(config, folder, x_train, y_train)
    started = time.perf_counter()
    if done < config.epochs:
        inputs = training_inputs(config, x_train, y_train, initial_epoch=done)
        if config.teacher and asks_per_batch:
            inputs = distill.asking_teacher(inputs, config)
        model.fit(
            *inputs["args"],
            batch_size=plan.local_batch_size(inputs["batch_size"]),
            steps_per_epoch=inputs["steps_per_epoch"],
            epochs=config.epochs,
            initial_epoch=done,
            validation_data=(x_val, y_val),
            shuffle=inputs["steps_per_epoch"] is None,  # an augmented pipeline shuffles itself
            verbose=1 if config.verbose == 1 else 0,
            callbacks=callbacks,
        )
    return time.perf_counter() - started


def _finish(model, config: TrainConfig, folder: str, split: dict, plan, train_seconds) -> Run:
    """Measures the saved model, saves it and its metrics (the run's last files), and returns
    the Run. The metrics are the saved model's."""
    with plan.paused():  # the whole test set on one device: any size, no split batches
        metrics = measure(model, split["x_test"], split["y_test"])
        # The saved model's own validation error: with a weight average (ema) it differs from
        # history.csv's per-epoch figures (raw weights), and a choice between finished runs,
        # such as the shipped seed, should rest on the model that was saved.
        metrics["val_error"] = (
            measure(model, split["x_val"], split["y_val"])["error"]
            if split["validation"] == "held-out"
            else None
        )
        if split["validation"] == "held-out":  # temperature and doubt threshold: calibration.json
            calibrate_model(model, split["x_val"], split["y_val"], folder)
    metrics["train_seconds_this_process"] = train_seconds
    history = runs.read_history(folder)
    metrics["epochs_run"] = len(history)
    runs.save_model_atomic(model, os.path.join(folder, runs.MODEL_FILE))
    runs.write_json(os.path.join(folder, runs.METRICS_FILE), metrics)  # last: marks complete
    if config.verbose:
        print(f"Classification error: {metrics['error']:.2f}%", flush=True)
    return Run(folder, model, config, history, metrics)
