"""On-the-fly data augmentation for training (TrainConfig.augment).

Every batch is warped afresh: a random rotation, zoom and shift ("affine"), plus a smooth
random displacement field ("elastic", Simard et al. 2003).

Both run as a TensorFlow input pipeline (tf.data: shuffle, gather, warp, in parallel and
prefetched), with no Python per batch; any Keras backend trains from it. "affine" warps with
one bilinear projective transform per batch; "elastic" needs a displacement field per pixel,
which that op cannot take, so it smooths random noise with two small matrix products and
resamples with gathers (``graph_field_warp``). A first version ran "elastic" as a numpy
generator: `best`'s epochs took 150 s on the 2-core CPU (the Python generator kept the
process at 1.4 cores); through this pipeline their medians were 57-69 s over 4 runs, where
"affine" runs had 65-71 s (benchmarks/results/best-elastic17.md, best-x4.md). Where
TensorFlow is not installed (a JAX or PyTorch GPU machine set up without it), both run
through that numpy generator (``random_warp``): the same distribution of warps, other draws.
The TensorFlow op warps a batch of 128 in about a fifth of the numpy warp's time, and the
pipeline needs no Python per batch; what that does to a whole epoch is measured by
augment_probe.py (benchmarks/results/augment_probe.md), on a shared CPU whose
speed varied by half between rounds.

``affine_warp`` (numpy) is the reference geometry; ``graph_warp`` and ``graph_field_warp`` are
the same transform as TensorFlow ops and are tested against it.

Deterministic: batch k of epoch e is drawn from random numbers seeded with (seed, e, k) and
the order of epoch e from (seed, e), so the same seed gives the same batches, and a resumed
run continues with the batches an uninterrupted run would have seen.

The probes named below (augment_probe.py) were one-off scripts, deleted once they had
answered their question; docs/accuracy.md gives each one's finding and the commit to read it from.
"""

from __future__ import annotations

import numpy as np

from mnistlab.core.config import TrainConfig

ROTATION = 10.0  # degrees: angles drawn uniformly in [-10, 10]
ZOOM = 0.10  # scale drawn uniformly in [0.9, 1.1]
SHIFT = 2.5  # pixels: shifts drawn uniformly in [-2.5, 2.5] along each axis
# the elastic field's defaults (TrainConfig.elastic_alpha and elastic_sigma set them per run)
ELASTIC_ALPHA = TrainConfig.elastic_alpha  # pixels per unit of smoothed noise (Simard's alpha)
ELASTIC_SIGMA = TrainConfig.elastic_sigma  # pixels: width of the Gaussian that smooths the noise


def affine_warp(images, angles=0.0, scales=1.0, shifts=(0.0, 0.0), displacement=None):
    """Rotates, zooms and shifts a batch of images about their centre (bilinear, zero fill).

    Args:
        images: (N, H, W) or (N, H, W, 1) float array.
        angles: degrees counter-clockwise, a scalar or (N,); 90 gives np.rot90(image).
        scales: zoom factors, a scalar or (N,); 2 doubles the size of a digit.
        shifts: pixels, (dy, dx) or (N, 2); positive dy moves the digit down, dx right.
        displacement: optional (N, 2, H, W) extra source offsets in pixels (elastic warp).

    Returns:
        float32 array of the shape of ``images``; pixels from outside the frame are 0.

    Example:
        >>> image = np.zeros((1, 5, 5)); image[0, 2, 2] = 1
        >>> affine_warp(image, shifts=(1, 0))[0, 3, 2]
        1.0
    """
    images = np.asarray(images, dtype=np.float32)
    shape = images.shape
    if images.ndim == 4:
        images = images[..., 0]
    count, height, width = images.shape
    angles = np.broadcast_to(np.radians(np.asarray(angles, np.float32)), (count,))
    scales = np.broadcast_to(np.asarray(scales, np.float32), (count,))
    shifts = np.broadcast_to(np.asarray(shifts, np.float32), (count, 2))
    center_y, center_x = (height - 1) / 2.0, (width - 1) / 2.0
    # Output pixel (y, x) reads the source at the inverse transform of its centred position.
    y = (np.arange(height, dtype=np.float32) - center_y)[None, :, None]  # (1, H, 1)
    x = (np.arange(width, dtype=np.float32) - center_x)[None, None, :]  # (1, 1, W)
    y = y - shifts[:, 0, None, None]  # (N, H, 1)
    x = x - shifts[:, 1, None, None]  # (N, 1, W)
    cos = (np.cos(angles) / scales)[:, None, None]
    sin = (np.sin(angles) / scales)[:, None, None]
    source_y = cos * y + sin * x + center_y  # (N, H, W)
    source_x = -sin * y + cos * x + center_x
    if displacement is not None:
        source_y = source_y + displacement[:, 0]
        source_x = source_x + displacement[:, 1]
    warped = _bilinear(images, source_y, source_x)
    return warped.reshape(shape)


