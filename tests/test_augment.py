"""Augmentation: what it must preserve (labels, ink in the frame, determinism) and change."""

import sys

import numpy as np
import pytest

from mnistlab.core import runs
from mnistlab.core.config import TrainConfig
from mnistlab.training.augment import (
    ELASTIC_ALPHA,
    ELASTIC_SIGMA,
    SHIFT,
    ZOOM,
    affine_warp,
    augmented_batches,
    graph_field_warp,
    graph_warp,
    random_warp,
    smooth_field,
    tensorflow_available,
    training_inputs,
)


def disk_images(count, radius=8.0, seed=0):
    """(count, 28, 28, 1) images of a bright disk near the centre: a digit's size and ink."""
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[0:28, 0:28]
    images = np.zeros((count, 28, 28, 1), np.float32)
    for index in range(count):
        center = 13.5 + rng.uniform(-1, 1, 2)
        distance = np.hypot(rows - center[0], columns - center[1])
        images[index, ..., 0] = np.clip(radius - distance, 0, 1)  # anti-aliased edge
    return images


def test_integer_shift_matches_a_roll_of_the_padded_image():
    image = np.random.default_rng(1).random((1, 28, 28)).astype(np.float32)
    for dy, dx in [(2, 0), (0, -3), (-1, 2), (3, 3)]:
        padded = np.pad(image[0], 4)  # zeros enter from outside the frame
        reference = np.roll(padded, (dy, dx), axis=(0, 1))[4:-4, 4:-4]
        np.testing.assert_allclose(affine_warp(image, shifts=(dy, dx))[0], reference, atol=1e-6)


@pytest.mark.parametrize("quarter_turns", [1, 2, 3])
def test_quarter_turns_match_rot90(quarter_turns):
    images = np.random.default_rng(2).random((2, 28, 28)).astype(np.float32)
    rotated = affine_warp(images, angles=90.0 * quarter_turns)
    np.testing.assert_allclose(rotated, np.rot90(images, quarter_turns, axes=(1, 2)), atol=1e-5)


def test_zoom_by_two_doubles_a_square_about_the_centre():
    image = np.zeros((1, 28, 28), np.float32)
    image[0, 12:16, 12:16] = 1.0  # 4x4 square centred at 13.5
    zoomed = affine_warp(image, scales=2.0)[0]
    assert zoomed[10:18, 10:18].min() > 0.49 and zoomed.sum() == pytest.approx(64, rel=0.1)


def textured_images_and_warps(count, rng):
    """Digit-sized textured blobs and float32 warps wider than the recipe's (30°, 20%, 4 px)."""
    images = disk_images(count, radius=6.0) * rng.random((count, 28, 28, 1)).astype(np.float32)
    angles = rng.uniform(-30, 30, count).astype(np.float32)
    scales = rng.uniform(0.8, 1.2, count).astype(np.float32)
    shifts = rng.uniform(-4, 4, (count, 2)).astype(np.float32)
    return images, angles, scales, shifts


def test_graph_warp_is_the_numpy_warp():
    """The TensorFlow op the training pipeline uses against the reference geometry."""
    images, angles, scales, shifts = textured_images_and_warps(32, np.random.default_rng(8))
    expected = affine_warp(images, angles, scales, shifts)
    got = np.asarray(graph_warp(images, angles, scales, shifts))
    np.testing.assert_allclose(got, expected, atol=1e-4)
    quarter = np.asarray(graph_warp(images, np.full(32, 90.0, np.float32), np.ones(32, np.float32),
                                    np.zeros((32, 2), np.float32)))  # fmt: skip
    np.testing.assert_allclose(quarter, np.rot90(images, 1, axes=(1, 2)), atol=1e-5)


def test_graph_field_warp_is_the_numpy_warp_with_a_displacement_field():
    """The elastic pipeline's TensorFlow resampling against the reference, field included."""
    rng = np.random.default_rng(9)
    images, angles, scales, shifts = textured_images_and_warps(16, rng)
    field = rng.uniform(-6, 6, (16, 2, 28, 28)).astype(np.float32)  # reaches outside the frame
    expected = affine_warp(images, angles, scales, shifts, displacement=field)
    got = np.asarray(graph_field_warp(images, angles, scales, shifts, field))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # a uniform field of (1, -2) is a shift of (-1, 2): the reference's integer shift
    uniform = np.broadcast_to(np.array([1.0, -2.0], np.float32)[None, :, None, None], field.shape)
    none = np.zeros(16, np.float32)
    moved = graph_field_warp(images, none, none + 1, np.zeros((16, 2), np.float32), uniform)
    np.testing.assert_allclose(np.asarray(moved), affine_warp(images, shifts=(-1, 2)), atol=1e-5)


