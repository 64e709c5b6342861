"""A web page to draw digits on, and the JSON prediction API behind it (FastAPI + uvicorn).

``mnistlab serve`` serves:

- ``GET /``: the drawing page (static/index.html, app.js, style.css; nothing from other hosts);
- ``POST /api/predict``: an image (PNG or JPEG) as a multipart upload (any field name), as
  JSON ``{"image": "data:image/png;base64,..."}`` or ``{"image": "<base64>"}``, as plain
  base64 text, or as the raw bytes with Content-Type image/png or image/jpeg. Query options
  (or JSON keys of the same names): ``preprocess=false`` takes a 28x28 MNIST-style image as
  it is; ``first_layer=true`` adds the first layer's activations. Answers JSON: ``digit``,
  ``probabilities`` (10, calibrated), ``doubt`` and ``message`` ("not sure: 4 or 9" when in
  doubt, else null), ``model``, ``runtime``, ``input`` (the 28x28 image the network saw,
  rows of 0-255), ``timing_ms``, and ``first_layer`` when asked;
- ``GET /api/health``: ``{"status": "ok", "model": ..., "runtime": ..., "source": ...,
  "process": <the answering process's id>}``;
- ``GET /api/example``: a random MNIST test image (local copies only; 503 without them), the
  answer for it as ``/api/predict`` gives it, with its ``index`` and ``label``;
- ``GET /openapi.json``: the API's schema (requests and answers); ``GET /docs``: FastAPI's
  Swagger UI for it, which loads its script from cdn.jsdelivr.net (so needs the network).

Bad input gets a 4xx answer ``{"error": "<what happened and what to send instead>"}``: 400 not
an image, empty or undecodable; 413 too many bytes or pixels; 415 a content type or image
format other than PNG/JPEG; 422 no digit found. Preprocessing is ``preprocess.to_mnist``, the
same as ``mnistlab predict``.

Example:
    $ mnistlab serve --model runs/cnn --port 8000
    $ curl -F image=@seven.png http://127.0.0.1:8000/api/predict
"""

# no "from __future__ import annotations": FastAPI reads the endpoints' annotations at runtime
import base64
import io
import json
import logging
import os
import signal
import time
import warnings

from mnistlab.models import calibration
from mnistlab.serving.inference import load_predictor
from mnistlab.serving.request_body import flag, read_asgi, read_request
from mnistlab.serving.uploads import (
    RequestError,
    fit_upload,
    open_image,
    return_freed_memory,
)
from mnistlab.serving.workers import WorkerGroup, listen, reuse_port_balances

INLINE_PIXELS = 512 * 512  # ONNX answers for images this small are computed on the event loop
STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")
DEFAULT_HOST = "127.0.0.1"  # loopback: reachable from this machine only
DEFAULT_PORT = 8000
# Only our own files: scripts, styles, images and fetches from this server (works offline).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)

# /docs only: FastAPI's Swagger UI loads its script and styles from this CDN (needs the network)
SWAGGER_CDN = "https://cdn.jsdelivr.net"
DOCS_CONTENT_SECURITY_POLICY = (
    f"default-src 'self'; img-src 'self' data: https://fastapi.tiangolo.com; "
    f"style-src 'self' {SWAGGER_CDN}; script-src 'self' 'unsafe-inline' {SWAGGER_CDN}; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
_BINARY = {"type": "string", "format": "binary"}
PREDICT_REQUEST_BODY = {  # the forms read_request takes, for /openapi.json
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {"type": "object", "properties": {"image": _BINARY}, "required": ["image"]}
        },
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "image": {
                        "type": "string",
                        "description": "data:image/png;base64,... or plain base64",
                    },
                    "preprocess": {"type": "boolean", "default": True},
                    "first_layer": {"type": "boolean", "default": False},
                },
                "required": ["image"],
            }
        },
        "text/plain": {"schema": {"type": "string", "description": "base64 of a PNG or JPEG"}},
        "image/png": {"schema": _BINARY},
        "image/jpeg": {"schema": _BINARY},
    },
}


def _schemas():
    """The answers' pydantic models, for /openapi.json (made here: pydantic loads with FastAPI)."""
    from pydantic import BaseModel, Field

    class Answer(BaseModel):
        digit: int = Field(ge=0, le=9)
        probabilities: list[float] = Field(description="10 calibrated probabilities, digit 0-9")
        doubt: bool = Field(description="the top probability is below the model's threshold")
        message: str | None = Field(description="'not sure: 4 or 9' when in doubt, else null")
        model: str
        runtime: str = Field(description="onnx or keras")
        input: list[list[int]] = Field(description="the 28x28 image the network saw, 0-255")
        timing_ms: dict[str, float] = Field(description="preprocess and predict, milliseconds")
        first_layer: dict | None = Field(
            None, description="when asked: shape, max and data (base64 uint8, maps first)"
        )

    class Health(BaseModel):
        status: str
        model: str
        runtime: str
        source: str
        process: int = Field(description="the answering server process (see --workers)")

    class Problem(BaseModel):
        error: str = Field(description="what happened and what to send instead")

    class Example(Answer):
        index: int = Field(description="its index in MNIST's 10,000 test images")
        label: int = Field(description="the digit MNIST says it is")

    return Answer, Health, Problem, Example