def _bilinear(images, source_y, source_x):
    """Samples (N, H, W) images at fractional (N, H, W) positions; zeros outside the frame."""
    count, height, width = images.shape
    padded = np.zeros((count, height + 2, width + 2), np.float32)  # zero border of 1 pixel
    padded[:, 1:-1, 1:-1] = images
    flat = padded.reshape(count, -1)
    top = np.floor(source_y)
    left = np.floor(source_x)
    weight_y = (source_y - top).reshape(count, -1)
    weight_x = (source_x - left).reshape(count, -1)
    # Indices into the padded image, clipped onto its zero border when outside the frame.
    rows = [np.clip(top + offset, -1, height) + 1 for offset in (0, 1)]
    columns = [np.clip(left + offset, -1, width) + 1 for offset in (0, 1)]

    def gather(row, column):
        index = (row * (width + 2) + column).astype(np.int64).reshape(count, -1)
        return np.take_along_axis(flat, index, axis=1)

    upper = gather(rows[0], columns[0]) * (1 - weight_x) + gather(rows[0], columns[1]) * weight_x
    lower = gather(rows[1], columns[0]) * (1 - weight_x) + gather(rows[1], columns[1]) * weight_x
    return (upper * (1 - weight_y) + lower * weight_y).reshape(count, height, width)


def _gaussian_matrix(size: int, sigma: float) -> np.ndarray:
    """(size, size) matrix that smooths a 1-D signal with a Gaussian (rows sum to 1)."""
    positions = np.arange(size, dtype=np.float32)
    kernel = np.exp(-0.5 * ((positions[:, None] - positions[None, :]) / sigma) ** 2)
    return (kernel / kernel.sum(axis=1, keepdims=True)).astype(np.float32)


def random_warp(
    images,
    rng: np.random.Generator,
    elastic: bool = False,
    alpha: float = ELASTIC_ALPHA,
    sigma: float = ELASTIC_SIGMA,
):
    """Applies a random affine (and optionally elastic) warp to each image of a batch.

    Args:
        images: (N, 28, 28, 1) float32 in [0, 1].
        rng: numpy Generator; the same state gives the same warps.
        elastic: add a smooth random displacement field after the affine warp.
        alpha, sigma: the field's strength and smoothness in pixels (see TrainConfig).

    Returns:
        (N, 28, 28, 1) float32 warped images.
    """
    count, height, width = images.shape[:3]
    angles = rng.uniform(-ROTATION, ROTATION, count)
    scales = rng.uniform(1 - ZOOM, 1 + ZOOM, count)
    shifts = rng.uniform(-SHIFT, SHIFT, (count, 2))
    displacement = None
    if elastic:
        noise = rng.uniform(-1, 1, (count, 2, height, width)).astype(np.float32)
        smooth_rows = _gaussian_matrix(height, sigma)
        smooth_columns = _gaussian_matrix(width, sigma)
        # Separable Gaussian blur as two matrix products: (H,H) @ noise @ (W,W)^T.
        displacement = alpha * (smooth_rows @ noise @ smooth_columns.T)
    return affine_warp(images, angles, scales, shifts, displacement)


def graph_warp(images, angles, scales, shifts):
    """``affine_warp`` as one TensorFlow op (ImageProjectiveTransformV3): same geometry.

    Args:
        images: (N, H, W, 1) float32 tensor; angles, scales: (N,) tensors (degrees, factors);
            shifts: (N, 2) tensor of (dy, dx) pixels.

    Returns:
        (N, H, W, 1) float32 tensor; pixels from outside the frame are 0.
    """
    import tensorflow as tf

    height, width = images.shape[1], images.shape[2]
    center_y, center_x = (height - 1) / 2.0, (width - 1) / 2.0
    radians = angles * (np.pi / 180.0)
    cos, sin = tf.cos(radians) / scales, tf.sin(radians) / scales
    dy, dx = shifts[:, 0], shifts[:, 1]
    zeros = tf.zeros_like(cos)
    # Output pixel (row i, column j) reads the input at (a0 j + a1 i + a2, b0 j + b1 i + b2)
    # as (column, row): affine_warp's inverse map, written out.
    transforms = tf.stack(
        [
            cos,
            -sin,
            center_x - cos * (center_x + dx) + sin * (center_y + dy),
            sin,
            cos,
            center_y - sin * (center_x + dx) - cos * (center_y + dy),
            zeros,
            zeros,
        ],
        axis=1,
    )
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.constant([height, width], tf.int32),
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )


