"""Choosing the backend: what mnistlab sets before Keras and TensorFlow load."""

from __future__ import annotations

import importlib.util
import os

import pytest

from mnistlab.core.runs import read_json
from mnistlab.models import get_spec
from tests.conftest import ONEDNN, fresh_python, run_cli


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
        "from mnistlab.core.backend import use_backend\n"
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
        "from mnistlab.core.backend import keras\n"
        "keras()\n"
        "from tensorflow.python.util import _pywrap_util_port\n"
        "from mnistlab.core.runs import environment_versions\n"
        "print(bool(_pywrap_util_port.IsMklEnabled()), environment_versions()['onednn'])"
    )
    changes = {ONEDNN: user_setting} if user_setting is not None else {}
    assert fresh_python(code, KERAS_BACKEND="tensorflow", **changes) == expected


def test_nothing_is_set_once_tensorflow_is_loaded():
    """With TensorFlow already loaded the setting could no longer apply, so none is made."""
    code = (
        "import os, tensorflow\n"
        "from mnistlab.core.backend import use_backend\n"
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
        "from mnistlab.core.backend import use_backend\n"
        "from mnistlab.commands.main import build_parser, network_of\n"
        "from mnistlab.models import REGISTRY\n"
        f"use_backend('tensorflow', REGISTRY.get(network_of(build_parser().parse_args({argv!r}))))\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        f"print(os.environ.get({ONEDNN!r}))"
    )
    assert fresh_python(code) == expected


def test_the_python_api_keeps_onednn_on_even_for_the_mlp(tmp_path):
    """In Python one process may train the MLP and then a CNN, and TensorFlow fixes its kernels
    when it loads: mnistlab.train('mlp') on TensorFlow must not turn them off for the CNN that
    follows (where no backend is named, Python trains the MLP on JAX, as the command line)."""
    code = (
        "import json, numpy as np, mnistlab\n"
        "from mnistlab.core.runs import tensorflow_onednn\n"
        "x = np.zeros((40, 28, 28), np.uint8); y = np.arange(40, dtype=np.uint8) % 10\n"
        "metas = []\n"
        "for name in ('mlp', 'cnn'):\n"
        f"    run = mnistlab.train(name, data=((x, y), (x, y)), out={str(tmp_path)!r} + '/' + name,\n"
        "        epochs=1, val_size=0, verbose=0)\n"
        "    metas.append(json.load(open(run.path + '/meta.json'))['versions']['onednn'])\n"
        "print(tensorflow_onednn(), *metas)"
    )
    assert fresh_python(code, KERAS_BACKEND="tensorflow") == "True True True"


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

    from mnistlab.core.runs import machine_description

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n")
    assert machine_description(str(cpuinfo)) == expected.format(n=os.cpu_count())


@pytest.mark.parametrize(
    "flags, expected",
    [
        ("avx2 avx512f avx512_vnni avx512_bf16", True),  # AMD Zen 4, Intel Cooper Lake
        ("avx2 avx512f amx_tile amx_bf16", True),  # Intel Sapphire Rapids
        ("avx2 avx512f avx512_vnni", False),  # VNNI alone: integer dot products only
        ("fpu sse2 avx avx2 fma", False),
    ],
)
def test_bfloat16_hardware_is_read_from_the_cpu_flags(tmp_path, flags, expected):
    from mnistlab.core.backend import bfloat16_in_hardware

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n")
    assert bfloat16_in_hardware(str(cpuinfo)) is expected


@pytest.mark.parametrize(
    "model, hardware, onednn, expected",
    [
        ("cnn", True, True, "mixed_bfloat16"),  # measured faster at the same error
        ("larger_cnn", True, True, "mixed_bfloat16"),
        ("branch_cnn", True, True, "mixed_bfloat16"),
        ("cnn", False, True, "float32"),  # no bfloat16 instructions: emulated, slower
        ("cnn", True, False, "float32"),  # without oneDNN a bfloat16 epoch took 5x as long
        ("cnn", True, None, "float32"),  # TensorFlow cannot say which kernels it runs
        ("mlp", True, True, "float32"),  # its error rose 0.12 points in bfloat16
        ("best", True, True, "float32"),  # accuracy in bfloat16 not measured
        ("speedrun", True, True, "float32"),
    ],
)
def test_auto_precision_is_bfloat16_only_where_it_was_measured_to_pay(
    monkeypatch, model, hardware, onednn, expected
):
    from mnistlab.core import backend

    monkeypatch.setattr(backend, "bfloat16_in_hardware", lambda: hardware)
    monkeypatch.setattr(backend, "tensorflow_onednn", lambda: onednn)
    assert backend.resolve_precision("auto", get_spec(model)) == expected
    # an explicit choice is kept, whatever the machine
    assert backend.resolve_precision("float32", get_spec(model)) == "float32"
    assert backend.resolve_precision("mixed_bfloat16", get_spec(model)) == "mixed_bfloat16"


