"""Reading POST /api/predict: the image bytes and the options, from any of its five forms.

Two readers give the same answers (tests/test_serve.py runs every request through both):
``read_request`` takes a Starlette request (FastAPI's route, ``mnistlab serve --plain``), and
``read_asgi`` the ASGI scope and messages themselves (serve.py's lean route, the default). Both
bound the body (413 past MAX_REQUEST_BYTES) and read a multipart form of one file part, the form
a browser's FormData sends, with ``simple_multipart``; any other form goes to Starlette's parser.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from urllib.parse import parse_qsl

from mnistlab.serving.uploads import IMAGE_TYPES, RequestError

MAX_REQUEST_BYTES = 8 * 1024 * 1024  # bytes of one request body (base64 adds a third)
RAW_TYPES = ("image/png", "image/jpeg", "application/octet-stream")


def media_type(header: str | None) -> str:
    """ "image/png" of "image/PNG; charset=x": the type, lower case, without parameters."""
    return (header or "").split(";", 1)[0].strip().lower()


def flag(value, name: str, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise RequestError(400, f"Option '{name}' must be true or false, got {value!r}.")


def decode_base64_image(text: str) -> bytes:
    """Image bytes from a data URL ("data:image/png;base64,...") or plain base64 text."""
    text = text.strip()
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        media = media_type(header[5:].split(";base64", 1)[0])
        if ";base64" not in header:
            raise RequestError(
                400, "The data URL must be base64-encoded (data:image/png;base64,...)."
            )
        if media not in IMAGE_TYPES:
            raise RequestError(
                415, f"The data URL holds '{media or 'no type'}'; send image/png or image/jpeg."
            )
    if not text:
        raise RequestError(400, "The image is empty: the base64 text holds no data.")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(
            400, "The image is not valid base64; send a data URL or plain base64 of a PNG or JPEG."
        ) from None


def _too_large() -> RequestError:
    return RequestError(
        413,
        f"The request is larger than {MAX_REQUEST_BYTES // (1024 * 1024)} MB. Send a smaller "
        "image (a digit needs only a few hundred pixels per side).",
    )


def _check_declared(declared: str | None) -> None:
    if declared is not None and declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        raise _too_large()


async def _bounded(chunks) -> bytes:
    """The body from an async iterator of byte chunks, refused past MAX_REQUEST_BYTES."""
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            raise _too_large()
        parts.append(chunk)
    return b"".join(parts)


async def _asgi_chunks(receive):
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestError(400, "The client closed the connection before the body ended.")
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


# one part "name"/"filename" with no quote, backslash or line break in them; an optional type
_PART_HEADERS = re.compile(
    rb'content-disposition: *form-data; *name="[^"\\\r\n]*"; *filename="[^"\\\r\n]*"'
    rb"(?:\r\ncontent-type: *([!-~]+))?",
    re.IGNORECASE,
)
_BOUNDARY = re.compile(r"multipart/form-data; *boundary=([0-9A-Za-z'()+_,./:=?-]{1,70})", re.I)


def simple_multipart(content_type: str | None, body: bytes) -> bytes | None:
    """The file of a multipart form that holds one file part and nothing else (what a
    browser's FormData of one file sends), or None for any other form (Starlette's parser
    reads those).

    Raises:
        RequestError: 415 for a part typed other than PNG, JPEG or octet-stream, as
            multipart_image does.
    """
    match = _BOUNDARY.fullmatch(content_type or "")
    if match is None:
        return None
    delimiter = b"--" + match.group(1).encode("ascii")
    closing = b"\r\n" + delimiter + b"--"
    trimmed = body[:-2] if body.endswith(b"\r\n") else body
    if not body.startswith(delimiter + b"\r\n") or not trimmed.endswith(closing):
        return None
    stop = len(trimmed) - len(closing)  # where the file's bytes end
    head_end = body.find(b"\r\n\r\n", len(delimiter) + 2)
    if head_end < 0 or head_end + 4 > stop:
        return None
    headers = _PART_HEADERS.fullmatch(body, len(delimiter) + 2, head_end)
    if headers is None or body.find(b"\r\n" + delimiter, head_end + 4) != stop:
        return None  # other headers, or a second part
    media = media_type(headers.group(1).decode("ascii")) if headers.group(1) else ""
    if media and media not in RAW_TYPES:
        raise RequestError(
            415,
            f"The uploaded file is '{media}'; send a PNG or JPEG image (image/png, image/jpeg).",
        )
    return body[head_end + 4 : stop]


async def multipart_image(scope, body: bytes) -> bytes:
    """The first file of a multipart form, by Starlette's parser (python-multipart)."""
    from starlette.datastructures import UploadFile
    from starlette.requests import Request

    async def replay():  # the body was already read (and bounded): hand it to the parser
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(scope, replay).form(max_files=1, max_fields=10)
    except Exception as error:  # python-multipart's and starlette's parse errors
        # Starlette raises HTTPException (.detail) inside an app, MultiPartException (.message)
        reason = getattr(error, "detail", None) or getattr(error, "message", None) or error
        message = str(reason).rstrip(".")
        raise RequestError(400, f"The multipart form could not be read: {message}.") from None
    try:
        files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
        if not files:
            raise RequestError(400, "The form holds no file; upload the image as a file field.")
        upload = files[0]
        media = media_type(upload.content_type)
        if media and media not in RAW_TYPES:
            raise RequestError(
                415,
                f"The uploaded file is '{media}'; send a PNG or JPEG image (image/png, image/jpeg).",
            )
        return await upload.read()
    finally:
        await form.close()