def graph_field_warp(images, angles, scales, shifts, displacement):
    """``affine_warp`` with a displacement field, as TensorFlow ops: same geometry, zero fill.

    Args:
        images: (N, H, W, 1) float32 tensor; angles, scales: (N,) tensors (degrees, factors);
            shifts: (N, 2) tensor of (dy, dx) pixels; displacement: (N, 2, H, W) tensor of
            extra source offsets in pixels (rows, then columns).

    Returns:
        (N, H, W, 1) float32 tensor.
    """
    import tensorflow as tf

    count = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    center_y, center_x = (height - 1) / 2.0, (width - 1) / 2.0
    y = tf.reshape(tf.range(height, dtype=tf.float32) - center_y, (1, height, 1))
    x = tf.reshape(tf.range(width, dtype=tf.float32) - center_x, (1, 1, width))
    y = y - shifts[:, 0, None, None]
    x = x - shifts[:, 1, None, None]
    radians = angles * (np.pi / 180.0)
    cos = (tf.cos(radians) / scales)[:, None, None]
    sin = (tf.sin(radians) / scales)[:, None, None]
    source_y = cos * y + sin * x + center_y + displacement[:, 0]  # (N, H, W)
    source_x = -sin * y + cos * x + center_x + displacement[:, 1]
    # bilinear sampling of the image framed by a zero border, as in _bilinear
    flat = tf.reshape(tf.pad(images[..., 0], [[0, 0], [1, 1], [1, 1]]), (count, -1))
    top, left = tf.floor(source_y), tf.floor(source_x)
    weight_y, weight_x = source_y - top, source_x - left

    def gather(row_offset, column_offset):
        row = tf.clip_by_value(top + row_offset, -1.0, float(height)) + 1
        column = tf.clip_by_value(left + column_offset, -1.0, float(width)) + 1
        index = tf.cast(row * (width + 2) + column, tf.int32)
        return tf.reshape(
            tf.gather(flat, tf.reshape(index, (count, -1)), batch_dims=1), tf.shape(source_y)
        )

    upper = gather(0, 0) * (1 - weight_x) + gather(0, 1) * weight_x
    lower = gather(1, 0) * (1 - weight_x) + gather(1, 1) * weight_x
    return (upper * (1 - weight_y) + lower * weight_y)[..., None]


def smooth_field(
    noise, height: int, width: int, alpha: float = ELASTIC_ALPHA, sigma: float = ELASTIC_SIGMA
):
    """alpha times the (N, 2, H, W) noise blurred by a Gaussian of width sigma, as TF ops."""
    import tensorflow as tf

    rows = tf.constant(_gaussian_matrix(height, sigma))
    columns = tf.constant(_gaussian_matrix(width, sigma))
    blurred = tf.einsum("ij,ncjw,kw->ncik", rows, noise, columns)
    return alpha * blurred


