"""Choosing the backend: what mnistlab sets before Keras and TensorFlow load."""

from __future__ import annotations

import pytest

from tests.conftest import ONEDNN, fresh_python


@pytest.mark.parametrize(
    "backend, user_setting, expected",
    [
        ("tensorflow", None, "1"),  # mnistlab's default: the faster kernels
        ("tensorflow", "0", "0"),  # the user's own choice stands
        ("jax", None, "None"),  # other backends are left alone
        ("torch", None, "None"),
    ],
)
def test_tensorflow_gets_onednn_unless_the_user_chose(backend, user_setting, expected):
    code = (
        "import os, sys\n"
        "from mnistlab.backend import use_backend\n"
        f"use_backend({backend!r})\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        f"print(os.environ.get({ONEDNN!r}))"
    )
    changes = {ONEDNN: user_setting} if user_setting is not None else {}
    assert fresh_python(code, **changes) == expected


@pytest.mark.parametrize("user_setting, expected", [(None, "True True"), ("0", "False False")])
def test_the_setting_reaches_tensorflow_and_the_run_record(user_setting, expected):
    """TensorFlow's own report of its kernels after mnistlab imported Keras, and what a run's
    meta.json records of it."""
    code = (
        "from mnistlab.backend import keras\n"
        "keras()\n"
        "from tensorflow.python.util import _pywrap_util_port\n"
        "from mnistlab.runs import environment_versions\n"
        "print(bool(_pywrap_util_port.IsMklEnabled()), environment_versions()['onednn'])"
    )
    changes = {ONEDNN: user_setting} if user_setting is not None else {}
    assert fresh_python(code, KERAS_BACKEND="tensorflow", **changes) == expected


def test_nothing_is_set_once_tensorflow_is_loaded():
    """With TensorFlow already loaded the setting could no longer apply, so none is made."""
    code = (
        "import os, tensorflow\n"
        "from mnistlab.backend import use_backend\n"
        "use_backend('tensorflow')\n"
        f"print(os.environ.get({ONEDNN!r}))"
    )
    assert fresh_python(code) == "None"