def test_smooth_field_is_a_separable_gaussian_blur():
    noise = np.random.default_rng(10).uniform(-1, 1, (3, 2, 28, 28)).astype(np.float32)
    offsets = np.arange(-27, 28)
    kernel = np.exp(-0.5 * (offsets / ELASTIC_SIGMA) ** 2)
    # the hand blur: a Gaussian renormalised over the pixels inside the frame
    expected = np.zeros_like(noise)
    for i in range(28):
        for j in range(28):
            rows = np.clip(i + offsets, 0, 27)[(i + offsets >= 0) & (i + offsets < 28)]
            columns = np.clip(j + offsets, 0, 27)[(j + offsets >= 0) & (j + offsets < 28)]
            row_weights = kernel[(i + offsets >= 0) & (i + offsets < 28)]
            column_weights = kernel[(j + offsets >= 0) & (j + offsets < 28)]
            weights = np.outer(row_weights, column_weights)
            window = noise[:, :, rows][:, :, :, columns]
            expected[:, :, i, j] = (window * weights).sum(axis=(2, 3)) / weights.sum()
    got = np.asarray(smooth_field(noise, 28, 28))
    np.testing.assert_allclose(got, ELASTIC_ALPHA * expected, atol=1e-4)
    half = np.asarray(smooth_field(noise, 28, 28, alpha=ELASTIC_ALPHA / 2, sigma=ELASTIC_SIGMA))
    np.testing.assert_allclose(half, ELASTIC_ALPHA / 2 * expected, atol=1e-4)


def test_elastic_alpha_sets_the_strength_of_the_pipeline_field():
    """Same seed, alpha 0: the affine batch exactly; alpha halved: smaller local moves."""
    x = disk_images(64, radius=7.0)
    y = np.eye(10, dtype=np.float32)[np.arange(64) % 10]
    batch = {}
    for alpha in (0.0, 17.0, 34.0):
        cfg = config(seed=5, augment="elastic", elastic_alpha=alpha)
        (batch[alpha], _), = first_batches(cfg, x, y, 1)  # fmt: skip
    (affine, _), = first_batches(config(seed=5), x, y, 1)  # fmt: skip
    np.testing.assert_allclose(batch[0.0], affine, atol=1e-5)
    assert 0 < np.abs(batch[17.0] - affine).mean() < np.abs(batch[34.0] - affine).mean()