def warp_dataset(config, x, y, initial_epoch: int = 0):
    """Endless tf.data.Dataset of (images, labels) batches, reshuffled and re-warped each epoch.

    Args:
        config: TrainConfig (uses seed, batch_size, augment: "elastic" adds a smooth random
            displacement field, drawn from its own stream, to each affine warp; elastic_alpha
            and elastic_sigma set its strength and smoothness).
        x: (N, 28, 28, 1) float32 images in [0, 1]; y: (N, 10) one-hot labels.
        initial_epoch: first epoch to draw (a resumed run continues where it stopped).

    Returns:
        tf.data.Dataset; batch k of epoch e has rows order_e[k*B:(k+1)*B] of x, each warped by
        a random rotation in [-ROTATION, ROTATION] degrees, zoom in [1-ZOOM, 1+ZOOM] and shift
        in [-SHIFT, SHIFT] pixels per axis.
    """
    import tensorflow as tf

    elastic = config.augment == "elastic"
    height, width = x.shape[1], x.shape[2]
    count, batch = len(x), config.batch_size
    images, labels = tf.constant(x, tf.float32), tf.constant(y)
    seed = tf.constant(config.seed, tf.int64)

    def warp(rows, epoch, step):
        # (epoch, step) -> one stateless seed: the same batch whatever ran before it
        key = tf.stack([seed, epoch * 1_000_003 + step])
        draws = tf.random.stateless_uniform((tf.shape(rows)[0], 4), seed=key)
        angles = ROTATION * (2 * draws[:, 0] - 1)
        scales = 1 + ZOOM * (2 * draws[:, 1] - 1)
        shifts = SHIFT * (2 * draws[:, 2:] - 1)
        if not elastic:
            batch_images = graph_warp(tf.gather(images, rows), angles, scales, shifts)
            return batch_images, tf.gather(labels, rows)
        # the field's noise: a stream of its own (negative keys), the affine draws unchanged
        noise_key = tf.stack([seed, -1 - (epoch * 1_000_003 + step)])
        noise = tf.random.stateless_uniform(
            (tf.shape(rows)[0], 2, height, width), seed=noise_key, minval=-1.0, maxval=1.0
        )
        displacement = smooth_field(
            noise, height, width, config.elastic_alpha, config.elastic_sigma
        )
        batch_images = graph_field_warp(
            tf.gather(images, rows), angles, scales, shifts, displacement
        )
        return batch_images, tf.gather(labels, rows)

    def epoch_batches(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count, dtype=tf.int64), seed=tf.stack([seed, epoch])
        )
        rows = tf.data.Dataset.from_tensor_slices(order).batch(batch)
        steps = tf.data.Dataset.range(-(-count // batch))
        return tf.data.Dataset.zip((rows, steps)).map(
            lambda batch_rows, step: warp(batch_rows, epoch, step),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )

    epochs = tf.data.Dataset.range(initial_epoch, 2**62)
    return epochs.flat_map(epoch_batches).prefetch(tf.data.AUTOTUNE)


def tensorflow_available() -> bool:
    """Whether the tf.data pipeline can run (TensorFlow importable)."""
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return False
    return True


def augmented_batches(config, x, y, initial_epoch: int = 0):
    """Endless iterator of numpy (images, labels) batches, reshuffled and re-warped every epoch.

    Iterates ``warp_dataset`` ("affine" or "elastic"); numpy warps (``random_warp``) where
    TensorFlow is missing.

    Args:
        config: TrainConfig (uses seed, batch_size, augment).
        x: (N, 28, 28, 1) float32 images in [0, 1]; y: (N, 10) one-hot labels.
        initial_epoch: first epoch to draw (a resumed run continues where it stopped).

    Yields:
        (images, labels) of batch_size rows (the last batch of an epoch may be shorter).
    """
    if tensorflow_available():
        yield from warp_dataset(config, x, y, initial_epoch).as_numpy_iterator()
    steps = int(np.ceil(len(x) / config.batch_size))
    epoch = initial_epoch
    while True:
        order = np.random.default_rng([config.seed, epoch]).permutation(len(x))
        for step in range(steps):
            rows = order[step * config.batch_size : (step + 1) * config.batch_size]
            rng = np.random.default_rng([config.seed, epoch, step])
            images = random_warp(
                x[rows],
                rng,
                elastic=config.augment == "elastic",
                alpha=config.elastic_alpha,
                sigma=config.elastic_sigma,
            )
            yield images, y[rows]
        epoch += 1


def training_inputs(config, x, y, initial_epoch: int = 0) -> dict:
    """What ``model.fit`` trains on, with or without augmentation.

    Args:
        config: TrainConfig; ``augment`` is "none", "affine" or "elastic".
        x: (N, 28, 28, 1) float32 images in [0, 1]; y: (N, 10) one-hot labels.
        initial_epoch: the epoch training starts from (non-zero when resuming).

    Returns:
        dict: "args" (positional arguments for fit), "batch_size", "steps_per_epoch".
    """
    if config.augment == "none":
        return {"args": (x, y), "batch_size": config.batch_size, "steps_per_epoch": None}
    if config.augment in ("affine", "elastic"):
        source = (
            warp_dataset(config, x, y, initial_epoch)
            if tensorflow_available()
            else augmented_batches(config, x, y, initial_epoch)
        )
        return {
            "args": (source,),
            "batch_size": None,
            "steps_per_epoch": int(np.ceil(len(x) / config.batch_size)),
        }
    raise ValueError(f"Unknown augment '{config.augment}'. Available: none, affine, elastic.")
