"""Choosing the Keras backend, which Keras reads once, when it is first imported, and the
settings that depend on it: TensorFlow's kernels and the precision ``auto`` stands for.

The per-network choices come from a network's ``models.registry.ModelSpec``, which the callers
pass in (``network``): this module sits below the models and knows no registry."""

from __future__ import annotations

import os
import sys

from mnistlab.core.config import (
    BACKEND_ENV,
    BACKENDS,
    DEFAULT_BACKEND,
    JAX_YNN_DEFAULT,
    JAX_YNN_FLAG,
    JAX_YNN_SINCE,
    ONEDNN_DEFAULT,
    ONEDNN_ENV,
    PRECISIONS,
    XLA_FLAGS_ENV,
)
from mnistlab.core.quiet import quiet_backends
from mnistlab.core.runs import cpu_model_and_flags, tensorflow_onednn


def use_backend(name: str | None, network=None, tune: bool = True) -> str:
    """Selects the Keras backend before Keras is imported; returns the backend in force.

    Args:
        name: "tensorflow", "jax", "torch", or None for $KERAS_BACKEND, else the default
            (``default_backend``: the network's own where it names one, else TensorFlow).
        network: the ModelSpec of the network this process will train, if that is known
            (the command line knows it): its ``backend`` is the default backend where it
            is installed; and where ``tune`` is true (one network a process, as on the
            command line), on TensorFlow its ``onednn`` turns the oneDNN kernels on or off
            (faster for the CNNs, slower for the MLP), and on JAX its ``jax_ynn`` hands XLA's
            matrix products to YNNPACK or not (likewise). None, or ``tune`` false: on, which
            suits most networks, as a process that trains several can have only one setting. The user's own setting of the variable wins,
            and so does the first call's choice in a process: a later call (``train``'s, after
            the command line's for its network) keeps the settings that call made.

    Raises:
        ValueError: for an unknown name, or when Keras was already imported with another
            backend in this process (Keras cannot switch; start a new process).
    """
    if name is not None and name not in BACKENDS:
        raise ValueError(f"Unknown backend '{name}'. Available: {', '.join(BACKENDS)}.")
    if "keras" in sys.modules:
        import keras

        current = keras.backend.backend()
        if name is not None and name != current:
            raise ValueError(
                f"Keras is already running on '{current}' in this process and cannot switch to "
                f"'{name}'. Set {BACKEND_ENV}={name} before importing keras, or use the CLI "
                f"(mnistlab ... --backend {name})."
            )
        return current
    chosen = name or os.environ.get(BACKEND_ENV) or default_backend(network)
    if chosen not in BACKENDS:
        raise ValueError(
            f"{BACKEND_ENV}='{chosen}' is not a backend. Available: {', '.join(BACKENDS)}."
        )
    os.environ[BACKEND_ENV] = chosen
    quiet_backends()  # TensorFlow's, XLA's and absl's logs stay off the terminal (core.quiet)
    if chosen in _SET_UP:  # an earlier call in this process chose the settings, for its network
        return chosen
    _SET_UP.add(chosen)
    tuned = network if tune else None  # None: the kernels that suit most networks
    if chosen == "tensorflow" and "tensorflow" not in sys.modules:  # the faster kernels (config)
        os.environ.setdefault(ONEDNN_ENV, ONEDNN_DEFAULT if wants_onednn(tuned) else "0")
    if chosen == "jax" and "jax" not in sys.modules:  # XLA's faster matrix products (config)
        flags = os.environ.get(XLA_FLAGS_ENV, "")
        if JAX_YNN_FLAG not in flags and wants_ynn(tuned) and jaxlib_at_least(JAX_YNN_SINCE):
            os.environ[XLA_FLAGS_ENV] = f"{flags} {JAX_YNN_FLAG}={JAX_YNN_DEFAULT}".strip()
    return chosen


# the backends whose settings use_backend has chosen in this process (the first call's network)
_SET_UP: set[str] = set()


