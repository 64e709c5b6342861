"""Distillation: train one network on a teacher's probabilities instead of the bare labels.

A teacher is any finished run folder: one network, or an ensemble that ``mnistlab ensemble``
averaged into one model. A target is ``teacher_weight`` times the teacher's probabilities plus
the rest of the one-hot label. What the teacher answers for is ``teacher_sees``:

- "images": before the first epoch the teacher predicts every training image once, and every
  warped copy that augmentation makes of an image carries that image's target. One pass of a
  33-network ensemble over 59,000 images is minutes on two cores. The targets are kept in the
  run folder (``teacher.npy``), so ``--resume`` trains on them without the teacher.
- "warps": the teacher answers every batch as augmentation draws it, so a digit warped towards
  another has the teacher's answer for the warp; that is a forward pass of the teacher a step
  (for a 33-network teacher, many times the student's step), and a resume needs the teacher.

The student is validated and tested on the true labels.
"""

from __future__ import annotations

import os

import numpy as np

from mnistlab.core import runs

TARGETS_FILE = "teacher.npy"  # the teacher's probabilities on the run's training images
PREDICT_BATCH = 500


def check_teacher(folder: str) -> None:
    """A one-line ValueError unless ``folder`` holds a finished run's model.keras."""
    if not os.path.isdir(folder):
        raise ValueError(f"No teacher run folder '{folder}'.")
    if not os.path.exists(os.path.join(folder, runs.MODEL_FILE)):
        raise ValueError(
            f"Teacher '{folder}' holds no {runs.MODEL_FILE}: name a finished run or ensemble."
        )


def load_teacher(folder: str):
    """The teacher's network, for predictions only (no optimizer state), once checked."""
    from mnistlab.models.saved import load_model

    check_teacher(folder)
    return load_model(os.path.join(folder, runs.MODEL_FILE), compile=False)


def teacher_probabilities(teacher_folder: str, x) -> np.ndarray:
    """The teacher's probabilities on images ``x`` (model input), float32 rows that sum to 1."""
    teacher = load_teacher(teacher_folder)
    probabilities = np.asarray(teacher.predict(x, batch_size=PREDICT_BATCH, verbose=0), np.float32)
    return probabilities / probabilities.sum(axis=1, keepdims=True)


def soft_targets(labels, probabilities, weight: float) -> np.ndarray:
    """``weight`` of the teacher's probabilities, ``1 - weight`` of the one-hot ``labels``.

    Example:
        >>> soft_targets(np.array([[0.0, 1.0]]), np.array([[0.4, 0.6]]), 0.5).tolist()
        [[0.2, 0.8]]
    """
    labels = np.asarray(labels, np.float32)
    return (weight * np.asarray(probabilities, np.float32) + (1 - weight) * labels).astype(
        np.float32
    )


def distilled_targets(config, folder: str, x, labels) -> np.ndarray:
    """The training targets of a run with ``config.teacher``: from the run folder's
    teacher.npy if an earlier start of this run wrote it, else from the teacher, saved there."""
    path = os.path.join(folder, TARGETS_FILE)
    probabilities = np.load(path) if os.path.exists(path) else None
    if probabilities is None or probabilities.shape != labels.shape:
        if config.verbose:
            print(f"Teacher {config.teacher} predicts the {len(x):,} training images.", flush=True)
        probabilities = teacher_probabilities(config.teacher, x)
        partial = path + ".partial.npy"
        np.save(partial, probabilities)
        os.replace(partial, path)
    return soft_targets(labels, probabilities, config.teacher_weight)


def asking_teacher(inputs: dict, config) -> dict:
    """``training_inputs``'s result with each augmented batch's labels replaced by the
    teacher's answer for that batch (``teacher_sees`` "warps"); unaugmented inputs, whose
    only views are the images, go through ``distilled_targets`` instead."""
    teacher = load_teacher(config.teacher)
    (source,) = inputs["args"]
    batches = source.as_numpy_iterator() if hasattr(source, "as_numpy_iterator") else source

    def answered():
        for images, labels in batches:
            probabilities = np.asarray(teacher.predict_on_batch(images), np.float32)
            yield images, soft_targets(labels, probabilities, config.teacher_weight)

    return {**inputs, "args": (answered(),)}