def test_bfloat16_products_is_refused_on_tensorflow_with_a_way_out():
    from mnistlab.core import backend

    with pytest.raises(ValueError, match="PyTorch backends only, not on tensorflow; use --backend"):
        backend.resolve_precision("bfloat16_products", get_spec("mlp"))


AUTO_ON_JAX_AND_TORCH = """
from mnistlab.core import backend
from mnistlab.models import get_spec
answers = []
for hardware in (True, False):
    backend.bfloat16_in_hardware = lambda: hardware
    answers += [backend.resolve_precision("auto", get_spec(name)) for name in ("mlp", "cnn", "best")]
answers.append(backend.resolve_precision("bfloat16_products", get_spec("cnn")))  # an explicit choice
print(answers)
"""


@pytest.mark.parametrize(
    "backend, cnn",
    [("jax", "float32"), ("torch", "bfloat16_products")],  # products measured for torch's CNNs
)
def test_auto_precision_on_jax_and_torch_is_bfloat16_products_where_measured(backend, cnn):
    pytest.importorskip(backend)
    assert fresh_python(AUTO_ON_JAX_AND_TORCH, KERAS_BACKEND=backend) == str(
        ["bfloat16_products", cnn, "float32"] + ["float32"] * 3 + ["bfloat16_products"]
    )


def test_an_unknown_precision_names_the_choices():
    from mnistlab.core.backend import resolve_precision

    with pytest.raises(ValueError, match="auto, float32, mixed_bfloat16"):
        resolve_precision("float16", None)


YNN = "--xla_cpu_experimental_ynn_fusion_type"  # config.JAX_YNN_FLAG, written out as the reference


@pytest.mark.parametrize(
    "backend, user_flags, expected",
    [
        ("jax", "", f"{YNN}=dot"),  # mnistlab's default: XLA's matrix products on YNNPACK
        ("jax", "--xla_cpu_enable_fast_math=false", f"--xla_cpu_enable_fast_math=false {YNN}=dot"),
        ("jax", f"{YNN}=", f"{YNN}="),  # the user's own choice stands, even an empty one
        ("tensorflow", "", ""),  # other backends are left alone
        ("torch", "", ""),
    ],
)
def test_jax_gets_ynnpack_matrix_products_unless_the_user_chose(backend, user_flags, expected):
    pytest.importorskip("jax")
    from mnistlab.core.backend import jaxlib_at_least
    from mnistlab.core.config import JAX_YNN_SINCE

    if backend == "jax" and not jaxlib_at_least(JAX_YNN_SINCE):
        expected = user_flags  # an older jaxlib would stop at a flag it does not know
    code = (
        "import os, sys\n"
        "from mnistlab.core.backend import use_backend\n"
        f"use_backend({backend!r})\n"
        "assert 'jax' not in sys.modules and 'keras' not in sys.modules\n"
        "print(repr(os.environ.get('XLA_FLAGS')))"
    )
    assert fresh_python(code, XLA_FLAGS=user_flags) == repr(expected)


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["train", "cnn"], f"{YNN}=dot"),  # the CNNs: YNNPACK's dots, measured faster
        (["train", "mlp"], ""),  # the MLP: XLA's own, YNNPACK's measured slower
        (["ensemble", "mlp", "--members", "2"], ""),
        (["evaluate", "runs/x"], f"{YNN}=dot"),  # names no network: the default
    ],
)
def test_the_network_decides_the_matrix_products_on_jax(argv, expected):
    pytest.importorskip("jax")
    from mnistlab.core.backend import jaxlib_at_least
    from mnistlab.core.config import JAX_YNN_SINCE

    if not jaxlib_at_least(JAX_YNN_SINCE):
        expected = ""
    code = (
        "import os, sys\n"
        "from mnistlab.core.backend import use_backend\n"
        "from mnistlab.commands.main import build_parser, network_of\n"
        "from mnistlab.models import REGISTRY\n"
        f"use_backend('jax', REGISTRY.get(network_of(build_parser().parse_args({argv!r}))))\n"
        "assert 'jax' not in sys.modules and 'keras' not in sys.modules\n"
        "print(repr(os.environ.get('XLA_FLAGS', '')))"
    )
    assert fresh_python(code, XLA_FLAGS="") == repr(expected)


