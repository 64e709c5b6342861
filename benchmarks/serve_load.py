"""The server under load: `mnistlab serve` answering 8 concurrent clients, small and canvas PNGs.

Starts ``mnistlab serve`` (the shipped model on ONNX Runtime, or --model) as its own process on
a free port, waits for /api/health, then for each kind of request sends --requests requests
over CONNECTIONS keep-alive connections from one asyncio process writing pre-built HTTP/1.1
requests (little CPU per request, so most of the 2 cores are the server's):

- "28x28 PNG": an MNIST test digit, raw ``image/png``, ``?preprocess=false``;
- "280x280 canvas PNG": a multipart upload of a browser canvas's PNG (RGBA, transparent,
  anti-aliased black strokes 18 px wide), the issue's target;
- "280x280 canvas PNG, first_layer": the same with ``?first_layer=true``, as the page sends it
  (the answer adds the first layer's maps, ~29 KB of base64).

Reports requests per second, latency p50/p99, errors (any status but 200, or a broken
connection), the server's resident memory (VmRSS) every RSS_EVERY requests, and the
preprocessing time of a 300x300 canvas PNG inside the server (``timing_ms.preprocess`` of its
answers, one request at a time) against the same work in this process (``uploads.open_image``,
``_decode`` and ``to_mnist``), and inside the server under the 8-client canvas load.

The server runs as ``mnistlab serve --workers 2`` by default: one process a core of this
2-core machine, each with its own socket on the port (serving/workers.py), which is how the
targets are meant; ``--workers 1`` measures the default ``mnistlab serve``.

Usage (2 shared cores: time it alone):
    /work/tools/quiet.sh python benchmarks/serve_load.py        # about 1 minute
    python benchmarks/serve_load.py --requests 500              # a quick look
    python benchmarks/serve_load.py --workers 1 --out benchmarks/results/serve_load.workers1.md

Writes benchmarks/results/serve_load.json and .md (--out another path); exits with status 1
when a target (TARGETS) is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import io
import json
import math
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from runinfo import git_commit, write_report  # noqa: E402
from server_process import free_port, start_server, stop  # noqa: E402

OUT = os.path.join(HERE, "results", "serve_load")  # .json and .md
CONNECTIONS = 8  # concurrent keep-alive clients
REQUESTS = 10_000  # requests per kind
WARMUP = 200  # requests per kind before the measured ones
RSS_EVERY = 1_000  # requests between samples of the server's resident memory
PREPROCESS_CALLS = 300  # 300x300 PNGs timed one at a time, in the server and in process
PAGE = "280x280 canvas PNG, first_layer"  # as the page sends it: no target of its own
KINDS = ("28x28 PNG", "280x280 canvas PNG", PAGE)
TARGETS = {
    "28x28 PNG": 1_500,  # requests per second, at least
    "280x280 canvas PNG": 500,
    "rss_growth_mb": 20.0,  # resident memory, last sample minus first, at most (each kind)
    "preprocess_ms": 3.0,  # a 300x300 canvas PNG in the server, p50, at most
}


# --- requests ------------------------------------------------------------------------------


def canvas_png(size: int = 280, stroke: int = 18) -> bytes:
    """A browser canvas's toDataURL PNG of a handwritten 3: RGBA, transparent paper, black
    strokes stroke pixels wide, anti-aliased (drawn at 4x and reduced)."""
    from PIL import Image, ImageDraw

    scale = 4
    mask = Image.new("L", (size * scale, size * scale), 0)
    draw = ImageDraw.Draw(mask)
    turns = [(0.30, 0.22), (0.55, 0.15), (0.70, 0.30), (0.50, 0.48), (0.72, 0.65)]
    turns += [(0.58, 0.84), (0.30, 0.80)]
    points = [(x * size * scale, y * size * scale) for x, y in turns]
    draw.line(points, fill=255, width=stroke * scale, joint="curve")
    for x, y in (points[0], points[-1]):  # round caps, as the page's lineCap = "round"
        radius = stroke * scale / 2
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
    canvas = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    canvas.paste((0, 0, 0, 255), mask=mask.reduce(scale))
    return png(canvas)


def small_png() -> tuple[bytes, str]:
    """A 28x28 PNG: MNIST's first test digit if MNIST is at hand, else the canvas's 3, fitted."""
    from PIL import Image

    from mnistlab.data.preprocess import to_mnist

    try:
        from mnistlab.data.mnist import load_mnist

        _, (images, _) = load_mnist(download=False)
        return png(Image.fromarray(images[0])), "MNIST test digit 0"
    except Exception:  # no local MNIST: any 28x28 digit costs the same
        return png(Image.fromarray(to_mnist(canvas_png()))), "the canvas 3, fitted"


def png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def http_post(path: str, body: bytes, content_type: str) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def multipart(data: bytes, boundary: str = "----mnistlabBoundary7MA4YWxkTrZu0gW") -> tuple:
    """(body, content type) of a form with one file field, as a browser's FormData sends it."""
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="digit.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


