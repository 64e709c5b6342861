"""visualize: every picture on a tiny model, checked for size and panel count; the numbers
behind them checked against second implementations (numpy convolution, keras predict)."""

from __future__ import annotations

import os
import re

import keras
import numpy as np
import pytest
from PIL import Image

import mnistlab
from mnistlab import inspect as visualize
from mnistlab.commands import pictures as pictures_command
from mnistlab.commands.main import main
from mnistlab.core import runs
from mnistlab.inspect import pictures
from mnistlab.inspect.pictures import DPI, grid_pixels, grid_shape
from mnistlab.models.saved import measure


def png_size(path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def assert_grid(picture, panels: int):
    """A grid picture holds ``panels`` panels and has the size its grid calls for."""
    rows, columns = grid_shape(panels)
    assert picture.panels == panels
    assert (picture.rows, picture.columns) == (rows, columns)
    assert png_size(picture.path) == grid_pixels(rows, columns)


@pytest.fixture(scope="module")
def cnn(trained_run):
    return mnistlab.load_model(trained_run)


@pytest.mark.parametrize(
    "count, columns, shape",
    [(1, None, (1, 1)), (2, None, (1, 2)), (4, None, (2, 2)), (5, None, (2, 3)),
     (16, None, (4, 4)), (17, None, (4, 5)), (32, None, (6, 6)), (33, None, (6, 6)),
     (5, 2, (3, 2)), (0, None, (1, 1))],
)  # fmt: skip
def test_grid_shape_is_the_smallest_near_square_grid(count, columns, shape):
    rows, cols = grid_shape(count, columns)
    assert (rows, cols) == shape
    assert rows * cols >= count and (count == 0 or (rows - 1) * cols < count)


def test_samples_show_the_first_images_with_their_labels(tmp_path, tiny_data):
    (x_train, y_train), _ = tiny_data
    picture = visualize.plot_samples(x_train, y_train, str(tmp_path / "s.png"), count=16)
    assert_grid(picture, 16)
    titles = [axes.get_title() for axes in picture.figure.axes]
    assert titles == [f"label {label}" for label in y_train[:16]]
    shown = picture.figure.axes[3].images[0].get_array()
    np.testing.assert_array_equal(shown, x_train[3])


def test_samples_command_reads_the_data_option(tmp_path, tiny_npz, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(pictures_command.sys, "platform", "linux")
    out = str(tmp_path / "samples.png")
    assert main(["samples", "--data", tiny_npz, "--count", "5", "--out", out, "--show"]) == 0
    assert png_size(out) == grid_pixels(*grid_shape(5))
    printed = capsys.readouterr().out
    assert "(5 panels)" in printed and f"No display here; open {out}" in printed


def test_filters_are_the_first_convolutions_kernels(tmp_path, cnn):
    picture = visualize.plot_filters(cnn, str(tmp_path / "f.png"))
    kernel = cnn.get_layer(visualize.first_convolution(cnn)[0].name).get_weights()[0]
    assert kernel.shape == (5, 5, 1, 32)  # the cnn's first layer: 32 kernels of 5x5
    assert_grid(picture, 32)
    np.testing.assert_allclose(picture.figure.axes[7].images[0].get_array(), kernel[:, :, 0, 7])


def test_filters_of_branch_cnn_pick_the_5x5_branch_and_say_so(tmp_path, capsys):
    model = mnistlab.create_model("branch_cnn")
    layer, note = visualize.first_convolution(model)
    assert layer.name == "branch_right" and "'branch_left' is 1x1" in note
    saved, out = str(tmp_path / "branch.keras"), str(tmp_path / "f.png")
    model.save(saved)
    assert main(["filters", saved, "--out", out]) == 0
    assert "(16 panels)" in capsys.readouterr().out
    assert png_size(out) == grid_pixels(*grid_shape(16))


def test_an_ensemble_shows_its_first_member_and_says_so(tmp_path, cnn):
    inputs = keras.Input((28, 28, 1))
    members = [cnn, mnistlab.create_model("larger_cnn")]
    averaged = keras.layers.Average()([member(inputs) for member in members])
    ensemble = keras.Model(inputs, averaged, name="ensemble")
    model, name = visualize.inspected(ensemble)
    assert model is cnn and name == "ensemble member 'cnn' (1 of 2)"
    picture = visualize.plot_filters(ensemble, str(tmp_path / "f.png"))
    assert_grid(picture, 32)  # the cnn's 32 kernels
    assert picture.figure.texts[0].get_text().startswith("ensemble member 'cnn' (1 of 2): 32 ")


def test_dense_only_model_has_no_filters_and_says_so(tmp_path):
    model = mnistlab.create_model("mlp")
    with pytest.raises(ValueError, match="no convolution layers.*dense only"):
        visualize.plot_filters(model, str(tmp_path / "f.png"))
    with pytest.raises(ValueError, match="no convolution layers"):
        visualize.maximize_filters(model)


def test_conv_feature_maps_match_a_numpy_convolution(cnn, tiny_data):
    _, (x_test, _) = tiny_data
    layer = visualize.find_layer(cnn, 1)
    maps = visualize.layer_outputs(cnn, layer, x_test[:1])[0]  # (24, 24, 32)
    kernel, bias = layer.get_weights()
    image = x_test[0].astype(np.float64) / 255.0
    windows = np.lib.stride_tricks.sliding_window_view(image, (5, 5))  # (24, 24, 5, 5)
    expected = np.maximum(np.einsum("ijkl,klf->ijf", windows, kernel[:, :, 0, :]) + bias, 0)
    np.testing.assert_allclose(maps, expected, atol=1e-5)


def test_responses_by_index_name_and_for_flat_layers(tmp_path, cnn, tiny_data):
    _, (x_test, _) = tiny_data
    conv = visualize.plot_responses(cnn, x_test[0], 1, str(tmp_path / "r.png"))
    assert_grid(conv, 1 + 32)  # the input, then one map per filter
    assert [axes.get_title() for axes in conv.figure.axes[:2]] == ["input", "0"]
    pooling = visualize.find_layer(cnn, cnn.layers[2].name)
    assert visualize.layer_outputs(cnn, pooling, x_test[:1]).shape == (1, 12, 12, 32)
    flat = visualize.plot_responses(cnn, x_test[0], "-1", str(tmp_path / "d.png"))
    assert flat.panels == 2 and png_size(flat.path) == tuple(
        round(inches * DPI) for inches in pictures.CURVES_INCHES
    )
    bars = [patch.get_height() for patch in flat.figure.axes[1].patches]
    np.testing.assert_allclose(bars, cnn.predict(x_test[:1, ..., None] / 255.0, verbose=0)[0])
    with pytest.raises(ValueError, match=r"no layer 'nope'\. Its layers: 0 input_layer\w*, 1 "):
        visualize.find_layer(cnn, "nope")


def test_responses_command_takes_a_test_image(tmp_path, trained_run, tiny_npz, capsys):
    out = str(tmp_path / "r.png")
    args = ["responses", trained_run, "test:3", "--layer", "1", "--data", tiny_npz, "--out", out]
    assert main(args) == 0
    assert "(33 panels)" in capsys.readouterr().out
    assert png_size(out) == grid_pixels(*grid_shape(33))


def test_gradient_ascent_raises_each_responding_filters_mean_activation(cnn):
    result = visualize.maximize_filters(cnn, steps=10)
    layer = visualize.find_layer(cnn, result.layer)
    assert result.images.shape == result.start.shape == (32, 28, 28)
    assert result.images.min() >= 0 and result.images.max() <= 1  # still valid inputs

    probe = keras.Model(cnn.inputs, layer.output)

    def mean_activation(images):  # a second measurement, by keras predict on float inputs
        outputs = probe.predict(images[..., None].astype("float32"), verbose=0)  # (32, 24, 24, 32)
        return np.array([outputs[f, :, :, f].mean() for f in range(32)])

    before, after = mean_activation(result.start), mean_activation(result.images)
    np.testing.assert_allclose(after, result.scores, rtol=1e-4, atol=1e-6)
    responding = before > 0
    assert responding.sum() >= 16  # most filters of a trained net respond to gray
    assert np.all(after[responding] > before[responding])
    assert np.all(after >= before - 1e-6)


def test_a_silent_filter_climbs_to_the_hand_computed_optimum():
    """One 3x3 filter of ones with bias -5: silent on gray (9 * 0.5 - 5 < 0), best on white.

    All-white input gives 9 * 1 - 5 = 4 at every position, the most any input in [0, 1] can.
    """
    inputs = keras.Input((28, 28, 1))
    outputs = keras.layers.Conv2D(1, 3, activation="relu", name="ones")(inputs)
    model = keras.Model(inputs, outputs)
    model.get_layer("ones").set_weights([np.ones((3, 3, 1, 1)), np.array([-5.0])])
    result = visualize.maximize_filters(model, steps=60, step_size=0.1)  # corners move 1/9 as fast
    assert result.start_scores[0] == 0  # silent at the start: no gradient through the ReLU
    np.testing.assert_allclose(result.images, 1.0)
    assert result.scores[0] == pytest.approx(4.0)
    assert model.get_layer("ones").activation is keras.activations.relu  # put back


def test_maximize_refuses_layers_without_filters_and_bad_settings(cnn):
    with pytest.raises(ValueError, match="has no filters.*choose a convolution: conv2d"):
        visualize.maximize_filters(cnn, layer=-1)
    with pytest.raises(ValueError, match="step_size > 0"):
        visualize.maximize_filters(cnn, step_size=0)


def test_maximize_command_draws_one_panel_per_filter(tmp_path, trained_run, capsys):
    out = str(tmp_path / "m.png")
    assert main(["maximize", trained_run, "--steps", "3", "--out", out]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"\d+ of 32 filters respond more after 3 steps", printed)
    assert png_size(out) == grid_pixels(*grid_shape(32))


def test_curves_plot_the_history_of_a_run(tmp_path, trained_run, capsys):
    picture = visualize.plot_curves(trained_run, str(tmp_path / "c.png"))
    assert picture.panels == 2
    assert png_size(picture.path) == tuple(round(i * DPI) for i in pictures.CURVES_INCHES)
    history = runs.read_history(trained_run)
    loss_axes, accuracy_axes = picture.figure.axes
    training, validation = accuracy_axes.lines
    np.testing.assert_allclose(
        validation.get_ydata(), [100 * float(r["val_accuracy"]) for r in history]
    )
    np.testing.assert_allclose(loss_axes.lines[0].get_ydata(), [float(r["loss"]) for r in history])
    assert list(training.get_xdata()) == [1, 2]
    assert main(["curves", str(tmp_path), "--out", str(tmp_path / "x.png")]) == 2
    assert "has no training history" in capsys.readouterr().err


def test_confusion_matrix_writes_every_count(tmp_path):
    confusion = np.diag(np.full(10, 90))
    confusion[4, 9], confusion[7, 1] = 6, 3
    picture = visualize.plot_confusion(confusion, str(tmp_path / "c.png"))
    assert picture.panels == 1
    assert png_size(picture.path) == tuple(round(i * DPI) for i in pictures.CONFUSION_INCHES)
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text()
             for t in picture.figure.axes[0].texts}  # fmt: skip
    assert texts[(4, 9)] == "6" and texts[(7, 1)] == "3" and texts[(0, 0)] == "90"
    assert len(texts) == 12  # the diagonal and the two mistakes; zeros stay blank
    assert "908 of 909 right" not in picture.figure.axes[0].get_title()
    assert "900 of 909 right (error 0.99%)" in picture.figure.axes[0].get_title()


def test_misclassified_grid_follows_the_given_order(tmp_path, tiny_data):
    _, (x_test, y_test) = tiny_data
    predicted = (y_test + 1) % 10
    order = [5, 2, 9]
    probabilities = np.full((3, 10), 0.01)
    probabilities[0, predicted[5]] = 0.6
    probabilities[0, y_test[5]] = 0.32  # the true digit, second
    picture = visualize.plot_misclassified(
        x_test, y_test, predicted, order, str(tmp_path / "m.png"), probabilities=probabilities
    )
    assert_grid(picture, 3)
    titles = [axes.get_title() for axes in picture.figure.axes]
    assert titles[0] == f"{y_test[5]} → {predicted[5]} (60%)\n2nd: {y_test[5]} (32%)"
    assert "All 3 of 3 mistakes" in picture.figure._suptitle.get_text()
    np.testing.assert_array_equal(picture.figure.axes[2].images[0].get_array(), x_test[9])
    empty = visualize.plot_misclassified(x_test, y_test, y_test, [], str(tmp_path / "e.png"))
    assert empty.panels == 0 and os.path.exists(empty.path)


def test_evaluate_plots_put_the_most_confident_mistakes_first(tmp_path, tiny_data):
    model = mnistlab.create_model("cnn")  # untrained: plenty of mistakes
    _, (x_test, y_test) = tiny_data
    metrics = measure(model, x_test, y_test)
    confusion, mistakes = visualize.evaluation_plots(
        model, x_test, y_test, metrics, str(tmp_path), count=36
    )
    assert confusion.path == str(tmp_path / "confusion.png") and confusion.panels == 1
    assert_grid(mistakes, 36)
    titles = [axes.get_title() for axes in mistakes.figure.axes]
    percents = [int(re.search(r"\((\d+)%\)", title).group(1)) for title in titles]
    assert percents == sorted(percents, reverse=True)
    first = metrics["misclassified"][0]
    probabilities = model.predict(x_test[first : first + 1, ..., None] / 255.0, verbose=0)[0]
    second = np.argsort(-probabilities)[1]
    assert titles[0] == (
        f"{y_test[first]} → {probabilities.argmax()} ({100 * probabilities.max():.0f}%)"
        f"\n2nd: {second} ({100 * probabilities[second]:.0f}%)"
    )


def test_evaluate_command_saves_both_plots(tmp_path, trained_run, tiny_npz, capsys):
    assert main(["evaluate", trained_run, "--data", tiny_npz, "--plots", str(tmp_path)]) == 0
    assert png_size(tmp_path / "confusion.png") == tuple(
        round(i * DPI) for i in pictures.CONFUSION_INCHES
    )
    assert os.path.exists(tmp_path / "misclassified.png")
    assert f"Saved {tmp_path / 'misclassified.png'}" in capsys.readouterr().out
