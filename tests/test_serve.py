"""The prediction API through FastAPI's TestClient: every encoding, every kind of bad input.

References: ``preprocess.to_mnist`` for the 28x28 input, and the Keras model itself (not the
server's runtime) for the probabilities.
"""

import base64
import importlib.util
import io
import json
import os
import re

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.conftest import REPO, synthetic_digits

pytest.importorskip("fastapi")
pytest.importorskip("onnxruntime")


def png_bytes(image: Image.Image, kind: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, kind)
    return buffer.getvalue()


def drawing(label: int, size: int = 200) -> Image.Image:
    """A large drawing of synthetic digit ``label`` (the tiny set's bars), white on black."""
    image = Image.new("L", (size, size), 0)
    pen = ImageDraw.Draw(image)
    position = int(size * (4 + 5 * (label % 5) + 1) / 28)
    lo, hi, width = int(size * 4 / 28), int(size * 24 / 28), int(size * 3 / 28)
    if label < 5:
        pen.rectangle((lo, position - width // 2, hi, position + width // 2), fill=255)
    else:
        pen.rectangle((position - width // 2, lo, position + width // 2, hi), fill=255)
    return image


@pytest.fixture(scope="module")
def keras_model(trained_run):
    from mnistlab.models.saved import load_model

    model = load_model(trained_run)
    with open(os.path.join(trained_run, "calibration.json")) as file:
        model.reference_temperature = json.load(file)["temperature"]  # the server applies it
    return model


@pytest.fixture(scope="module")
def predictor(trained_run):
    from mnistlab.serving.inference import load_predictor

    return load_predictor(trained_run, runtime="auto")


@pytest.fixture(scope="module", params=["lean", "plain"])
def client(predictor, request):
    """The app as served by default (LeanPredict answers /api/predict) and as --plain serves it
    (FastAPI's route): every test of the API runs on both."""
    from fastapi.testclient import TestClient

    from mnistlab.serving.serve import create_app

    app = create_app(predictor, plain=request.param == "plain")
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def reference(keras_model, image_28: np.ndarray) -> np.ndarray:
    from mnistlab.models.registry import to_input

    raw = np.asarray(keras_model(to_input(image_28[None]), training=False))[0]
    scaled = np.log(np.maximum(raw.astype(np.float64), 1e-30)) / keras_model.reference_temperature
    scaled = np.exp(scaled - scaled.max())
    return scaled / scaled.sum()  # softmax(log p / T): the run's calibration, written out here


def test_auto_runtime_is_onnx_and_health_answers(client, predictor):
    assert predictor.runtime == "onnx", predictor.note
    answer = client.get("/api/health")
    assert answer.status_code == 200
    assert answer.json() == {
        "status": "ok",
        "model": "cnn",
        "runtime": "onnx",
        "source": predictor.source,
        "process": os.getpid(),
    }


def test_28x28_image_as_is_matches_keras(client, keras_model):
    images, labels = synthetic_digits(6, seed=5)
    for image, label in zip(images, labels, strict=True):
        data = png_bytes(Image.fromarray(image))
        answer = client.post("/api/predict?preprocess=false", files={"image": ("d.png", data)})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        expected = reference(keras_model, image)
        assert body["digit"] == int(expected.argmax()) == int(label)
        np.testing.assert_allclose(body["probabilities"], expected, atol=1e-4)
        assert np.array_equal(np.array(body["input"], np.uint8), image)
        assert body["model"] == "cnn" and body["runtime"] == "onnx"
        assert set(body["timing_ms"]) == {"preprocess", "predict"}


def encodings(data: bytes, kind: str):
    """Every way the API accepts one image: (description, request keyword arguments)."""
    text = base64.b64encode(data).decode()
    url = f"data:{kind};base64,{text}"
    return [
        ("multipart", {"files": {"image": ("digit", data, kind)}}),
        ("multipart, other field name", {"files": {"upload": ("digit", data)}}),
        ("json data url", {"json": {"image": url}}),
        ("json plain base64", {"json": {"image": text}}),
        ("json string", {"json": url}),
        ("text base64", {"content": text, "headers": {"content-type": "text/plain"}}),
        ("text data url", {"content": url, "headers": {"content-type": "text/plain"}}),
        ("raw bytes", {"content": data, "headers": {"content-type": kind}}),
        (
            "octet stream",
            {"content": data, "headers": {"content-type": "application/octet-stream"}},
        ),
    ]


@pytest.mark.parametrize("kind, label", [("image/png", 7), ("image/jpeg", 2)])
def test_every_encoding_gives_the_reference_answer(client, keras_model, kind, label):
    from mnistlab.data.preprocess import to_mnist

    image = drawing(label)
    data = png_bytes(image.convert("RGB"), "JPEG" if kind == "image/jpeg" else "PNG")
    expected_input = to_mnist(data)
    expected = reference(keras_model, expected_input)
    assert expected.argmax() == label  # the drawing is a digit this model knows
    for description, request in encodings(data, kind):
        answer = client.post("/api/predict", **request)
        assert answer.status_code == 200, (description, answer.text)
        body = answer.json()
        assert np.array_equal(np.array(body["input"], np.uint8), expected_input), description
        assert body["digit"] == label, description
        np.testing.assert_allclose(body["probabilities"], expected, atol=1e-4)


def test_json_options_and_first_layer(client, keras_model):
    import keras

    image = synthetic_digits(1, seed=9)[0][0]
    data = base64.b64encode(png_bytes(Image.fromarray(image))).decode()
    answer = client.post(
        "/api/predict", json={"image": data, "preprocess": False, "first_layer": True}
    )
    assert answer.status_code == 200, answer.text
    layer = answer.json()["first_layer"]
    assert layer["shape"] == [24, 24, 32]  # cnn: 32 filters of 5x5 on 28x28
    values = np.frombuffer(base64.b64decode(layer["data"]), np.uint8).reshape(32, 24, 24)
    conv = next(layer for layer in keras_model.layers if isinstance(layer, keras.layers.Conv2D))
    from mnistlab.models.registry import to_input

    expected = np.asarray(keras.Model(keras_model.inputs, conv.output)(to_input(image[None])))[0]
    assert layer["max"] == pytest.approx(float(expected.max()), abs=1e-3)
    scaled = np.round(expected.transpose(2, 0, 1) * 255 / expected.max())
    assert np.abs(values - scaled).max() <= 1  # same maps, rounding aside
    assert "first_layer" not in client.post("/api/predict", json={"image": data}).json()


def blank_png(size=(64, 64)) -> bytes:
    return png_bytes(Image.new("L", size, 0))


GIF = png_bytes(Image.new("L", (8, 8), 0), "GIF")
PNG_7 = png_bytes(drawing(7, 64))

BAD_REQUESTS = [
    # (description, request keyword arguments, status, words in the message)
    (
        "not an image",
        {"content": b"hello world", "headers": {"content-type": "image/png"}},
        400,
        "not an image",
    ),
    ("text file upload", {"files": {"image": ("a.png", b"just text")}}, 400, "not an image"),
    ("empty upload", {"files": {"image": ("a.png", b"", "image/png")}}, 400, "empty"),
    ("empty raw body", {"content": b"", "headers": {"content-type": "image/png"}}, 400, "empty"),
    ("empty json image", {"json": {"image": ""}}, 400, "empty"),
    (
        "truncated png",
        {"content": PNG_7[: len(PNG_7) // 2], "headers": {"content-type": "image/png"}},
        400,
        "truncated",
    ),
    ("bad base64", {"json": {"image": "not base64!!"}}, 400, "base64"),
    ("json without image", {"json": {"picture": "x"}}, 400, '{"image"'),
    ("json not an object", {"json": [1, 2]}, 400, '{"image"'),
    (
        "broken json",
        {"content": b"{", "headers": {"content-type": "application/json"}},
        400,
        "not valid JSON",
    ),
    ("form without file", {"files": {"image": (None, "abc")}}, 400, "no file"),
    ("url-encoded form", {"data": {"image": "abc"}}, 415, "x-www-form-urlencoded"),
    (
        "bad option",
        {"files": {"image": ("a.png", PNG_7)}, "params": {"preprocess": "maybe"}},
        400,
        "true or false",
    ),
    (
        "html content type",
        {"content": PNG_7, "headers": {"content-type": "text/html"}},
        415,
        "Unsupported content type 'text/html'",
    ),
    (
        "no content type",
        {"content": PNG_7, "headers": {"content-type": ""}},
        415,
        "Unsupported content type",
    ),
    (
        "upload typed as text",
        {"files": {"image": ("a.txt", PNG_7, "text/plain")}},
        415,
        "text/plain",
    ),
    ("gif", {"content": GIF, "headers": {"content-type": "image/png"}}, 415, "GIF"),
    (
        "gif data url",
        {"json": {"image": "data:image/gif;base64," + base64.b64encode(GIF).decode()}},
        415,
        "image/gif",
    ),
    ("blank drawing", {"files": {"image": ("a.png", blank_png())}}, 422, "No digit found"),
    (
        "not 28x28 as is",
        {"files": {"image": ("a.png", PNG_7)}, "params": {"preprocess": "false"}},
        422,
        "28x28",
    ),
]


@pytest.mark.parametrize(
    "request_arguments, status, words",
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_input_gets_a_clear_4xx_and_the_server_stays_up(
    client, request_arguments, status, words
):
    answer = client.post("/api/predict", **request_arguments)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["error"]
    assert client.get("/api/health").status_code == 200
    assert client.post("/api/predict", files={"image": ("a.png", PNG_7)}).json()["digit"] == 7


def test_size_limits_are_enforced(client, monkeypatch):
    from mnistlab.serving import request_body, uploads

    monkeypatch.setattr(request_body, "MAX_REQUEST_BYTES", 10_000)
    too_many_bytes = b"\x89PNG\r\n\x1a\n" + bytes(10_000)
    declared = client.post(
        "/api/predict", content=too_many_bytes, headers={"content-type": "image/png"}
    )
    assert declared.status_code == 413 and "larger than" in declared.json()["error"]
    # a chunked body (no Content-Length) is counted as it arrives
    chunked = client.post(
        "/api/predict",
        content=iter([too_many_bytes[:6000], too_many_bytes[6000:]]),
        headers={"content-type": "image/png"},
    )
    assert chunked.status_code == 413
    monkeypatch.setattr(uploads, "MAX_IMAGE_PIXELS", 100 * 100)
    wide = png_bytes(Image.new("1", (101, 100), 0))  # a few hundred bytes, over the pixel limit
    answer = client.post("/api/predict", files={"image": ("big.png", wide)})
    assert answer.status_code == 413 and "101x100 pixels" in answer.json()["error"]
    assert client.post("/api/predict", files={"image": ("a.png", PNG_7)}).status_code == 200


def test_limits_are_named_constants_of_sensible_size():
    from mnistlab.serving import request_body, uploads

    assert 1 << 20 <= request_body.MAX_REQUEST_BYTES <= 64 << 20  # bytes
    assert 1000 * 1000 <= uploads.MAX_IMAGE_PIXELS <= 50_000_000  # a phone photo fits


def test_other_routes_answer_json_errors(client):
    assert client.get("/api/predict").status_code == 405
    missing = client.get("/api/nothing")
    assert missing.status_code == 404 and "error" in missing.json()


def test_page_and_its_assets_are_local(client):
    page = client.get("/")
    assert page.status_code == 200 and '<canvas id="pad"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert {"/static/app.js", "/static/style.css"} <= set(assets)
    for asset in assets:
        if asset.startswith("data:"):
            continue
        assert asset.startswith("/static/"), asset
        answer = client.get(asset)
        assert answer.status_code == 200, asset
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", answer.text), asset


def test_keras_runtime_gives_the_same_answers(trained_run, predictor):
    from mnistlab.serving.inference import load_predictor

    keras_predictor = load_predictor(trained_run, runtime="keras")
    assert keras_predictor.runtime == "keras" and keras_predictor.first_layer_shape == (24, 24, 32)
    images = synthetic_digits(50, seed=3)[0]
    np.testing.assert_allclose(
        keras_predictor.predict(images), predictor.predict(images), atol=1e-4
    )
    first_keras = keras_predictor.predict_with_first_layer(images[:3])[1]
    first_onnx = predictor.predict_with_first_layer(images[:3])[1]
    np.testing.assert_allclose(first_keras, first_onnx, atol=1e-4)


def test_load_predictor_refuses_bad_choices(trained_run, tmp_path):
    from mnistlab.serving.inference import load_predictor

    with pytest.raises(ValueError, match="Unknown runtime 'fast'. Available: auto, onnx, keras"):
        load_predictor(trained_run, runtime="fast")
    with pytest.raises(FileNotFoundError, match="No ONNX file"):
        load_predictor(str(tmp_path / "missing.onnx"))
    with pytest.raises(ValueError, match="is an ONNX file"):
        load_predictor(str(tmp_path / "missing.onnx"), runtime="keras")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not onnx")
    with pytest.raises(ValueError, match="ONNX Runtime cannot load"):
        load_predictor(str(broken))


def test_serve_command_refuses_bad_arguments():
    from tests.conftest import run_cli

    result = run_cli("serve", "--model", "cnn")
    assert result.returncode == 2 and "architecture, not a trained model" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_cli("serve", "--workers", "0")
    assert result.returncode == 2 and "--workers must be at least 1" in result.stderr


def load_benchmark(name: str):
    spec = importlib.util.spec_from_file_location(
        f"{name}_benchmark", os.path.join(REPO, "benchmarks", f"{name}.py")
    )
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    return benchmark


def test_benchmark_quick_mode(trained_run, tmp_path):
    """benchmarks/inference.py --quick: every section runs and the table is written.

    Runs in this process (TensorFlow is loaded already).
    """
    benchmark = load_benchmark("inference")
    out = tmp_path / "inference.md"
    assert benchmark.main(["--quick", "--model", trained_run, "--out", str(out)]) == 0
    table = out.read_text()
    for words in ("p50", "p99", "images per second", "28x28 PNG"):
        assert words in table, words
    figures = json.loads(out.with_suffix(".json").read_text())
    assert figures["in_process"]["onnx"]["network only"]["calls"] > 0
    assert (
        figures["command"]
        == f"python benchmarks/inference.py --quick --model {trained_run} --out {out}"
    )


def test_serve_load_benchmark_measures_and_judges(trained_run, tmp_path, monkeypatch):
    """benchmarks/serve_load.py, few requests, 2 server workers: every figure is written, every
    request answered 200; its exit status says whether a target was missed (likely, with so
    few requests)."""
    from mnistlab.serving.export import export_onnx

    benchmark = load_benchmark("serve_load")
    monkeypatch.setattr(benchmark, "PREPROCESS_CALLS", 10)
    monkeypatch.setattr(benchmark, "WARMUP", 10)
    monkeypatch.setattr(benchmark, "RSS_EVERY", 50)
    model = str(tmp_path / "model.onnx")  # ONNX: the server starts without TensorFlow
    export_onnx(trained_run, model, check="synthetic")
    out = tmp_path / "serve_load.md"
    arguments = ["--requests", "100", "--model", model, "--out", str(out), "--workers", "2"]
    status = benchmark.main(arguments)
    report = json.loads(out.with_suffix(".json").read_text())
    assert status == (1 if report["missed"] else 0)
    assert report["figures"]["workers"] == 2
    for kind in benchmark.KINDS:
        figures = report["figures"][kind]
        assert figures["requests"] == 100 and figures["errors"] == 0, figures
        assert len(figures["rss_mb"]) == 2 and figures["p99_ms"] >= figures["p50_ms"] > 0
    preprocess = report["figures"]["preprocess"]
    assert preprocess["server_p50_ms"] > 0 and preprocess["alone_p50_ms"] > 0
    assert report["figures"]["stderr"] == ""
    assert "| 280x280 canvas PNG |" in out.read_text()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height (8-bit gray) with one empty IDAT: bytes, not pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [5000, 10000, 20000])  # ours, Pillow's warning, Pillow's error
def test_over_the_pixel_limit_is_413_naming_it_and_pillow_stays_quiet(client, capfd, side):
    from mnistlab.serving import uploads

    answer = client.post(
        "/api/predict", content=png_header_only(side, side), headers={"content-type": "image/png"}
    )
    assert answer.status_code == 413, answer.text
    assert f"the limit is {uploads.MAX_IMAGE_PIXELS:,} pixels" in answer.json()["error"]
    assert "DecompressionBomb" not in capfd.readouterr().err


@pytest.mark.parametrize("kind", ["PNG", "JPEG"])
def test_large_images_are_reduced_while_decoding(kind):
    """A 3000x2000 upload reaches preprocessing at most WORK_SIZE a side, and as the same digit."""
    from mnistlab.data.preprocess import WORK_SIZE, to_mnist
    from mnistlab.serving import uploads

    big = drawing(7, 3000).resize((3000, 2000)).convert("RGB" if kind == "JPEG" else "RGBA")
    data = png_bytes(big, kind)
    decoded = uploads._decode(uploads.open_image(data))
    assert max(decoded.size) <= WORK_SIZE and decoded.size[0] > decoded.size[1]
    reference = to_mnist(big)  # the full-size image, fitted
    assert np.abs(to_mnist(decoded).astype(int) - reference).mean() < 8  # gray levels of 255


def test_large_decodes_wait_for_a_slot(client, monkeypatch):
    """No more than DECODE_SLOTS large images decode and fit at once."""
    import threading

    from mnistlab.serving import uploads

    running, most = [0], [0]
    lock = threading.Lock()
    original = uploads._decode

    def counted(image):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            return original(image)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(uploads, "_decode", counted)
    monkeypatch.setattr(uploads, "LARGE_PIXELS", 100 * 100)
    data = png_bytes(drawing(7, 400))
    threads = [
        threading.Thread(
            target=lambda: client.post("/api/predict", files={"image": ("a.png", data)})
        )
        for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 1 <= most[0] <= uploads.DECODE_SLOTS


def test_openapi_describes_the_api_and_docs_allow_only_their_cdn(client):
    schema = client.get("/openapi.json").json()
    predict = schema["paths"]["/api/predict"]["post"]
    assert {"multipart/form-data", "application/json", "image/png"} <= set(
        predict["requestBody"]["content"]
    )
    assert {"200", "413", "422"} <= set(predict["responses"])
    assert "probabilities" in schema["components"]["schemas"]["Answer"]["properties"]
    assert "/" not in schema["paths"] and "/docs" not in schema["paths"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    assert "https://cdn.jsdelivr.net" in docs.headers["content-security-policy"]
    assert "cdn" not in client.get("/").headers["content-security-policy"]


def test_serving_the_shipped_model_loads_no_training_framework():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from mnistlab.serving.inference import load_predictor\n"
        "from mnistlab.serving.serve import create_app\n"
        "predictor = load_predictor(None)\n"
        "create_app(predictor)\n"
        "assert predictor.runtime == 'onnx', predictor.runtime\n"
        "print([m for m in ('keras', 'tensorflow', 'torch', 'jax') if m in sys.modules])\n"
    )
    env = {**os.environ, "PYTHONPATH": os.path.join(REPO, "src")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if "no ONNX file" in result.stderr:
        pytest.skip("the shipped model.onnx is not installed")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_example_is_a_random_mnist_test_digit_or_a_clear_503(client, monkeypatch):
    from mnistlab.data.mnist import DataError
    from mnistlab.serving import serve

    images = np.zeros((3, 28, 28), np.uint8)
    images[:, 4:24, 13:16] = 255  # a bar: a 1 of the tiny set's kind
    monkeypatch.setattr(serve, "_test_set", {"images": images, "labels": np.array([1, 1, 1])})
    example = client.get("/api/example").json()
    assert example["label"] == 1 and 0 <= example["index"] < 3
    assert np.array_equal(np.array(example["input"]), images[0])  # as is, not refitted
    assert len(example["probabilities"]) == 10 and "first_layer" in example

    def missing(**_):
        raise DataError("no MNIST here")

    monkeypatch.setattr(serve, "_test_set", {})
    monkeypatch.setattr("mnistlab.data.mnist.load_mnist", missing)
    answer = client.get("/api/example")
    assert answer.status_code == 503 and "MNISTLAB_DATA" in answer.json()["error"]


def form(parts: list[tuple[bytes, bytes]], boundary: bytes = b"XyZ123", line: bytes = b"\r\n"):
    """A multipart body written by hand: (headers, content) parts, then the closing line."""
    body = b""
    for headers, content in parts:
        body += b"--" + boundary + line + headers + line + line + content + line
    return body + b"--" + boundary + b"--" + line


FILE_HEADERS = b'Content-Disposition: form-data; name="image"; filename="blob"'
MULTIPART = "multipart/form-data; boundary=XyZ123"


def multipart_cases() -> list[tuple[str, bytes, str]]:
    """(what, body, content type): the browser's form, and forms the lean reader leaves to
    Starlette's parser, malformed ones included."""
    png = PNG_7
    typed = FILE_HEADERS + b"\r\nContent-Type: image/png"
    return [
        ("browser FormData", form([(typed, png)]), MULTIPART),
        ("no part type", form([(FILE_HEADERS, png)]), MULTIPART),
        ("lower-case headers", form([(typed.lower(), png)]), MULTIPART),
        ("no final line break", form([(typed, png)])[:-2], MULTIPART),
        ("a text part", form([(typed[:-9] + b"text/plain", png)]), MULTIPART),
        ("empty file", form([(typed, b"")]), MULTIPART),
        (
            "field, then the file",
            form([(b'Content-Disposition: form-data; name="a"', b"1"), (typed, png)]),
            MULTIPART,
        ),
        ("no file", form([(b'Content-Disposition: form-data; name="image"', png)]), MULTIPART),
        ("two files", form([(typed, png), (typed, png)]), MULTIPART),
        ("quoted boundary", form([(typed, png)]), 'multipart/form-data; boundary="XyZ123"'),
        ("a preamble", b"hello\r\n" + form([(typed, png)]), MULTIPART),
        ("an epilogue", form([(typed, png)]) + b"bye", MULTIPART),
        ("bare LF lines", form([(typed, png)], line=b"\n"), MULTIPART),
        ("unclosed", form([(typed, png)])[:-10], MULTIPART),
        ("the boundary in the file", form([(typed, png + b"\r\n--XyZ123x")]), MULTIPART),
        ("no boundary", form([(typed, png)]), "multipart/form-data"),
        ("another boundary", form([(typed, png)]), "multipart/form-data; boundary=other"),
    ]


def test_lean_and_plain_routes_answer_every_form_alike(predictor):
    """The reference: FastAPI's route with Starlette's multipart parser (plain). The lean route
    gives the same status and answer (timings aside) for every form."""
    from fastapi.testclient import TestClient

    from mnistlab.serving.serve import create_app

    lean = TestClient(create_app(predictor), raise_server_exceptions=False)
    plain = TestClient(create_app(predictor, plain=True), raise_server_exceptions=False)
    statuses = {}
    for what, body, content_type in multipart_cases():
        answers = [
            app.post("/api/predict", content=body, headers={"content-type": content_type})
            for app in (lean, plain)
        ]
        got = [(answer.status_code, answer.json()) for answer in answers]
        for _, payload in got:
            payload.pop("timing_ms", None)
        assert got[0] == got[1], what
        statuses[what] = got[1][0]
    assert statuses["browser FormData"] == statuses["empty file"] + 200 - 400 == 200
    assert statuses["a text part"] == 415 and statuses["no file"] == 400


def test_simple_multipart_reads_one_file_part_and_leaves_the_rest():
    from mnistlab.serving.request_body import simple_multipart
    from mnistlab.serving.uploads import RequestError

    read = {}
    for what, body, kind in multipart_cases():
        try:
            read[what] = simple_multipart(kind, body)
        except RequestError as error:
            read[what] = error.status
    assert read["browser FormData"] == read["no part type"] == read["lower-case headers"] == PNG_7
    assert read["no final line break"] == PNG_7 and read["empty file"] == b""
    assert read["a text part"] == 415
    left = [what for what, data in read.items() if data is None]
    assert left == [
        "field, then the file",
        "no file",
        "two files",
        "quoted boundary",
        "a preamble",
        "an epilogue",
        "bare LF lines",
        "unclosed",
        "the boundary in the file",
        "no boundary",
        "another boundary",
    ]
