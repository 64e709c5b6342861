"""Several server processes on one port, each with its own listening socket.

uvicorn's ``--workers`` shares one listening socket between its processes: whichever process
wakes first accepts, so the 8 keep-alive connections of a load test often all land in one
process and the others idle (one worker's throughput from two). Here every process binds the
port itself with ``SO_REUSEPORT``, and the kernel spreads new connections over the sockets by
a hash of their addresses (Linux). The first process serves too (no supervisor process holding
its own copy of the libraries), starts the others, restarts any that exit while it serves, and
stops them when it stops. A worker exits on its own if the first process dies.

Where ``SO_REUSEPORT`` does not balance connections (not Linux), ``reuse_port_balances`` is
False and serve.py keeps uvicorn's own ``--workers``.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sys
import threading
import time

START_TIMEOUT = 120.0  # seconds for a worker process to load its model and listen
RESTART_CHECK = 0.5  # seconds between checks that every worker process is alive
QUICK_EXIT, QUICK_EXITS = 10.0, 3  # a process exiting this soon, this often, is not restarted
BACKLOG = 2048  # pending connections a socket holds (uvicorn's default)


def reuse_port_balances() -> bool:
    """True where SO_REUSEPORT spreads a port's connections over its sockets (Linux 3.9+)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def listen(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to host:port and listening; connections queue until served.

    Raises:
        ValueError: the address is taken or cannot be used, in words.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as error:
        sock.close()
        taken = error.errno in (98, 48, 10048)  # EADDRINUSE on Linux, macOS, Windows
        raise ValueError(
            f"Port {port} on {host} is already in use; stop what runs there or pick another "
            "with --port."
            if taken
            else f"Cannot listen on {host}:{port}: {error.strerror}."
        ) from None
    return sock


class WorkerGroup:
    """The other worker processes of a server whose first process serves in this one.

    Args:
        target: a module-level function ``target(*args, address, started)`` run in each new
            process (spawned: a fresh interpreter). It must call ``listen(*address,
            reuse_port=True)``, then ``started()``, which returns once every process listens;
            then serve.
        args: target's first arguments (picklable).
        count: how many processes besides this one.
        address: (host, port) that every process binds.
    """

    def __init__(self, target, args: tuple, count: int, address: tuple[str, int]):
        self._context = multiprocessing.get_context("spawn")
        self._target, self._args, self._address = target, args, address
        self._processes: list = [None] * count
        self._pipes: list = [None] * count  # this end of each process's pipe (see _child)
        self._started: list[float] = [0.0] * count
        self._quick_exits = [0] * count
        self._stopping = threading.Event()
        self._watch = threading.Thread(target=self._restart_exited, daemon=True)

    def start(self) -> None:
        """Starts every process and waits until all of them listen; then lets them serve.

        Raises:
            RuntimeError: a process exited or did not listen within START_TIMEOUT.
        """
        for index in range(len(self._processes)):
            self._launch(index)
        for index in range(len(self._processes)):
            if not self._listening(index):
                code = self._processes[index].exitcode
                self.stop()
                raise RuntimeError(
                    f"Worker process {index + 2} did not start (exit code {code}); see its "
                    "messages above."
                )
        for pipe in self._pipes:  # every socket listens: connections now spread over all
            pipe.send("serve")
        self._watch.start()

    def _launch(self, index: int) -> None:
        mine, theirs = self._context.Pipe()
        process = self._context.Process(
            target=_child,
            args=(self._target, self._args, self._address, theirs),
            name=f"mnistlab-serve-{index + 2}",
            daemon=True,
        )
        process.start()
        theirs.close()
        self._processes[index], self._pipes[index] = process, mine
        self._started[index] = time.monotonic()

    def _listening(self, index: int) -> bool:
        """Waits for process index to say that it listens; False if it exits or times out."""
        try:
            return self._pipes[index].poll(START_TIMEOUT) and self._pipes[index].recv() == "ready"
        except (EOFError, OSError):  # it exited before listening
            return False

    def _restart_exited(self) -> None:
        while not self._stopping.wait(RESTART_CHECK):
            for index, process in enumerate(self._processes):
                if process is None or process.is_alive() or self._stopping.is_set():
                    continue
                quick = time.monotonic() - self._started[index] < QUICK_EXIT
                self._quick_exits[index] = self._quick_exits[index] + 1 if quick else 0
                message = f"mnistlab serve: worker process {index + 2} exited (code "
                message += f"{process.exitcode})"
                if self._quick_exits[index] >= QUICK_EXITS:
                    print(
                        f"{message} {QUICK_EXITS} times just after starting; serving without it.",
                        file=sys.stderr,
                        flush=True,
                    )
                    self._processes[index] = None
                    continue
                print(f"{message}; starting another.", file=sys.stderr, flush=True)
                self._pipes[index].close()
                self._launch(index)
                if self._listening(index):
                    self._pipes[index].send("serve")

    def stop(self, timeout: float = 10.0) -> None:
        """Asks every process to stop (SIGTERM: uvicorn finishes its open requests), then
        kills those still running after timeout seconds."""
        self._stopping.set()
        processes = [process for process in self._processes if process is not None]
        for process in processes:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + timeout
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        for pipe in self._pipes:
            if pipe is not None:
                pipe.close()


def _child(target, args, address, pipe) -> None:
    """A worker process: runs target; stops when the first process is gone (its pipe closes)."""

    def started():
        pipe.send("ready")
        if pipe.recv() != "serve":
            raise RuntimeError("unexpected message from the first server process")
        threading.Thread(target=watch_parent, daemon=True).start()

    def watch_parent():
        try:
            pipe.recv()  # nothing more is sent: returns when the first process is gone
        except (EOFError, OSError):
            pass
        os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's handler: finish, then exit

    try:
        target(*args, address, started)
    except (KeyboardInterrupt, EOFError):  # Ctrl+C reaches every process of the terminal's
        pass  # group; EOFError: the first process was gone before this one listened
