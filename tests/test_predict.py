"""predict: own images through preprocessing and the model, bad files reported one by one;
results checked against the model's own predict on the same inputs."""

from __future__ import annotations

import importlib
import json
import os

import numpy as np
import pytest
from PIL import Image, ImageDraw

import mnistlab
from mnistlab.commands.main import main
from mnistlab.data.inputs import load_input
from mnistlab.data.preprocess import to_mnist
from mnistlab.serving.predict import input_picture_names, percent
from tests.conftest import load_benchmark, run_cli_in_process


@pytest.fixture(scope="module")
def cnn(trained_run):
    model = mnistlab.load_model(trained_run)
    with open(os.path.join(trained_run, "calibration.json")) as file:
        model.reference_temperature = json.load(file)["temperature"]  # predict applies it
    return model


def reference_probabilities(model, images):
    """The model's own answer for (N, 28, 28) uint8 inputs, without mnistlab.predict, scaled
    by the run's temperature (softmax(log p / T), written out here)."""
    raw = model.predict(np.asarray(images, np.float32)[..., None] / 255.0, verbose=0)
    scaled = np.log(np.maximum(raw.astype(np.float64), 1e-30)) / model.reference_temperature
    scaled = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    return scaled / scaled.sum(axis=1, keepdims=True)


def page_with_bar(path, horizontal: bool):
    """A photo-like page: a dark pen bar on light paper, as a user would scan it."""
    page = Image.new("L", (240, 180), 230)
    box = (40, 80, 200, 100) if horizontal else (110, 20, 130, 160)
    ImageDraw.Draw(page).rectangle(box, fill=30)
    page.save(path)
    return str(path)


def decompression_bomb(path):
    """A small PNG file that would decode to 8000 x 8000 = 64 million pixels."""
    Image.new("1", (8000, 8000)).save(path)
    return str(path)


def test_cli_batch_with_bad_files_classifies_the_others_and_exits_1(tmp_path, trained_run, cnn):
    good = [page_with_bar(tmp_path / "flat.png", True), page_with_bar(tmp_path / "tall.jpg", False)]
    (tmp_path / "notes.txt").write_text("not an image")
    Image.new("L", (200, 150), 235).save(tmp_path / "blank.png")
    bad = {
        str(tmp_path / "missing.png"): "not found",
        str(tmp_path / "notes.txt"): "not an image",
        str(tmp_path / "blank.png"): "No digit found",
        decompression_bomb(tmp_path / "bomb.png"): "more than the limit",
    }
    images = [good[0], *bad, good[1]]
    shown = tmp_path / "seen"
    result = run_cli_in_process(
        "predict", "--model", trained_run, "--json", "--show-input", str(shown), *images
    )
    assert result.returncode == 2, result.stderr  # bad input, as for every command
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("mnistlab predict:")]
    assert len(errors) == 5  # one line per bad file, then the count
    for (path, reason), line in zip(bad.items(), errors, strict=False):
        assert path in line and reason in line
    assert "4 of 6 images could not be classified" in errors[-1]

    results = json.loads(result.stdout)
    assert [r["source"] for r in results] == images
    seen = np.stack([to_mnist(path) for path in good])  # what the network should have seen
    expected = reference_probabilities(cnn, seen)
    for index, position in enumerate([0, 5]):
        answer = results[position]
        assert answer["error"] is None
        assert sum(answer["probabilities"]) == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose(answer["probabilities"], expected[index], atol=1e-5)
        assert answer["digit"] == int(np.argmax(expected[index]))
        picture = np.asarray(Image.open(answer["input_picture"]))  # 8x enlarged, nearest
        np.testing.assert_array_equal(picture, np.kron(seen[index], np.ones((8, 8), np.uint8)))
    assert all(r["digit"] is None and r["error"] for r in results[1:5])
    assert sorted(os.listdir(shown)) == ["flat.png", "tall.png"]


def test_api_on_arrays_matches_the_models_own_predict(cnn, tiny_data):
    _, (x_test, _) = tiny_data
    results = mnistlab.predict(x_test[:8], model=cnn, preprocess=False)
    # a loaded keras.Model comes without its folder's calibration.json: T = 1, never in doubt
    expected = cnn.predict(x_test[:8].astype(np.float32)[..., None] / 255.0, verbose=0)
    assert len(results) == 8
    for result, row in zip(results, expected, strict=True):
        np.testing.assert_allclose(result["probabilities"], row, atol=1e-6)
        assert result["digit"] == int(row.argmax()) and result["error"] is None
        assert sum(result["probabilities"]) == pytest.approx(1.0, abs=1e-5)


