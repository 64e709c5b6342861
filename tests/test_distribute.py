"""Data-parallel training (--distribute data-parallel) on 2 forced CPU devices of the JAX backend.

XLA reads --xla_force_host_platform_device_count when JAX first loads, so the training runs in
a fresh subprocess. The reference is the same run on one device (same seed, same images): a
data-parallel step computes the same gradient, summed in another order, so the losses and the
weights agree to float32 rounding (tolerance below), and the batches must really be split.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import mnistlab
from mnistlab.core import runs
from tests.conftest import SUBPROCESS_TIMEOUT

pytest.importorskip("jax", reason="data-parallel training needs the JAX backend (mnistlab[jax])")

LOSS_RTOL = 1e-4  # relative; float32 sums in another order after 12 Adam steps
WEIGHT_ATOL = 1e-4  # absolute, on weights of order 0.1

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import keras.src.backend.jax.trainer as jax_trainer
    import mnistlab

    batches = []  # what fit really fed the model: shape and per-device shard shapes
    original = jax_trainer._distribute_data

    def recording(data, layouts=None):
        distributed = original(data, layouts)
        images = distributed[0]
        batches.append({
            "shape": list(images.shape),
            "devices": sorted(str(device) for device in images.sharding.device_set),
            "shards": sorted(list(shard.data.shape) for shard in images.addressable_shards),
        })
        return distributed

    jax_trainer._distribute_data = recording
    data, out = sys.argv[1], sys.argv[2]
    common = dict(data=data, epochs=2, batch_size=50, train_size=400, val_size=100, verbose=0)
    single = mnistlab.train("cnn", out=out + "/single", **common)
    parallel = mnistlab.train("cnn", out=out + "/parallel", distribute="data-parallel", **common)
    kernel = parallel.model.weights[0].value
    np.savez(out + "/weights.npz",
             *[w.numpy() for w in single.model.weights],
             *[w.numpy() for w in parallel.model.weights])
    print(json.dumps({
        "devices": [str(d) for d in __import__("jax").devices()],
        "batches": batches,
        "weights": len(single.model.weights),
        "replicated": bool(kernel.sharding.is_fully_replicated),
        "weight_devices": len(kernel.sharding.device_set),
        "single_history": single.history, "parallel_history": parallel.history,
        "single_error": single.metrics["error"], "parallel_error": parallel.metrics["error"],
    }))
    """
)


@pytest.fixture(scope="module")
def two_device_runs(tmp_path_factory, tiny_npz):
    out = tmp_path_factory.mktemp("distribute")
    script = out / "run.py"
    script.write_text(SCRIPT)
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
    }
    for name in ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, str(script), tiny_npz, str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["out"] = str(out)
    return report


@pytest.mark.slow  # two-device JAX runs in a fresh process: ~15 s
def test_every_batch_is_split_across_both_devices(two_device_runs):
    assert len(two_device_runs["devices"]) == 2  # XLA made two CPU devices
    batches = two_device_runs["batches"]
    # 300 training images / 50 per step = 6 steps per epoch, 2 epochs, plus validation batches
    assert len(batches) >= 12
    for batch in batches:
        assert len(batch["devices"]) == 2
        half = [batch["shape"][0] // 2, *batch["shape"][1:]]
        assert batch["shards"] == [half, half], batch  # each device holds half, not a copy
    assert [50, 28, 28, 1] in [batch["shape"] for batch in batches]
    # the weights are replicated on both devices, not split
    assert two_device_runs["replicated"] and two_device_runs["weight_devices"] == 2


@pytest.mark.slow  # two-device JAX runs in a fresh process: ~15 s
def test_data_parallel_matches_one_device(two_device_runs):
    single = two_device_runs["single_history"]
    parallel = two_device_runs["parallel_history"]
    assert [row["epoch"] for row in single] == [row["epoch"] for row in parallel] == ["1", "2"]
    for one, split in zip(single, parallel, strict=True):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert float(split[key]) == pytest.approx(float(one[key]), rel=LOSS_RTOL), key
    arrays = np.load(os.path.join(two_device_runs["out"], "weights.npz"))
    count = two_device_runs["weights"]
    for index in range(count):
        np.testing.assert_allclose(
            arrays[f"arr_{count + index}"], arrays[f"arr_{index}"], atol=WEIGHT_ATOL
        )
    assert two_device_runs["parallel_error"] == pytest.approx(
        two_device_runs["single_error"], abs=100 / 300 + 1e-9
    )  # at most one of the 300 test images may flip


@pytest.mark.slow  # two-device JAX runs in a fresh process: ~15 s
def test_run_folder_records_the_distribution(two_device_runs):
    meta = json.load(open(os.path.join(two_device_runs["out"], "parallel", "meta.json")))
    assert meta["distribution"]["strategy"] == "data-parallel"
    assert len(meta["distribution"]["devices"]) == 2
    single = json.load(open(os.path.join(two_device_runs["out"], "single", "meta.json")))
    assert single["distribution"]["strategy"] == "none"


def test_other_backends_are_refused_with_a_clear_message(tmp_path):
    from mnistlab.core.backend import use_backend

    if use_backend(None) == "jax":
        pytest.skip("this process runs on JAX; the refusal is for the other backends")
    with pytest.raises(ValueError, match="needs the JAX backend"):
        mnistlab.train("mlp", out=str(tmp_path / "run"), distribute="data-parallel")
    assert not os.path.exists(tmp_path / "run")  # refused before any folder is made
    with pytest.raises(ValueError, match="Unknown --distribute"):
        mnistlab.train("mlp", out=str(tmp_path / "run"), distribute="model-parallel")


def free_port():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow  # two JAX processes: ~40 s on the shared 2-core machine
def test_two_processes_train_one_model_like_two_hosts(tmp_path, tiny_npz):
    """The docs' 2-host commands, with both 'hosts' on this machine (one CPU device each)."""
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "KERAS_DISTRIBUTION_JOB_ADDRESSES": f"127.0.0.1:{free_port()}",
        "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
    }
    env.pop("XLA_FLAGS", None)
    command = [sys.executable, "-m", "mnistlab", "train", "mlp", "--distribute", "data-parallel"]
    command += ["--data", tiny_npz, "--epochs", "2", "--val-size", "200", "--batch-size", "50"]
    hosts = [
        subprocess.Popen(
            [*command, "--out", str(tmp_path / f"host{index}")],
            env={**env, "KERAS_DISTRIBUTION_PROCESS_ID": str(index)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(2)
    ]
    outputs = [host.communicate(timeout=SUBPROCESS_TIMEOUT) for host in hosts]
    for host, (_, stderr) in zip(hosts, outputs, strict=True):
        assert host.returncode == 0, stderr[-3000:]
    metas = [json.load(open(tmp_path / f"host{i}" / "meta.json")) for i in range(2)]
    assert [meta["distribution"]["process_id"] for meta in metas] == [0, 1]
    assert all(meta["distribution"]["num_processes"] == 2 for meta in metas)
    assert all(len(meta["distribution"]["devices"]) == 2 for meta in metas)
    assert [meta["train_images"] for meta in metas] == [500, 500]  # each its half of 1000
    histories = [runs.read_history(str(tmp_path / f"host{i}")) for i in range(2)]
    for one, other in zip(*histories, strict=True):  # one global model: the same numbers
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert float(one[key]) == pytest.approx(float(other[key]), rel=1e-6), key
    errors = [runs.read_json(str(tmp_path / f"host{i}" / "metrics.json"))["error"] for i in (0, 1)]
    assert errors[0] == errors[1] and errors[0] < 5.0