def default_backend(network, installed=None) -> str:
    """The backend a process that trains ``network`` alone gets where the user names none: the
    network's ``ModelSpec.backend`` (the one that ran its main job fastest,
    benchmarks/main_job.py) where that is installed, else config.DEFAULT_BACKEND.

    Args:
        network: a network's ModelSpec, or None (then the default).
        installed: a function telling whether a backend is installed (tests pass their own);
            None: ``is_installed``.

    Example:
        >>> default_backend(None)
        'tensorflow'
    """
    preferred = getattr(network, "backend", None)
    if preferred is None:
        return DEFAULT_BACKEND
    return preferred if (installed or is_installed)(preferred) else DEFAULT_BACKEND


def is_installed(backend: str) -> bool:
    """Whether Python finds the backend's package (each has the backend's own name)."""
    import importlib.util

    return importlib.util.find_spec(backend) is not None


def jaxlib_at_least(version: tuple[int, ...]) -> bool:
    """Whether the installed jaxlib is this version or later (False if it is not installed).

    Example:
        >>> jaxlib_at_least((10**6,))  # no such jaxlib (yet)
        False
    """
    from importlib import metadata

    try:
        installed = metadata.version("jaxlib")
    except metadata.PackageNotFoundError:
        return False
    parts = []
    for part in installed.split(".")[: len(version)]:
        digits = "".join(char for char in part if char.isdigit()) or "0"
        parts.append(int(digits))
    return tuple(parts) >= tuple(version)


def wants_onednn(network) -> bool:
    """Whether TensorFlow's oneDNN kernels are the faster ones for this network (a ModelSpec,
    or None: on, which suits most networks)."""
    return getattr(network, "onednn", True)


def wants_ynn(network) -> bool:
    """Whether YNNPACK's matrix products are the faster ones on JAX for this network."""
    return getattr(network, "jax_ynn", True)


def keras():
    """Imports Keras on the chosen backend and returns the module."""
    use_backend(None)
    import keras as keras_module

    return keras_module


# CPU flags (/proc/cpuinfo) of bfloat16 arithmetic in hardware, which oneDNN's kernels use
BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")


def resolve_precision(precision: str, network) -> str:
    """The precision a run of ``network`` (a ModelSpec) trains in when its config says
    ``precision``.

    "auto" is a bfloat16 precision where one was measured faster at the same test error, and
    float32 elsewhere. The CPU must compute bfloat16 in hardware (``bfloat16_in_hardware``),
    and then: mixed_bfloat16 on TensorFlow with oneDNN's kernels (without them a bfloat16 cnn
    epoch took 5x as long) for networks whose ``ModelSpec.bfloat16`` says their error holds in
    it (results/reproduce-bf16.md); bfloat16_products on the backends that a network's
    ``ModelSpec.bfloat16_products`` names (the MLP on JAX and PyTorch, cnn on PyTorch:
    results/reproduce-*-bf16-products.md). Other values are returned as they are,
    but bfloat16_products, which only JAX and PyTorch compute, is refused on TensorFlow.

    Example:
        >>> resolve_precision("float32", None)
        'float32'
    """
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision '{precision}'. Available: {', '.join(PRECISIONS)}.")
    backend = use_backend(None)
    if precision == "bfloat16_products" and backend not in ("jax", "torch"):
        raise ValueError(
            f"Precision bfloat16_products is computed on the JAX and PyTorch backends only, not on "
            f"{backend}; use --backend jax or torch, or --precision mixed_bfloat16 or float32."
        )
    if precision != "auto":
        return precision
    if backend in getattr(network, "bfloat16_products", ()):
        return "bfloat16_products" if bfloat16_in_hardware() else "float32"
    if not getattr(network, "bfloat16", False) or backend != "tensorflow":
        return "float32"
    return "mixed_bfloat16" if tensorflow_onednn() and bfloat16_in_hardware() else "float32"


def bfloat16_in_hardware(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU has bfloat16 instructions (AVX-512 BF16 or AMX; x86 only for now)."""
    _, flags = cpu_model_and_flags(cpuinfo)
    return any(flag in flags for flag in BFLOAT16_FLAGS)