@pytest.mark.parametrize(
    "network, expected",
    [
        ("mlp", ""),
        # a CNN trained on JAX in a fresh process: ~25 s under load
        pytest.param("larger_cnn", f"{YNN}=dot", marks=pytest.mark.slow),
    ],
)
def test_a_trained_run_records_its_network_s_matrix_products_on_jax(
    network, expected, tmp_path, tiny_npz
):
    """The whole command, not the first choice alone: ``train`` chooses the backend again for
    the Python API, and that later call keeps the network's choice (the MLP once ran the whole
    command on YNNPACK's dots that way)."""
    pytest.importorskip("jax")
    from mnistlab.core.backend import jaxlib_at_least
    from mnistlab.core.config import JAX_YNN_SINCE

    if not jaxlib_at_least(JAX_YNN_SINCE):
        expected = ""
    out = str(tmp_path / network)
    argv = ["train", network, "--backend", "jax", "--epochs", "1", "--val-size", "100"]
    done = run_cli(*argv, "--data", tiny_npz, "--out", out, env={"XLA_FLAGS": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    assert read_json(os.path.join(out, "meta.json"))["versions"]["xla_flags"] == expected


def test_jax_runs_with_the_flag_and_the_run_record_keeps_it():
    """XLA accepts the flag (it stops the process on one it does not know), a jitted matrix
    product gives numpy's answer under it, and meta.json's versions record the flags."""
    pytest.importorskip("jax")
    code = (
        "from mnistlab.core.backend import keras\n"
        "keras()\n"
        "import jax, numpy as np\n"
        "a = np.random.default_rng(0).normal(size=(64, 300)).astype('float32')\n"
        "b = np.random.default_rng(1).normal(size=(300, 20)).astype('float32')\n"
        "np.testing.assert_allclose(np.asarray(jax.jit(lambda x, y: x @ y)(a, b)), a @ b, rtol=1e-4, atol=1e-4)\n"
        "from mnistlab.core.runs import environment_versions\n"
        "print(environment_versions()['xla_flags'])"
    )
    from mnistlab.core.backend import jaxlib_at_least
    from mnistlab.core.config import JAX_YNN_SINCE

    expected = f"{YNN}=dot" if jaxlib_at_least(JAX_YNN_SINCE) else ""
    assert fresh_python(code, KERAS_BACKEND="jax", XLA_FLAGS="") == expected


def test_the_default_backend_is_the_network_s_own_where_installed(monkeypatch):
    import dataclasses

    from mnistlab.core.backend import default_backend
    from mnistlab.models.registry import REGISTRY

    monkeypatch.setitem(REGISTRY, "cnn", dataclasses.replace(REGISTRY["cnn"], backend="torch"))
    assert default_backend(REGISTRY["cnn"], installed=lambda backend: True) == "torch"
    assert default_backend(REGISTRY["cnn"], installed=lambda backend: False) == "tensorflow"
    assert default_backend(REGISTRY["larger_cnn"]) == "tensorflow"  # names none
    assert default_backend(None) == "tensorflow"


@pytest.mark.parametrize(
    "argv, env, expected",
    [
        (["train", "mlp"], {}, "jax"),  # measured fastest for the MLP (results/main-job)
        (["train", "cnn"], {}, "tensorflow"),  # and TensorFlow for the CNNs
        (["evaluate", "runs/x"], {}, "tensorflow"),  # names no network: the default
        (["train", "mlp", "--backend", "torch"], {}, "torch"),  # the user's choice wins
        (["train", "mlp"], {"KERAS_BACKEND": "torch"}, "torch"),  # so does their variable
    ],
)
def test_the_command_line_trains_each_network_on_its_fastest_backend(argv, env, expected):
    if expected == "jax" and importlib.util.find_spec("jax") is None:
        expected = "tensorflow"  # not installed: the default
    code = (
        "import sys\n"
        "from mnistlab.core.backend import use_backend\n"
        "from mnistlab.commands.main import backend_of, build_parser, network_of\n"
        "from mnistlab.models import REGISTRY\n"
        f"args = build_parser().parse_args({argv!r})\n"
        "print(use_backend(backend_of(args), REGISTRY.get(network_of(args) or '')))\n"
        "assert 'keras' not in sys.modules"
    )
    assert fresh_python(code, **env) == expected


@pytest.mark.parametrize(
    "argv, env, expected",
    [
        (["train", "--resume", "{run}"], {}, "torch"),  # goes on where it trained
        (["train", "--resume", "{run}", "--backend", "tensorflow"], {}, "tensorflow"),
        (["train", "--resume", "{run}"], {"KERAS_BACKEND": "tensorflow"}, "tensorflow"),
        (["train", "--resume", "{bare}"], {}, "tensorflow"),  # no meta.json: the cnn's default
    ],
)
def test_a_resumed_run_goes_on_on_its_own_backend(tmp_path, argv, env, expected):
    for name, files in {
        "run": {
            "config.json": '{"model": "cnn"}',
            "meta.json": '{"versions": {"backend": "torch"}}',
        },
        "bare": {"config.json": '{"model": "cnn"}'},
    }.items():
        (tmp_path / name).mkdir()
        for file, text in files.items():
            (tmp_path / name / file).write_text(text)
    argv = [part.format(run=tmp_path / "run", bare=tmp_path / "bare") for part in argv]
    code = (
        "from mnistlab.core.backend import use_backend\n"
        "from mnistlab.commands.main import backend_of, build_parser, network_of\n"
        "from mnistlab.models import REGISTRY\n"
        f"args = build_parser().parse_args({argv!r})\n"
        "print(use_backend(backend_of(args), REGISTRY.get(network_of(args) or '')))"
    )
    assert fresh_python(code, **env) == expected
