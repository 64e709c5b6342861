"""``mnistlab serve --workers N``: N processes, each with its own socket on the port.

Real server processes on a free port (the shipped model on ONNX Runtime: no TensorFlow, about a
second to start). References: the kernel's own spreading of connections (every process answers
some of 32 new connections), and the processes' ids and exit codes.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import CLI_FOLDER, fresh_python

pytest.importorskip("fastapi")
pytest.importorskip("onnxruntime")

from mnistlab.serving.workers import listen, reuse_port_balances  # noqa: E402

START_SECONDS = 120


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def health(port: int) -> dict:
    """/api/health over a new connection (so the kernel picks a socket for it)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5) as answer:
        return json.loads(answer.read())


def start(*options) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "mnistlab", "serve", "--port", str(port), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=CLI_FOLDER,
    )
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            health(port)
            return process, port
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError("the server did not answer")


def answering(port: int, connections: int = 32) -> set[int]:
    return {health(port)["process"] for _ in range(connections)}


def children(pid: int) -> set[int]:
    found = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as file:
            found |= {int(child) for child in file.read().split()}
    return found


@pytest.mark.skipif(not reuse_port_balances(), reason="SO_REUSEPORT balancing is Linux's")
def test_every_worker_answers_a_killed_one_is_replaced_and_all_stop_together():
    process, port = start("--workers", "2")
    try:
        first = answering(port)
        assert process.pid in first and len(first) == 2, first  # the kernel spread them
        (other,) = first - {process.pid}
        os.kill(other, signal.SIGKILL)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            try:
                if len(answering(port, 8) - {process.pid, other}) == 1:
                    break
            except OSError:  # a connection queued at the killed process's socket is reset
                pass
            time.sleep(0.2)
        replaced = answering(port)
        assert other not in replaced and process.pid in replaced and len(replaced) == 2
        workers = children(process.pid) & replaced
    finally:
        process.terminate()
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "2 worker processes" in out
    assert err.strip().splitlines() == [
        f"mnistlab serve: worker process 2 exited (code -{signal.SIGKILL}); starting another."
    ]
    assert workers and not any(os.path.exists(f"/proc/{pid}") for pid in workers)


@pytest.mark.skipif(not reuse_port_balances(), reason="SO_REUSEPORT balancing is Linux's")
def test_workers_stop_when_the_first_process_is_killed():
    process, port = start("--workers", "2")
    (other,) = answering(port) - {process.pid}
    process.kill()
    process.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{other}") and time.monotonic() < deadline:
        time.sleep(0.1)
    with open(f"/proc/{other}/stat") if os.path.exists(f"/proc/{other}") else open(os.devnull) as s:
        assert s.read().split(") ")[-1][:1] in ("", "Z"), "the worker outlived its parent"


def test_a_taken_port_is_refused_in_words():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ValueError, match=f"Port {port} on 127.0.0.1 is already in use"):
            listen("127.0.0.1", port).close()
        result = subprocess.run(
            [sys.executable, "-m", "mnistlab", "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            cwd=CLI_FOLDER,
            timeout=START_SECONDS,
        )
    assert result.returncode == 2 and "is already in use" in result.stderr
    assert "Traceback" not in result.stderr and "Serving on" not in result.stdout


def test_the_python_api_names_serve_and_export_and_loads_them_on_first_use():
    code = (
        "import sys, mnistlab\n"
        "assert 'fastapi' not in sys.modules and 'mnistlab.serving.serve' not in sys.modules\n"
        "from mnistlab.serving.serve import serve\n"
        "from mnistlab.serving.export import export_onnx\n"
        "assert mnistlab.serve is serve and mnistlab.export_onnx is export_onnx\n"
        "assert {'serve', 'export_onnx'} <= set(mnistlab.__all__)\n"
        "try:\n    mnistlab.nothing\nexcept AttributeError as error:\n    print(error)\n"
    )
    assert fresh_python(code) == "module 'mnistlab' has no attribute 'nothing'"