_test_set = {}  # "images", "labels": MNIST's test set, loaded at the first /api/example


def random_test_digit() -> tuple[int, int, bytes]:
    """A random MNIST test image: (index, label, 28x28 PNG bytes).

    Reads only local copies ($MNISTLAB_DATA, the caches; never downloads).

    Raises:
        RequestError: 503 when MNIST is not on this machine.
    """
    import random

    from PIL import Image

    if not _test_set:
        from mnistlab.data.mnist import load_mnist

        try:
            _, (images, labels) = load_mnist(download=False)
        except Exception as error:  # DataError, a broken file: the page says why
            raise RequestError(
                503,
                f"No MNIST test images on the server ({error}). Set MNISTLAB_DATA to the "
                "MNIST folder and restart mnistlab serve.",
            ) from None
        _test_set.update(images=images, labels=labels)
    index = random.randrange(len(_test_set["labels"]))
    buffer = io.BytesIO()
    Image.fromarray(_test_set["images"][index], "L").save(buffer, "PNG")
    return index, int(_test_set["labels"][index]), buffer.getvalue()


# ------------------------------------------------------------------ predicting


def first_layer_payload(activations, shape) -> dict:
    """One image's first-layer activations as compact JSON for the page.

    Args:
        activations: (H, W, C) or (U,) float array; shape: the same shape as a tuple.

    Returns:
        dict: "shape" (as given), "max" (largest activation), "data" (base64 of uint8 values
        0-255 = 0..max, maps first: (C, H, W) for convolutions, (U,) for dense layers).
    """
    import numpy as np

    values = np.maximum(np.asarray(activations, np.float32), 0)  # what passes a ReLU
    if values.ndim == 3:
        values = values.transpose(2, 0, 1)
    peak = float(values.max())
    scaled = np.round(values * (255.0 / peak) if peak > 0 else values).astype(np.uint8)
    return {
        "shape": list(shape),
        "max": round(peak, 4),
        "data": base64.b64encode(scaled.tobytes()).decode(),
    }


def predict_image(predictor, data, preprocess: bool = True, first_layer: bool = False) -> dict:
    """The whole prediction for one uploaded image: decode, preprocess, predict.

    Args:
        predictor: an inference.Predictor.
        data: PNG or JPEG bytes, or the image open_image returned for them.
        preprocess: fit the image as MNIST was made (preprocess.to_mnist); False takes a
            28x28 light-on-black image as it is.
        first_layer: add the first layer's activations ("first_layer", see first_layer_payload).

    Returns:
        The JSON-ready answer of POST /api/predict.

    Raises:
        RequestError: undecodable or oversized images (4xx), or no digit found (422).
    """
    import numpy as np

    start = time.perf_counter()
    image = open_image(data) if isinstance(data, bytes) else data
    digit_image = fit_upload(image, preprocess)
    prepared = time.perf_counter()
    batch = digit_image[None]  # (1, 28, 28) uint8
    if first_layer and predictor.first_layer_shape is not None:
        probabilities, activations = predictor.predict_with_first_layer(batch)
    else:
        probabilities, activations = predictor.predict(batch), None
    done = time.perf_counter()
    probabilities = probabilities[0]  # calibrated by the predictor (its calibration.json)
    doubt = bool(probabilities.max() < predictor.threshold)
    answer = {
        "digit": int(probabilities.argmax()),
        "probabilities": np.round(probabilities.astype(float), 6).tolist(),
        "doubt": doubt,  # the top probability is below the model's threshold: "not sure"
        "message": calibration.doubt_message(probabilities) if doubt else None,
        "model": predictor.name,
        "runtime": predictor.runtime,
        "input": digit_image.tolist(),
        "timing_ms": {
            "preprocess": round((prepared - start) * 1e3, 3),
            "predict": round((done - prepared) * 1e3, 3),
        },
    }
    if activations is not None:
        answer["first_layer"] = first_layer_payload(activations[0], predictor.first_layer_shape)
    return answer


# ------------------------------------------------------------------ the app