def test_api_keeps_order_and_reports_a_bad_image_in_place(trained_run, cnn, tiny_data):
    _, (x_test, _) = tiny_data
    results = mnistlab.predict(
        [x_test[0], b"junk", "test:1"], model=trained_run, preprocess=False, data=tiny_data
    )
    assert [r["error"] is None for r in results] == [True, False, True]
    assert "not an image" in results[1]["error"] and results[1]["probabilities"] is None
    np.testing.assert_array_equal(results[2]["input"], x_test[1])  # test:1 is x_test[1]
    expected = reference_probabilities(cnn, x_test[:2])
    assert [results[0]["digit"], results[2]["digit"]] == list(expected.argmax(axis=1))


def test_no_preprocess_refuses_other_sizes_and_prints_the_rest(tmp_path, trained_run, cnn, capsys):
    small = tmp_path / "small.png"
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 12:15] = 255  # a "1"
    Image.fromarray(digit).save(small)
    Image.new("L", (40, 30)).save(tmp_path / "big.png")
    status = main(["predict", "--model", trained_run, "--no-preprocess", str(small),
                   str(tmp_path / "big.png")])  # fmt: skip
    out, err = capsys.readouterr()
    assert status == 2  # some images were bad input
    assert "big.png' is 40x30 pixels" in err and "must be 28x28" in err
    probabilities = reference_probabilities(cnn, digit[None])[0]
    digit_line = f"{small}: {probabilities.argmax()}  ({percent(probabilities.max())})"
    assert digit_line in out.splitlines()
    assert "big.png" not in out


def test_architecture_name_is_not_a_trained_model(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no folder called cnn here
    assert main(["predict", "--model", "cnn", "any.png"]) == 2
    err = capsys.readouterr().err
    assert "'cnn' is a model architecture, not a trained model" in err
    assert "mnistlab train cnn" in err


def test_missing_shipped_model_says_what_to_do(monkeypatch, tmp_path):
    saved = importlib.import_module("mnistlab.models.saved")
    monkeypatch.setattr(saved, "PRETRAINED_MODEL", str(tmp_path / "none.keras"))
    with pytest.raises(ValueError, match="No shipped model.*pass --model RUN"):
        mnistlab.predict(np.zeros((28, 28), np.uint8), preprocess=False)


def test_test_index_out_of_range_is_a_clear_error(tiny_data):
    with pytest.raises(ValueError, match=r"the test set has 300 images \(indices 0-299\)"):
        load_input("test:300", data=tiny_data)
    with pytest.raises(ValueError, match="test:INDEX with INDEX a number"):
        load_input("test:x", data=tiny_data)


@pytest.mark.parametrize(
    "sources, names",
    [
        (["a/seven.jpg", "b/seven.png", "test:3"], ["seven.png", "seven-2.png", "test-3.png"]),
        (["x.png", "x.png", "x.png"], ["x.png", "x-2.png", "x-3.png"]),
        (["<bytes>"], ["<bytes>.png"]),
    ],
)
def test_show_input_names_are_unique(sources, names):
    assert input_picture_names(sources) == names


def test_own_digits_benchmark_quick_mode(tmp_path, trained_run, cnn, capsys):
    benchmark = load_benchmark("own_digits_accuracy")
    if not os.path.exists(os.path.join(benchmark.CHECK_SET, "labels.csv")):
        pytest.skip("own-digits check set not built (benchmarks/own_digits/make_check_set.py)")
    out = tmp_path / "own.md"
    assert benchmark.main(["--quick", "--model", trained_run, "--out", str(out)]) == 0
    rows = benchmark.spread(benchmark.read_labels(benchmark.CHECK_SET), benchmark.QUICK_IMAGES)
    assert len(rows) == 10 and len({row["kind"] for row in rows}) >= 3
    # the reference: each image preprocessed on its own, then one plain model call
    inputs, readable = [], []
    for row in rows:
        try:
            inputs.append(to_mnist(row["path"]))
            readable.append(row)
        except ValueError:
            pass
    digits = reference_probabilities(cnn, np.stack(inputs)).argmax(axis=1)
    right = {row["kind"]: 0 for row in rows}
    for row, digit in zip(readable, digits, strict=True):
        right[row["kind"]] += int(digit == row["label"])
    table = out.read_text()
    assert table == capsys.readouterr().out.split(f"Wrote {out}")[0]
    for kind, count in right.items():
        images = sum(row["kind"] == kind for row in rows)
        assert f"| {kind} | {images} | {count} | {100 * count / images:.1f}% |" in table
    total = sum(right.values())
    assert f"| **overall** | 10 | {total} | {10 * total:.1f}% |" in table
