"""Choosing the Keras backend, which Keras reads once, when it is first imported."""

from __future__ import annotations

import os
import sys

from mnistlab.config import BACKEND_ENV, BACKENDS, DEFAULT_BACKEND, ONEDNN_DEFAULT, ONEDNN_ENV


def use_backend(name: str | None, model: str | None = None) -> str:
    """Selects the Keras backend before Keras is imported; returns the backend in force.

    Args:
        name: "tensorflow", "jax", "torch", or None for $KERAS_BACKEND, else the default.
        model: the one registered network this process will train, if that is known (the
            command line knows it): on TensorFlow, its ``ModelSpec.onednn`` turns the oneDNN
            kernels on or off (faster for the CNNs, slower for the MLP). None or an unknown
            name: on, which suits most networks, as a process that trains several can have only
            one setting. The user's own setting of the variable wins.

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
    chosen = name or os.environ.get(BACKEND_ENV) or DEFAULT_BACKEND
    if chosen not in BACKENDS:
        raise ValueError(
            f"{BACKEND_ENV}='{chosen}' is not a backend. Available: {', '.join(BACKENDS)}."
        )
    os.environ[BACKEND_ENV] = chosen
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter quiet
    if chosen == "tensorflow" and "tensorflow" not in sys.modules:  # the faster kernels (config)
        os.environ.setdefault(ONEDNN_ENV, ONEDNN_DEFAULT if wants_onednn(model) else "0")
    return chosen


def wants_onednn(model: str | None) -> bool:
    """Whether TensorFlow's oneDNN kernels are the faster ones for this network (models.py)."""
    from mnistlab.models import REGISTRY  # registers the builders; imports no Keras

    spec = REGISTRY.get(model) if model else None
    return spec is None or spec.onednn


def keras():
    """Imports Keras on the chosen backend and returns the module."""
    use_backend(None)
    import keras as keras_module

    return keras_module