# --- the server ------------------------------------------------------------------------------


def resident_mb(pid: int) -> float:
    """The resident memory of a process and all its descendants (the server's workers)."""
    total = 0.0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as children:
            total += sum(resident_mb(int(child)) for child in children.read().split())
    return total


# --- the load generator ----------------------------------------------------------------------


async def read_answer(reader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    start = head.lower().index(b"content-length:") + 15
    length = int(head[start : head.index(b"\r\n", start)])
    return status, await reader.readexactly(length)


async def load(port: int, request: bytes, total: int, pid: int | None) -> dict:
    """Sends request total times over CONNECTIONS keep-alive connections, as fast as answered.

    Returns:
        requests, errors, seconds, requests per second, p50/p99 ms, the server's resident MB
        every RSS_EVERY requests (when pid is given), and p50 of the answers' preprocess ms.
    """
    latencies, errors, rss, preprocess = [], [0], [], []
    sent = [0]

    async def client():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while sent[0] < total:
                sent[0] += 1
                start = time.perf_counter()
                writer.write(request)
                status, body = await read_answer(reader)
                latencies.append(time.perf_counter() - start)
                if status != 200:
                    errors[0] += 1
                elif len(latencies) % 10 == 0:  # the server's own preprocessing time
                    at = body.find(b'"preprocess":')
                    preprocess.append(float(body[at + 13 : body.index(b",", at)]))
                if pid and len(latencies) % RSS_EVERY == 0:
                    rss.append(round(resident_mb(pid), 1))
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors[0] += 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CONNECTIONS)))
    seconds = time.perf_counter() - start
    ordered = sorted(latencies) or [math.nan]
    return {
        "requests": len(latencies),
        "errors": errors[0],
        "seconds": round(seconds, 2),
        "requests_per_s": round(len(latencies) / seconds, 1),
        "p50_ms": round(ordered[len(ordered) // 2] * 1e3, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1e3, 2),
        "rss_mb": rss,
        "rss_growth_mb": round(rss[-1] - rss[0], 1) if len(rss) > 1 else 0.0,
        "preprocess_p50_ms": round(statistics.median(preprocess), 3) if preprocess else None,
    }


async def one_at_a_time(port: int, request: bytes, count: int) -> list[float]:
    """The answers' timing_ms.preprocess of count requests sent one after another."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    times = []
    try:
        for _ in range(count):
            writer.write(request)
            status, body = await read_answer(reader)
            if status != 200:
                raise RuntimeError(f"a 300x300 canvas PNG got {status}: {body[:200]!r}")
            times.append(json.loads(body)["timing_ms"]["preprocess"])
    finally:
        writer.close()
    return times


def in_process_ms(data: bytes, count: int) -> list[float]:
    """Milliseconds of the server's preprocessing code, called here: header, decode, fit."""
    from mnistlab.data.preprocess import to_mnist
    from mnistlab.serving import uploads

    times = []
    for _ in range(count + 5):
        start = time.perf_counter()
        to_mnist(uploads._decode(uploads.open_image(data)))
        times.append((time.perf_counter() - start) * 1e3)
    return times[5:]


def measure(model: str | None, requests: int, workers: int, plain: bool = False) -> dict:
    small, small_source = small_png()
    drawing_body, drawing_type = multipart(canvas_png(280))
    big = canvas_png(300)
    kinds = {
        "28x28 PNG": http_post("/api/predict?preprocess=false", small, "image/png"),
        "280x280 canvas PNG": http_post("/api/predict", drawing_body, drawing_type),
        PAGE: http_post("/api/predict?first_layer=true", drawing_body, drawing_type),
    }
    port = free_port()
    options = ["--workers", str(workers), *(["--model", model] if model else [])]
    options += ["--plain"] if plain else []
    process, _, health = start_server(port, *options)
    figures = {"model": health["model"], "runtime": health["runtime"], "small": small_source}
    figures["workers"], figures["plain"] = workers, plain
    try:
        preprocess_request = http_post("/api/predict", big, "image/png")
        asyncio.run(one_at_a_time(port, preprocess_request, 20))  # warm-up
        server_ms = asyncio.run(one_at_a_time(port, preprocess_request, PREPROCESS_CALLS))
        alone_ms = in_process_ms(big, PREPROCESS_CALLS)
        figures["preprocess"] = {
            "image": f"300x300 canvas PNG, {len(big):,} B",
            "server_p50_ms": round(statistics.median(server_ms), 3),
            "alone_p50_ms": round(statistics.median(alone_ms), 3),
        }
        for name, request in kinds.items():
            asyncio.run(load(port, request, WARMUP, None))
            figures[name] = asyncio.run(load(port, request, requests, process.pid))
    finally:
        figures["stderr"] = stop(process).strip()
    return figures


# --- the report ------------------------------------------------------------------------------


def missed_targets(figures: dict, requests: int) -> list[str]:
    missed = []
    for name in KINDS:
        result = figures[name]
        if name in TARGETS and result["requests_per_s"] < TARGETS[name]:
            missed.append(f"{name}: {result['requests_per_s']:,.0f} req/s < {TARGETS[name]:,}")
        if result["errors"] or result["requests"] != requests:
            missed.append(f"{name}: {result['errors']} errors, {result['requests']} answered")
        if result["rss_growth_mb"] > TARGETS["rss_growth_mb"]:
            missed.append(f"{name}: resident memory grew {result['rss_growth_mb']} MB")
    if figures["preprocess"]["server_p50_ms"] > TARGETS["preprocess_ms"]:
        missed.append(
            f"preprocessing a 300x300 PNG in the server: {figures['preprocess']['server_p50_ms']}"
            f" ms > {TARGETS['preprocess_ms']} ms"
        )
    if figures["stderr"]:
        missed.append(f"the server wrote to stderr: {figures['stderr'][:200]}")
    return missed


def markdown(report: dict) -> str:
    figures, pre = report["figures"], report["figures"]["preprocess"]
    lines = [
        "# The server under load",
        "",
        f"`{report['command']}`. Machine: {report['machine']}. Commit {report['commit']}, "
        f"{report['date']}. `mnistlab serve --workers {figures['workers']}"
        f"{' --plain' if figures.get('plain') else ''}` ({figures['model']} "
        f"on {figures['runtime']}), its own processes, against one asyncio client process with "
        f"{CONNECTIONS} keep-alive connections on the same cores. 28x28: "
        f"{figures['small']}, raw image/png, `?preprocess=false`; 280x280: a canvas PNG "
        "(RGBA, transparent, anti-aliased 18 px black strokes) as a multipart upload; with "
        "`?first_layer=true` (the first layer's maps too) as the page sends it.",
        "",
        "| request | requests/s | target | p50 ms | p99 ms | requests | errors "
        f"| resident MB every {RSS_EVERY:,} | growth MB |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for name in KINDS:
        result = figures[name]
        target = f"≥ {TARGETS[name]:,}" if name in TARGETS else "-"
        samples = ", ".join(f"{value:.0f}" for value in result["rss_mb"]) or "-"
        lines.append(
            f"| {name} | {result['requests_per_s']:,.0f} | {target} | "
            f"{result['p50_ms']} | {result['p99_ms']} | {result['requests']:,} | "
            f"{result['errors']} | {samples} | {result['rss_growth_mb']} |"
        )
    under_load = figures[PAGE]["preprocess_p50_ms"]
    lines += [
        "",
        f"Preprocessing (header, decode, fit like MNIST) of a {pre['image']}, p50 of "
        f"{PREPROCESS_CALLS}: {pre['server_p50_ms']} ms in the server (its answers' "
        f"`timing_ms.preprocess`, one request at a time; target ≤ {TARGETS['preprocess_ms']} ms), "
        f"{pre['alone_p50_ms']} ms alone in this process; a 280x280 canvas PNG under the "
        f"{CONNECTIONS}-client load: {under_load} ms in the server.",
        "",
        f"Resident memory is flat when its last sample minus its first is at most "
        f"{TARGETS['rss_growth_mb']:.0f} MB. Server stderr: {figures['stderr'] or 'nothing'}.",
        "",
    ]
    if report["missed"]:
        lines += ["Missed: " + "; ".join(report["missed"]) + ".", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--requests", type=int, default=REQUESTS, help="requests per kind (default: %(default)s)"
    )
    parser.add_argument(
        "--model", default=None, help="run folder, .keras or .onnx file (default: shipped model)"
    )
    parser.add_argument("--out", default=OUT + ".md", help="markdown path (.json beside it)")
    parser.add_argument(
        "--workers", type=int, default=2, help="mnistlab serve --workers (default: %(default)s)"
    )
    parser.add_argument(
        "--plain", action="store_true", help="mnistlab serve --plain: FastAPI's /api/predict route"
    )
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.join(REPO, "src"))
    from mnistlab.core import runs

    figures = measure(args.model, args.requests, args.workers, args.plain)
    report = {
        "command": " ".join(["python benchmarks/serve_load.py", *(argv or sys.argv[1:])]),
        "machine": runs.machine_description(),
        "load_average": round(os.getloadavg()[0], 2),
        "commit": git_commit(),
        "date": datetime.date.today().isoformat(),
        "connections": CONNECTIONS,
        "figures": figures,
        "targets": TARGETS,
        "missed": missed_targets(figures, args.requests),
    }
    return write_report(report, args.out, markdown(report))


if __name__ == "__main__":
    sys.exit(main())