def test_identity_leaves_images_unchanged():
    images = np.random.default_rng(3).random((4, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(affine_warp(images), images, atol=1e-6)


def test_random_warp_keeps_the_digit_in_the_frame():
    images = disk_images(64, radius=7.0)
    warped = random_warp(images, np.random.default_rng(4))
    assert warped.shape == images.shape and warped.dtype == np.float32
    ink_ratio = warped.sum(axis=(1, 2, 3)) / images.sum(axis=(1, 2, 3))
    assert ink_ratio.min() > (1 - ZOOM) ** 2 - 0.03  # no ink pushed out of the frame
    assert ink_ratio.max() < (1 + ZOOM) ** 2 + 0.03  # only the zoom changes the ink
    border = np.concatenate([warped[:, :2].ravel(), warped[:, -2:].ravel()])
    assert border.max() == 0  # a digit-sized disk never reaches the edge


def test_elastic_adds_a_local_distortion_on_top_of_the_affine_warp():
    images = disk_images(64, radius=7.0)
    affine = random_warp(images, np.random.default_rng(4))
    elastic = random_warp(images, np.random.default_rng(4), elastic=True)
    assert np.abs(elastic - affine).max() > 0.2
    ink_ratio = elastic.sum(axis=(1, 2, 3)) / images.sum(axis=(1, 2, 3))
    assert 0.9 < ink_ratio.mean() < 1.15  # stretches some digits, squeezes others


def test_random_warp_changes_the_images_and_stays_in_range():
    images = disk_images(16)
    warped = random_warp(images, np.random.default_rng(5))
    changed = np.abs(warped - images).reshape(16, -1).max(axis=1)
    assert (changed > 0.2).all()
    assert warped.min() >= 0 and warped.max() <= 1 + 1e-6


def test_shifts_are_within_the_configured_range():
    image = np.zeros((1, 28, 28, 1), np.float32)
    image[0, 13:15, 13:15, 0] = 1.0  # small blob at the centre: its centre of mass moves
    images = np.repeat(image, 200, axis=0)
    warped = random_warp(images, np.random.default_rng(6))[..., 0]
    rows, columns = np.mgrid[0:28, 0:28]
    mass = warped.sum(axis=(1, 2))
    center_y = (warped * rows).sum(axis=(1, 2)) / mass - 13.5
    center_x = (warped * columns).sum(axis=(1, 2)) / mass - 13.5
    assert np.abs(center_y).max() <= SHIFT + 0.05 and np.abs(center_x).max() <= SHIFT + 0.05
    assert np.abs(center_y).max() > SHIFT / 2  # and they do use the range


def config(**values):
    return TrainConfig.from_dict({"batch_size": 32, "augment": "affine", **values})


def first_batches(cfg, x, y, count, initial_epoch=0):
    batches = augmented_batches(cfg, x, y, initial_epoch)
    return [next(batches) for _ in range(count)]


@pytest.fixture(params=["tf.data", "numpy"])
def pipeline(request, monkeypatch):
    """Runs a test through the tf.data pipeline, then with TensorFlow hidden (numpy fallback)."""
    if request.param == "numpy":
        monkeypatch.setitem(sys.modules, "tensorflow", None)  # `import tensorflow` now fails
    assert tensorflow_available() == (request.param == "tf.data")
    return request.param


@pytest.mark.parametrize("augment", ["affine", "elastic"])
def test_same_seed_same_batches_other_seed_other_batches(pipeline, augment):
    x = disk_images(100)
    y = np.eye(10, dtype=np.float32)[np.arange(100) % 10]
    one = first_batches(config(seed=3, augment=augment), x, y, 5)
    two = first_batches(config(seed=3, augment=augment), x, y, 5)
    other = first_batches(config(seed=4, augment=augment), x, y, 5)
    for (xa, ya), (xb, yb) in zip(one, two, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(one[0][0], other[0][0])


@pytest.mark.parametrize("augment", ["affine", "elastic"])
def test_labels_travel_with_their_images(pipeline, augment):
    count = 90
    rows, columns = np.mgrid[0:28, 0:28]
    square = ((np.abs(rows - 13.5) < 6) & (np.abs(columns - 13.5) < 6)).astype(np.float32)
    brightness = (np.arange(count) + 1) / count  # image i is identified by its brightness
    x = (square[None] * brightness[:, None, None])[..., None].astype(np.float32)
    labels = np.random.default_rng(7).integers(0, 10, count)
    y = np.eye(10, dtype=np.float32)[labels]
    seen = []
    for images, batch_labels in first_batches(config(augment=augment), x, y, 3):  # one epoch
        # the brightest pixel: inside the square wherever the warp (elastic too) moved it
        identity = np.rint(images.max(axis=(1, 2, 3)) * count).astype(int) - 1
        np.testing.assert_array_equal(batch_labels, y[identity])  # labels are the originals
        seen.extend(identity)
    assert sorted(seen) == list(range(count))  # every image once per epoch


@pytest.mark.parametrize("augment", ["affine", "elastic"])
def test_a_resumed_run_sees_the_batches_an_uninterrupted_run_would(pipeline, augment):
    x = disk_images(64)
    y = np.eye(10, dtype=np.float32)[np.arange(64) % 10]
    cfg = config(augment=augment)
    uninterrupted = first_batches(cfg, x, y, 4)  # 2 batches per epoch: epochs 0 and 1
    resumed = first_batches(cfg, x, y, 2, initial_epoch=1)
    np.testing.assert_array_equal(uninterrupted[2][0], resumed[0][0])
    np.testing.assert_array_equal(uninterrupted[3][1], resumed[1][1])


def test_training_inputs_contract():
    x = disk_images(70)
    y = np.eye(10, dtype=np.float32)[np.arange(70) % 10]
    plain = training_inputs(config(augment="none"), x, y)
    assert plain["args"][0] is x and plain["batch_size"] == 32
    for name in ("affine", "elastic"):
        augmented = training_inputs(config(augment=name), x, y)
        assert augmented["steps_per_epoch"] == 3 and augmented["batch_size"] is None
        source = augmented["args"][0]
        assert type(source).__module__.startswith("tensorflow")  # a tf.data pipeline
        source = source.as_numpy_iterator()
        images, labels = next(source)
        assert images.shape == (32, 28, 28, 1) and labels.shape == (32, 10)


def test_elastic_batches_are_the_affine_batches_plus_a_local_distortion():
    """Same seed: same images, same affine draws; the field moves ink locally, keeps it."""
    x = disk_images(64, radius=7.0)
    y = np.eye(10, dtype=np.float32)[np.arange(64) % 10]
    (affine, labels), = first_batches(config(seed=5), x, y, 1)  # fmt: skip
    (elastic, elastic_labels), = first_batches(config(seed=5, augment="elastic"), x, y, 1)  # fmt: skip
    np.testing.assert_array_equal(labels, elastic_labels)
    assert np.abs(elastic - affine).max() > 0.2
    ink_ratio = elastic.sum(axis=(1, 2, 3)) / affine.sum(axis=(1, 2, 3))
    assert 0.85 < ink_ratio.mean() < 1.15
    assert elastic.min() >= 0 and elastic.max() <= 1 + 1e-6


def test_without_tensorflow_affine_falls_back_to_numpy_warps(monkeypatch):
    x = disk_images(70)
    y = np.eye(10, dtype=np.float32)[np.arange(70) % 10]
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    augmented = training_inputs(config(seed=0), x, y)
    source = augmented["args"][0]
    assert augmented["steps_per_epoch"] == 3 and type(source).__name__ == "generator"
    images, labels = next(source)
    order = np.random.default_rng([0, 0]).permutation(70)[:32]  # epoch 0's order, seed 0
    expected = random_warp(x[order], np.random.default_rng([0, 0, 0]))  # its first batch
    np.testing.assert_allclose(images, expected, atol=1e-6)
    np.testing.assert_array_equal(labels, y[order])


def test_training_with_augmentation_end_to_end(tiny_data, tmp_path):
    import mnistlab

    run = mnistlab.train(
        "cnn",
        data=tiny_data,
        out=str(tmp_path / "run"),
        epochs=2,
        augment="affine",
        val_size=200,
        verbose=0,
    )
    assert run.metrics["error"] < 50  # learns through the warps (chance is 90%)
    assert len(run.history) == 2


# --- The rest of the training recipe: the weight average (config.ema) -----------------------


def test_ema_run_saves_the_averaged_weights_not_the_last_ones(tiny_data, tmp_path):
    import keras

    import mnistlab

    folder = str(tmp_path / "ema")
    mnistlab.train("mlp", data=tiny_data, out=folder, epochs=1, ema=0.9, val_size=200, verbose=0)
    # checkpoint.keras: the raw weights after the last step, with the optimizer's averages
    checkpoint = keras.saving.load_model(f"{folder}/checkpoint.keras")
    averages = [
        np.asarray(v) for v in checkpoint.optimizer._model_variables_moving_average if v is not None
    ]
    raw = [np.asarray(w) for w in checkpoint.trainable_weights]
    final = [
        np.asarray(w) for w in keras.saving.load_model(f"{folder}/model.keras").trainable_weights
    ]
    assert len(averages) == len(final)
    for average, saved in zip(averages, final, strict=True):
        np.testing.assert_allclose(saved, average, atol=1e-7)  # model.keras holds the average
    assert any(not np.allclose(s, r) for s, r in zip(final, raw, strict=True))  # which differs
    # metrics.json's val_error is the saved (averaged) model's, counted here by hand on the
    # 200 held-out images (the last 200 training images), not history.csv's raw-weight figure
    (x_train, y_train), _ = tiny_data
    model = keras.saving.load_model(f"{folder}/model.keras")
    guesses = model.predict(x_train[-200:, :, :, None] / 255.0, verbose=0).argmax(axis=1)
    wrong = int((guesses != y_train[-200:]).sum())
    metrics = runs.read_json(f"{folder}/{runs.METRICS_FILE}")
    assert metrics["val_error"] == pytest.approx(100.0 * wrong / 200)


def test_endless_input_gets_a_steps_per_execution_that_divides_the_epoch():
    """Keras runs a compiled call to its full length on endless input: it must end the epoch."""
    from mnistlab.training.train import compile_settings

    assert compile_settings(config(steps_per_execution=20), 469)["steps_per_execution"] == 7
    assert compile_settings(config(steps_per_execution=20), 480)["steps_per_execution"] == 20
    assert compile_settings(config(steps_per_execution=20), 3)["steps_per_execution"] == 3
    plain = config(augment="none", steps_per_execution=20)
    assert compile_settings(plain, 469)["steps_per_execution"] == 20  # arrays end by themselves
