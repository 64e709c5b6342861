"""Learning-rate schedules, chosen by name in TrainConfig.schedule."""

from __future__ import annotations

import keras

WARMUP_FRACTION = 0.25  # share of all steps spent rising to the peak rate (one-cycle)
START_DIVISOR = 25.0  # one-cycle starts at peak / 25 ...
FINAL_DIVISOR = 1e3  # ... and ends at peak / 1000
EXPONENTIAL_DECAY_PER_EPOCH = 0.8  # exponential schedule: rate *= 0.8 after every epoch


@keras.saving.register_keras_serializable(package="mnistlab")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to the peak rate, then cosine annealing down to peak / FINAL_DIVISOR.

    Args:
        peak: the highest learning rate, reached after warmup_steps.
        total_steps: training steps in the whole run (epochs * steps per epoch).
        warmup_steps: steps of the linear rise.
    """

    def __init__(self, peak: float, total_steps: int, warmup_steps: int):
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.warmup_steps = max(1, int(warmup_steps))

    def __call__(self, step):
        from keras import ops

        step = ops.cast(step, "float32")
        start = self.peak / START_DIVISOR
        final = self.peak / FINAL_DIVISOR
        rising = start + (self.peak - start) * step / self.warmup_steps
        progress = ops.clip(
            (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps), 0.0, 1.0
        )
        falling = final + (self.peak - final) * 0.5 * (1.0 + ops.cos(3.141592653589793 * progress))
        return ops.where(step < self.warmup_steps, rising, falling)

    def get_config(self):
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
        }


def make_schedule(config, steps_per_epoch: int):
    """Returns a float or a LearningRateSchedule for Adam, as config.schedule says."""
    if config.schedule == "constant":
        return config.learning_rate
    if config.schedule == "onecycle":
        total = config.epochs * steps_per_epoch
        return OneCycle(config.learning_rate, total, WARMUP_FRACTION * total)
    if config.schedule == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(
            config.learning_rate,
            decay_steps=steps_per_epoch,
            decay_rate=EXPONENTIAL_DECAY_PER_EPOCH,
            staircase=True,
        )
    raise ValueError(
        f"Unknown schedule '{config.schedule}'. Available: constant, onecycle, exponential."
    )
