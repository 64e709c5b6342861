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


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["train", "cnn"], "1"),  # the CNNs: oneDNN, measured faster
        (["train", "mlp"], "0"),  # the MLP: off, oneDNN measured slower
        (["train", "--resume", "{mlp_run}"], "0"),  # the network from the run's config.json
        (["train", "--resume", "{cnn_run}"], "1"),
        (["ensemble", "mlp", "--members", "2"], "0"),
        (["evaluate", "runs/x"], "1"),  # names no network: the default
    ],
)
def test_the_network_decides_the_kernels(tmp_path, argv, expected):
    """The CLI sets the kernels up for the network it will train, before Keras loads."""
    folders = {}
    for model in ("mlp", "cnn"):
        folder = tmp_path / f"{model}_run"
        folder.mkdir()
        (folder / "config.json").write_text(f'{{"model": "{model}"}}')
        folders[f"{model}_run"] = str(folder)
    argv = [part.format(**folders) for part in argv]
    code = (
        "import os, sys\n"
        "from mnistlab.backend import use_backend\n"
        "from mnistlab.cli import build_parser, network_of\n"
        f"use_backend('tensorflow', network_of(build_parser().parse_args({argv!r})))\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        f"print(os.environ.get({ONEDNN!r}))"
    )
    assert fresh_python(code) == expected


def test_the_python_api_keeps_onednn_on_even_for_the_mlp(tmp_path):
    """In Python one process may train the MLP and then a CNN, and TensorFlow fixes its kernels
    when it loads: mnistlab.train('mlp') must not turn them off for the CNN that follows."""
    code = (
        "import json, numpy as np, mnistlab\n"
        "from mnistlab.runs import tensorflow_onednn\n"
        "x = np.zeros((40, 28, 28), np.uint8); y = np.arange(40, dtype=np.uint8) % 10\n"
        "metas = []\n"
        "for name in ('mlp', 'cnn'):\n"
        f"    run = mnistlab.train(name, data=((x, y), (x, y)), out={str(tmp_path)!r} + '/' + name,\n"
        "        epochs=1, val_size=0, verbose=0)\n"
        "    metas.append(json.load(open(run.path + '/meta.json'))['versions']['onednn'])\n"
        "print(tensorflow_onednn(), *metas)"
    )
    assert fresh_python(code) == "True True True"


@pytest.mark.parametrize(
    "flags, expected",
    [
        ("fpu sse2 avx avx2 fma", "Some CPU, {n} cores (AVX2)"),
        (
            "avx2 avx512f avx512_vnni avx512_bf16",
            "Some CPU, {n} cores (AVX-512 VNNI, AVX-512 BF16)",
        ),
        ("sse2", "Some CPU, {n} cores"),
    ],
)
def test_the_machine_record_names_the_instructions_that_decide_tensorflow_s_kernels(
    tmp_path, flags, expected
):
    import os

    from mnistlab.runs import machine_description

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n")
    assert machine_description(str(cpuinfo)) == expected.format(n=os.cpu_count())
