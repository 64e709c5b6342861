"""Data-parallel training across devices and hosts, with Keras 3's own distribution API.

``mnistlab train MODEL --distribute data-parallel`` splits every batch across all devices
(``keras.distribution.list_devices()``: the GPUs, else the CPU devices) with
``keras.distribution.DataParallel``; the weights are replicated and the gradients averaged,
so a step computes what one device would compute on the whole batch.

Across hosts, each host runs the same command with Keras's multi-process variables set
(read by ``keras.distribution.initialize``, see docs/scaling.md):

    KERAS_DISTRIBUTION_JOB_ADDRESSES   coordinator "host:port" (process 0's address)
    KERAS_DISTRIBUTION_NUM_PROCESSES   number of hosts (processes)
    KERAS_DISTRIBUTION_PROCESS_ID      this host's number, 0 .. N-1

Each process then trains on its own 1/N of the training and validation images with
``batch_size / N`` images per step, so the global batch is still ``batch_size``.

Backends: Keras 3.15 implements the distribution API for JAX only (TensorFlow's is a
prototype marked "DO NOT USE", PyTorch has none), so ``data-parallel`` needs ``--backend jax``
and is refused with a clear message on the others.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass

from mnistlab.core.backend import keras as load_keras

STRATEGIES = ("none", "data-parallel")

SUPPORTED_BACKENDS = ("jax",)  # where keras.distribution works (Keras 3.15)
HOST_ENV = (
    "KERAS_DISTRIBUTION_JOB_ADDRESSES",
    "KERAS_DISTRIBUTION_NUM_PROCESSES",
    "KERAS_DISTRIBUTION_PROCESS_ID",
)


@dataclass
class Plan:
    """How a training run is spread: which devices, how many processes, which one is this."""

    strategy: str = "none"
    devices: tuple = ()  # global device names, e.g. ("cpu:0", "cpu:1")
    num_processes: int = 1
    process_id: int = 0

    @property
    def active(self) -> bool:
        return self.strategy != "none"

    def shard(self, split: dict) -> dict:
        """This process's share of the training and validation images.

        Every batch is split evenly across the devices, so the image counts are cut to a
        multiple of the device count (at most devices - 1 images dropped); with several
        processes each takes every N-th image.

        Args:
            split: the dict of ``train.prepare_data`` (x_train, y_train, x_val, y_val, ...).

        Returns:
            The same dict with the training and validation arrays cut and sharded.
        """
        if not self.active:
            return split
        step = len(self.devices)
        result = dict(split)
        for part in ("train", "val"):
            count = len(split[f"x_{part}"]) // step * step
            if count == 0:
                raise ValueError(
                    f"Data-parallel training over {step} devices needs at least {step} "
                    f"{part} images; got {len(split[f'x_{part}'])}."
                )
            for name in (f"x_{part}", f"y_{part}"):
                result[name] = split[name][:count][self.process_id :: self.num_processes]
        return result

    def local_batch_size(self, batch_size: int | None) -> int | None:
        """Images per step that this process feeds (the global batch over the processes)."""
        if batch_size is None:
            return None
        return batch_size // self.num_processes

    def describe(self) -> dict:
        """What meta.json records about the distribution."""
        return {
            "strategy": self.strategy,
            "devices": list(self.devices),
            "num_processes": self.num_processes,
            "process_id": self.process_id,
        }

    @contextmanager
    def paused(self):
        """Runs a block on this process's first device, outside the distribution.

        Used for the final test measurement: predicting with a replicated model needs no
        splitting, and a test set of any size works (a split batch must divide evenly).
        """
        if not self.active:
            yield
            return
        import keras

        current = keras.distribution.distribution()
        keras.distribution.set_distribution(None)
        try:
            yield
        finally:
            keras.distribution.set_distribution(current)


def check_strategy(strategy: str, backend: str) -> None:
    """Refuses an unknown strategy, or data-parallel on a backend Keras cannot distribute."""
    strategy = strategy or "none"
    if strategy not in STRATEGIES:
        raise ValueError(f"Unknown --distribute '{strategy}'. Available: {', '.join(STRATEGIES)}.")
    if strategy != "none" and backend not in SUPPORTED_BACKENDS:
        raise ValueError(
            f"--distribute {strategy} needs the JAX backend; this run uses '{backend}'. "
            "Keras 3's distribution API (keras.distribution) is implemented for JAX only "
            "(TensorFlow's is an unfinished prototype, PyTorch has none). "
            "Run with --backend jax (pip install 'mnistlab[jax]')."
        )


def multi_host_settings() -> dict | None:
    """Keras's multi-process variables from the environment, or None on a single host."""
    present = [name for name in HOST_ENV if os.environ.get(name)]
    if not present:
        return None
    if len(present) != len(HOST_ENV):
        missing = ", ".join(name for name in HOST_ENV if name not in present)
        raise ValueError(
            f"A multi-host run needs all of {', '.join(HOST_ENV)}; missing: {missing}. "
            "See docs/scaling.md for a 2-host example."
        )
    return {
        "job_addresses": os.environ[HOST_ENV[0]],
        "num_processes": int(os.environ[HOST_ENV[1]]),
        "process_id": int(os.environ[HOST_ENV[2]]),
    }


_initialized_hosts = None  # jax.distributed can be initialised once per process


@contextmanager
def scope(strategy: str = "none", config=None):
    """Sets the Keras distribution for the block and yields its Plan; restores it after.

    Args:
        strategy: "none" (one device) or "data-parallel" (split every batch across devices).
        config: the run's TrainConfig; its batch_size (global images per step) must divide
            evenly over the devices.

    Returns:
        A context manager yielding a Plan (``Plan().active`` is False for "none").

    Example:
        >>> with scope("data-parallel", TrainConfig(batch_size=200)) as plan:  # doctest: +SKIP
        ...     model = create_model("cnn")   # variables replicated on every device
        ...     model.fit(x, y, batch_size=plan.local_batch_size(200))
    """
    global _initialized_hosts

    strategy = strategy or "none"
    if strategy == "none":
        yield Plan()
        return
    keras = load_keras()
    check_strategy(strategy, keras.backend.backend())
    hosts = multi_host_settings()
    if hosts and _initialized_hosts is None:
        keras.distribution.initialize(**hosts)
        _initialized_hosts = hosts
    devices = tuple(keras.distribution.list_devices())
    processes = hosts["num_processes"] if hosts else 1
    batch_size = config.batch_size if config else len(devices)
    if processes > 1 and config and config.augment != "none":
        raise ValueError(
            f"augment='{config.augment}' cannot be split over {processes} hosts yet: each host "
            "would feed whole batches. Use augment='none' across hosts, or one host."
        )
    if batch_size % len(devices):
        raise ValueError(
            f"batch_size={batch_size} does not split evenly over {len(devices)} devices "
            f"({', '.join(devices)}). Choose a multiple of {len(devices)}."
        )
    plan = Plan(strategy, devices, processes, hosts["process_id"] if hosts else 0)
    # Each process feeds its own shard of the data, so Keras must not shard it again.
    distribution = keras.distribution.DataParallel(
        devices=list(devices), auto_shard_dataset=processes == 1
    )
    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(distribution)
    try:
        yield plan
    finally:
        keras.distribution.set_distribution(previous)
