"""On-the-fly data augmentation for training (TrainConfig.augment)."""

from __future__ import annotations


def training_inputs(config, x, y) -> dict:
    """What ``model.fit`` trains on, with or without augmentation.

    Args:
        x: (N, 28, 28, 1) float32 images in [0, 1]; y: (N, 10) one-hot labels.

    Returns:
        dict: "args" (positional arguments for fit), "batch_size", "steps_per_epoch".
    """
    if config.augment == "none":
        return {"args": (x, y), "batch_size": config.batch_size, "steps_per_epoch": None}
    raise ValueError(f"augment='{config.augment}' is not available yet.")
