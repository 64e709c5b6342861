"""Keeping TensorFlow, XLA, absl and oneDNN off the terminal unless the user asks for them.

The backends log from C++ before Python can configure anything: TensorFlow's oneDNN notice
and absl's "All log messages before absl::InitializeLog() is called ..." are written straight
to file descriptor 2 while ``import tensorflow`` runs, whatever TF_CPP_MIN_LOG_LEVEL says. So
``quiet_backends`` sets the backends' variables (for the logs that come later) and installs an
import hook that points descriptor 2 at /dev/null while a backend's top-level package is first
imported; Python's own ``sys.stderr`` keeps the terminal throughout, so mnistlab's messages and
tracebacks still show.

The user lets everything through with ``mnistlab --verbose ...`` or MNISTLAB_VERBOSE=1, and
a TF_CPP_MIN_LOG_LEVEL of their own wins: then the hook is not installed either.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import sys
import warnings

VERBOSE_ENV = "MNISTLAB_VERBOSE"  # 1: show the backends' own logs and warnings
TF_LOG_ENV = "TF_CPP_MIN_LOG_LEVEL"  # TensorFlow's C++ logs: 0 all ... 3 fatal only
QUIET_TF_LOG_LEVEL = "3"  # also hides E-lines such as node_def_util's harmless attribute notes
QUIET_ENVIRONMENT = {
    TF_LOG_ENV: QUIET_TF_LOG_LEVEL,
    "GRPC_VERBOSITY": "ERROR",  # TensorFlow's and JAX's gRPC start-up lines
    "GLOG_minloglevel": "2",  # glog-based libraries (XLA's older builds)
}
# Python loggers of the backends: their WARNINGs (tf.function retracing, ...) are for developers
QUIET_LOGGERS = ("tensorflow", "absl", "jax._src.xla_bridge", "h5py")
# top-level packages whose first import writes C++ logs to descriptor 2
NOISY_PACKAGES = ("tensorflow", "keras", "jax", "jaxlib", "torch", "tf_keras")

QUIET_MARK_ENV = "MNISTLAB_QUIET"  # set by quiet_backends, so children know TF_CPP_... is ours

_installed = False
_silenced = 0  # depth of silent_descriptor_2 blocks (an import inside an import)


def verbose_requested() -> bool:
    """Whether the user asked for the backends' own logs (MNISTLAB_VERBOSE=1, or true/yes)."""
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def quiet_backends() -> bool:
    """Silences the backends' logs for the rest of the process, unless the user asked for them.

    Safe to call more than once. Call it before TensorFlow loads: an import that has already
    happened has already printed.

    Returns:
        True if quieting is in force, False if the user's settings let the logs through.
    """
    global _installed
    ours = os.environ.get(QUIET_MARK_ENV) == "1"  # a parent mnistlab process set them
    if verbose_requested() or (TF_LOG_ENV in os.environ and not ours):
        return False  # the user's own TF_CPP_MIN_LOG_LEVEL wins, and keeps the hook out
    os.environ[QUIET_MARK_ENV] = "1"
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    # Keras and TensorFlow warn about their own internals (deprecations, retracing hints)
    for module in ("tensorflow", "keras", "tf_keras", "jax", "absl", "google.protobuf"):
        warnings.filterwarnings("ignore", module=module)
    if not _installed:
        sys.meta_path.insert(0, _SilentImportFinder())
        _installed = True
    return True


def show_everything() -> None:
    """Turns quieting off for this process (``mnistlab --verbose``): MNISTLAB_VERBOSE=1 for
    the code, and the children, that ask ``verbose_requested``."""
    os.environ[VERBOSE_ENV] = "1"


def note(message: str) -> None:
    """One line for the user on stderr, in mnistlab's words (a fallback, a slow path, a
    missing extra), once a process however often it recurs:
    ``note("onnxruntime is not installed; ...")``."""
    if message in _noted:
        return
    _noted.add(message)
    print(f"mnistlab: {message}", file=sys.stderr, flush=True)


_noted: set[str] = set()  # the notes already printed in this process


@contextlib.contextmanager
def silent_descriptor_2():
    """Points file descriptor 2 at /dev/null inside the block, where C++ code writes its logs;
    ``sys.stderr`` is moved to a copy of the real descriptor meanwhile, so Python's own
    messages still reach the terminal. Does nothing where descriptor 2 cannot be duplicated."""
    global _silenced
    if _silenced:  # an outer block already silenced it
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, AttributeError, ValueError):
        yield
        return
    python_stderr = sys.stderr
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)
    try:
        copy = os.fdopen(os.dup(saved), "w", buffering=1, errors="backslashreplace")
    except OSError:
        copy = None
    if copy is not None:
        sys.stderr = copy
    _silenced += 1
    try:
        yield
    finally:
        _silenced -= 1
        if copy is not None:
            copy.flush()
            sys.stderr = python_stderr
            copy.close()
        os.dup2(saved, 2)
        os.close(saved)


class _SilentImportFinder(importlib.abc.MetaPathFinder):
    """Wraps the first import of each NOISY_PACKAGES package in ``silent_descriptor_2``."""

    def __init__(self):
        self._busy = False

    def find_spec(self, fullname, path, target=None):
        if self._busy or "." in fullname or fullname not in NOISY_PACKAGES:
            return None
        if verbose_requested():
            return None
        self._busy = True
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._busy = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _SilentLoader(spec.loader)
        return spec


class _SilentLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        with silent_descriptor_2():
            self._loader.exec_module(module)

    def __getattr__(self, name):  # is_package, get_resource_reader, ...: the real loader's
        return getattr(self._loader, name)