def _json(data, status: int = 200):
    from starlette.responses import Response

    # json.dumps directly: FastAPI's encoder walks every one of the 784 pixels in Python
    return Response(json.dumps(data, separators=(",", ":")), status, media_type="application/json")


def create_app(predictor, plain: bool = False):
    """The FastAPI app serving the page and the API for one loaded predictor.

    Args:
        predictor: an inference.Predictor (see inference.load_predictor).
        plain: POST /api/predict by FastAPI's route and Starlette's form parser, as LeanPredict's
            reference (False: LeanPredict answers it first).

    Returns:
        fastapi.FastAPI (plain) or a LeanPredict around it; run it with uvicorn, or test it with fastapi.testclient.TestClient.

    Example:
        >>> app = create_app(load_predictor("runs/cnn"))   # doctest: +SKIP
    """
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.responses import FileResponse
    from starlette.staticfiles import StaticFiles

    app = FastAPI(
        title="mnistlab",
        summary="Handwritten digit recognition: POST an image, get the digit and its probabilities.",
        docs_url=None,  # served below, with a CSP that lets Swagger UI's CDN in on that page only
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    Answer, Health, Problem, Example = _schemas()
    app.state.predictor = predictor
    # Pillow's warnings (decompression bombs, palette transparency) are answered, not printed
    warnings.filterwarnings("ignore", module=r"PIL\.")
    health = json.dumps({"status": "ok", **predictor.describe(), "process": os.getpid()})

    @app.exception_handler(RequestError)
    async def refused(request, error: RequestError):
        return _json({"error": error.message}, error.status)

    @app.exception_handler(HTTPException)
    async def http_error(request, error: HTTPException):
        return _json({"error": str(error.detail)}, error.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, error):
        return _json({"error": f"Invalid request: {error.errors()}"}, 422)

    @app.exception_handler(Exception)
    async def unexpected(request, error: Exception):  # logged by uvicorn; the server stays up
        return _json(
            {"error": f"Internal error ({type(error).__name__}); see the server log."}, 500
        )

    @app.get("/api/health", response_model=Health)
    async def api_health():
        from starlette.responses import Response

        return Response(health, media_type="application/json")

    @app.post(
        "/api/predict",
        response_model=Answer,
        responses={status: {"model": Problem} for status in (400, 413, 415, 422)},
        openapi_extra={"requestBody": PREDICT_REQUEST_BODY},
    )
    async def api_predict(request: Request):
        """The digit in an image (PNG or JPEG): see the request body's forms and the answer."""
        data, options = await read_request(request)
        return _json(await answer_predict(predictor, data, options))

    @app.get(
        "/api/example",
        response_model=Example,
        responses={503: {"model": Problem, "description": "MNIST is not on this machine"}},
    )
    async def api_example():
        """A random MNIST test image, its label and the model's answer for it (as is, 28x28)."""
        index, label, data = random_test_digit()
        answer = await run_in_threadpool(predict_image, predictor, data, False, True)
        return _json({**answer, "index": index, "label": label})

    @app.get("/docs", include_in_schema=False)
    async def docs():
        from fastapi.openapi.docs import get_swagger_ui_html

        page = get_swagger_ui_html(openapi_url="/openapi.json", title="mnistlab API")
        page.headers["Content-Security-Policy"] = DOCS_CONTENT_SECURITY_POLICY
        return page

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(
            os.path.join(STATIC_DIR, "index.html"),
            headers={
                "Content-Security-Policy": CONTENT_SECURITY_POLICY,
                "Cache-Control": "no-cache",
            },
        )

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app if plain else LeanPredict(app, predictor)


async def answer_predict(predictor, data: bytes, options: dict) -> dict:
    """The answer to POST /api/predict for a read request (request_body's readers)."""
    from starlette.concurrency import run_in_threadpool

    preprocess = flag(options.get("preprocess"), "preprocess", True)
    first_layer = flag(options.get("first_layer"), "first_layer", False)
    image = open_image(data)  # the header only: type and size checks
    small = image.width * image.height <= INLINE_PIXELS
    if small and predictor.runtime == "onnx":  # a few milliseconds at most: a drawing
        # on the event loop, one at a time: each costs what it costs alone, where threads
        # sharing the cores made 8 concurrent drawings take 5 times as long each
        return predict_image(predictor, image, preprocess, first_layer)
    # larger images (photos) take tens of milliseconds: off the event loop
    return await run_in_threadpool(predict_image, predictor, image, preprocess, first_layer)


class LeanPredict:
    """The app with POST /api/predict answered before FastAPI's routing: the request read from
    the ASGI messages (request_body.read_asgi), the JSON written as two messages. About 0.4 ms
    less a drawing than the route in create_app, which answers the same (``plain=True``, and
    ``mnistlab serve --plain``; tests/test_serve.py runs both). Everything else goes to app,
    whose attributes this object passes on."""

    PATH = "/api/predict"

    def __init__(self, app, predictor):
        self.app, self.predictor = app, predictor

    def __getattr__(self, name):
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != self.PATH or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        status = 200
        try:
            data, options = await read_asgi(scope, receive)
            answer = await answer_predict(self.predictor, data, options)
        except RequestError as error:
            status, answer = error.status, {"error": error.message}
        except Exception as error:  # as the plain route: a 500 in words, the trace in the log
            logging.getLogger("uvicorn.error").exception("Exception in POST %s", self.PATH)
            status = 500
            answer = {"error": f"Internal error ({type(error).__name__}); see the server log."}
        body = json.dumps(answer, separators=(",", ":")).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def serve(
    spec: str | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    runtime: str = "auto",
    log_requests: bool = False,
    workers: int = 1,
    plain: bool = False,
) -> None:
    """Loads the model and serves the page and API until interrupted.

    Args:
        spec: run folder, .keras or .onnx file, or None for the shipped model.
        host, port: where to listen (127.0.0.1: this machine only; 0.0.0.0: the network).
        runtime: "auto", "onnx" or "keras" (see inference.load_predictor).
        log_requests: print one line per request (costs throughput under load).
        workers: server processes, each with its own copy of the model and its own socket on
            the port (see workers.py; one a core serves the most requests).
        plain: FastAPI's own route for POST /api/predict (see create_app).

    Raises:
        ValueError: the model cannot be loaded, or the port is taken.
    """
    try:
        import uvicorn
    except ImportError:
        raise ValueError(
            "The server needs fastapi and uvicorn: pip install 'mnistlab[serve]'."
        ) from None

    return_freed_memory()
    predictor = load_predictor(spec, runtime)  # in every worker too; here: fail early, say what
    options = {"access_log": log_requests, "log_level": "warning"}
    if workers > 1 and not reuse_port_balances():  # uvicorn's workers: one shared socket
        _announce(predictor, host, port, workers)
        del predictor
        os.environ[WORKER_MODEL] = "" if spec is None else str(spec)
        os.environ[WORKER_RUNTIME] = runtime
        os.environ[WORKER_PLAIN] = "1" if plain else ""
        uvicorn.run(
            f"{__name__}:worker_app",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            **options,
        )
        return
    sock = listen(host, port, reuse_port=workers > 1)
    group = None
    if workers > 1:
        address = sock.getsockname()[:2]
        arguments = (spec, runtime, plain, options)
        group = WorkerGroup(_serve_in_worker, arguments, workers - 1, address)
        group.start()
        # uvicorn re-raises SIGTERM once it has stopped; with the default handler that would end
        # this process before the finally below stops the others
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    _announce(predictor, host, port, workers)
    try:
        _run(create_app(predictor, plain), options, sock)
    finally:
        if group is not None:
            group.stop()


def _exit_on_sigterm(signum, frame):
    raise SystemExit(0)  # asked to stop, and stopped: a clean exit


def _announce(predictor, host: str, port: int, workers: int) -> None:
    print(
        f"Model {predictor.name} from {predictor.source} on {predictor.runtime} "
        f"({predictor.note}).\nServing on http://{host}:{port}/  (Ctrl+C to stop)"
        + (f", {workers} worker processes" if workers > 1 else ""),
        flush=True,
    )


def _run(app, options: dict, sock) -> None:
    """uvicorn serving app on an already listening socket until SIGINT or SIGTERM."""
    import uvicorn

    uvicorn.Server(uvicorn.Config(app, **options)).run(sockets=[sock])


def _serve_in_worker(spec, runtime, plain, options, address, started) -> None:
    """One of serve(workers=N)'s other processes (workers.WorkerGroup): load, listen, serve."""
    return_freed_memory()
    app = create_app(load_predictor(spec, runtime), plain)
    sock = listen(*address, reuse_port=True)
    started()  # returns once every process listens
    _run(app, options, sock)


WORKER_MODEL, WORKER_RUNTIME = "MNISTLAB_SERVE_MODEL", "MNISTLAB_SERVE_RUNTIME"
WORKER_PLAIN = "MNISTLAB_SERVE_PLAIN"


def worker_app():
    """The app of one of uvicorn's worker processes where SO_REUSEPORT does not balance."""
    return_freed_memory()
    spec = os.environ.get(WORKER_MODEL) or None
    predictor = load_predictor(spec, os.environ.get(WORKER_RUNTIME, "auto"))
    return create_app(predictor, plain=bool(os.environ.get(WORKER_PLAIN)))
