"""``mnistlab serve`` as its own process, for the server benchmarks (serve_load, serve_memory)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START_TIMEOUT = 120  # seconds for the server to load the model and answer


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(port: int, *options: str) -> tuple[subprocess.Popen, float, dict]:
    """``mnistlab serve --port PORT OPTIONS...`` on this checkout's source.

    Returns:
        the process, its seconds from start to the first /api/health answer, and that answer.
    """
    command = [sys.executable, "-m", "mnistlab", "serve", "--port", str(port), *options]
    env = {**os.environ, "PYTHONPATH": os.path.join(REPO, "src")}
    start = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    while time.perf_counter() - start < START_TIMEOUT:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {process.stderr.read().decode()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1) as answer:
                return process, time.perf_counter() - start, json.loads(answer.read())
        except OSError:
            time.sleep(0.02)
    process.kill()
    raise RuntimeError(f"the server did not answer /api/health in {START_TIMEOUT} s")


def stop(process: subprocess.Popen) -> str:
    """Stops the server; returns what it wrote to stderr."""
    process.terminate()
    try:
        _, errors = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        _, errors = process.communicate()
    return errors.decode(errors="replace")