async def read_request(request) -> tuple[bytes, dict]:
    """The image bytes of a predict request (a Starlette Request), and its options.

    Raises:
        RequestError: 413 too large, 415 an unsupported content type, 400 malformed.
    """
    content_type = request.headers.get("content-type")
    _check_declared(request.headers.get("content-length"))
    body = await _bounded(request.stream())
    options = dict(request.query_params)
    return await image_and_options(request.scope, content_type, options, body, lean=False)


async def read_asgi(scope, receive) -> tuple[bytes, dict]:
    """read_request's answer from the ASGI scope and receive channel themselves."""
    headers = dict(scope["headers"])  # lower-case names (ASGI); a repeated header: the last
    content_type = headers.get(b"content-type", b"").decode("latin-1") or None
    declared = headers.get(b"content-length")
    _check_declared(declared.decode("latin-1") if declared is not None else None)
    body = await _bounded(_asgi_chunks(receive))
    options = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
    return await image_and_options(scope, content_type, options, body, lean=True)


async def image_and_options(scope, content_type, options: dict, body: bytes, lean: bool):
    """The image bytes in body and the options (query, then JSON keys), by content type.

    lean: a form of one file part is read by simple_multipart, not by Starlette's parser.
    """
    media = media_type(content_type)
    if media == "multipart/form-data":
        data = simple_multipart(content_type, body) if lean else None
        if data is None:  # Starlette's parser: every other form
            data = await multipart_image(scope, body)
    elif media == "application/json":
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise RequestError(
                400, 'The body is not valid JSON; send {"image": "<base64>"}.'
            ) from None
        if isinstance(payload, dict):
            options.update({k: v for k, v in payload.items() if k != "image"})
            payload = payload.get("image")
        if not isinstance(payload, str):
            raise RequestError(
                400, 'The JSON must be {"image": "data:image/png;base64,..."} (or plain base64).'
            )
        data = decode_base64_image(payload)
    elif media == "text/plain":
        try:
            data = decode_base64_image(body.decode("ascii"))
        except UnicodeDecodeError:
            raise RequestError(
                400, "The text body is not base64 (it holds non-ASCII bytes)."
            ) from None
    elif media in RAW_TYPES:
        data = body
    else:
        raise RequestError(
            415,
            f"Unsupported content type '{media or 'none'}'. Send multipart/form-data (a file "
            'upload), application/json {"image": "<base64>"}, text/plain base64, or the '
            "raw bytes as image/png or image/jpeg.",
        )
    if not data:
        raise RequestError(400, "The image is empty (0 bytes). Send a PNG or JPEG of a digit.")
    return data, options
