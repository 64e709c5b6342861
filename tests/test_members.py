"""benchmarks/members.py: the members' asset packs and unpacks byte for byte, checked; the
recipes retrain each member with its own seed and fold; finished members are kept and recorded."""

import hashlib
import json
import os
import shutil

import numpy as np
import pytest

from mnistlab.core import runs
from tests.conftest import load_benchmark

members = load_benchmark("members")
NOT_FETCHED = (
    "ensemble members not fetched: run python benchmarks/members.py fetch URL_OR_PATH "
    "(benchmarks/members/README.md says where the asset is)"
)


def fake_members(root):
    """Two members' recipes and weights (bytes, not networks), and one unfinished member."""
    for design, member, files in [
        ("best-e40", "member-0", {"model.keras": b"weights 0", "metrics.json": b'{"error": 0.3}'}),
        ("best-e40", "member-1", {"model.keras": b"weights 1", "metrics.json": b'{"error": 0.4}'}),
        ("deskew-e40", "member-0", {"checkpoint.keras": b"half trained"}),
    ]:
        folder = root / design / member
        folder.mkdir(parents=True)
        (folder / runs.CONFIG_FILE).write_text('{"model": "best", "epochs": 40}')
        for name, content in files.items():
            (folder / name).write_bytes(content)
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in root.rglob("*")
        if path.name in members.ASSET_FILES
    }


def recipes_only(source, target):
    """A copy of source without its weights, as a fresh clone has it."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*members.ASSET_FILES))


def test_pack_then_fetch_restores_every_file_byte_for_byte(tmp_path):
    weights = fake_members(tmp_path / "kept")
    asset = str(tmp_path / "members.tar.gz")
    digest = members.pack(str(tmp_path / "kept"), asset)
    assert digest == hashlib.sha256(open(asset, "rb").read()).hexdigest()
    assert members.pack(str(tmp_path / "kept"), str(tmp_path / "again.tar.gz")) == digest

    clone = tmp_path / "clone"
    recipes_only(tmp_path / "kept", clone)
    assert sorted(members.missing(str(clone))) == sorted(weights)
    assert sorted(members.fetch(asset, str(clone), digest)) == sorted(weights)
    assert {name: (clone / name).read_bytes() for name in weights} == weights
    assert members.missing(str(clone)) == []
    assert members.fetch(asset, str(clone), digest) == []  # intact files are left as they are


def test_fetch_refuses_an_asset_other_than_the_recorded_one(tmp_path):
    fake_members(tmp_path / "kept")
    asset = str(tmp_path / "members.tar.gz")
    members.pack(str(tmp_path / "kept"), asset)
    clone = tmp_path / "clone"
    recipes_only(tmp_path / "kept", clone)
    with pytest.raises(ValueError, match="not the recorded"):
        members.fetch(asset, str(clone), "0" * 64)
    assert members.missing(str(clone))  # nothing unpacked

    (clone / members.MANIFEST).write_text(
        (clone / members.MANIFEST).read_text().replace("best-e40/member-1", "best-e40/member-9")
    )
    with pytest.raises(ValueError, match="does not list"):  # a file the manifest lacks
        members.fetch(asset, str(clone), members.sha256_of(asset))


def test_the_command_reads_the_asset_s_sha256_from_the_readme(tmp_path, capsys):
    fake_members(tmp_path / "kept")
    asset = str(tmp_path / "members.tar.gz")
    assert members.main(["--members", str(tmp_path / "kept"), "pack", asset]) == 0
    digest = capsys.readouterr().out.split()[0]
    clone = tmp_path / "clone"
    recipes_only(tmp_path / "kept", clone)
    (clone / "README.md").write_text(f"The asset, sha256 `{digest}`.\n")
    assert members.main(["--members", str(clone), "fetch", asset]) == 0
    assert members.missing(str(clone)) == []
    (clone / "README.md").write_text("No sha256 recorded.\n")
    assert members.main(["--members", str(clone), "fetch", asset]) == 2
    assert "should record one asset sha256" in capsys.readouterr().err


def test_the_repository_records_one_asset_and_a_recipe_for_every_manifest_file():
    assert len(members.recorded_sha256(members.MEMBERS)) == 64
    manifest = members.read_manifest(members.MEMBERS)
    assert len(manifest) == 73
    for name in manifest:
        assert os.path.exists(os.path.join(members.MEMBERS, os.path.dirname(name), "config.json"))


def test_retrain_gives_each_member_its_recorded_seed_fold_and_backend(tmp_path):
    from mnistlab.training.executors import check_trial

    trials = members.retrain_trials(members.MEMBERS, str(tmp_path), only="deotte")
    assert [trial["seed"] for trial in trials] == [22, 23, 24, 25]
    assert [trial["val_fold"] for trial in trials] == [0, 1, 2, 3]
    assert {trial["backend"] for trial in trials} == {"tensorflow"}
    assert trials[2]["out"] == os.path.join(str(tmp_path), "deotte-e45", "member-2")
    every = members.retrain_trials(members.MEMBERS, str(tmp_path))
    assert len(every) == 37
    for trial in every:  # every recorded config is one mnistlab train still accepts
        check_trial(trial)
    assert [
        trial["seed"] for trial in members.retrain_trials(members.MEMBERS, "r", "best-e40")
    ] == (list(range(7, 22)))
    with pytest.raises(ValueError, match="Designs: best-e40"):
        members.retrain_trials(members.MEMBERS, "r", only="cnn")


def test_the_fetched_weights_match_the_manifest_and_give_the_recorded_errors(tmp_path):
    if members.missing():
        pytest.skip(NOT_FETCHED)
    for name, digest in members.read_manifest(members.MEMBERS).items():
        assert members.sha256_of(os.path.join(members.MEMBERS, name)) == digest, name
    out = tmp_path / "measured.json"
    rows = members.record(members.MEMBERS, str(out))
    from mnistlab.models.registry import MEASURED_FILE

    recorded = json.load(open(MEASURED_FILE))
    for model, row in rows.items():
        assert row["source"] == recorded[model]["source"]
        assert row["runs"] == recorded[model]["runs"]
        assert row["error_mean"] == pytest.approx(recorded[model]["error_mean"])
        assert row["error_std"] == pytest.approx(recorded[model]["error_std"])


def test_keep_copies_finished_members_without_optimizer_state(tiny_data, tmp_path):
    import mnistlab
    from mnistlab.models.saved import load_model, predict_probabilities

    # a float32 run, whose model.keras keeps Adam's state (mlp: float32 on every machine)
    trained_run = str(tmp_path / "mlp")
    mnistlab.train("mlp", data=tiny_data, out=trained_run, epochs=1, val_size=200, verbose=0)

    source, kept = tmp_path / "members", tmp_path / "kept"
    shutil.copytree(trained_run, source / "member-0")
    (source / "member-1").mkdir()  # still training: no metrics.json yet
    shutil.copy(os.path.join(trained_run, runs.CONFIG_FILE), source / "member-1")
    assert members.main(["keep", str(source), str(kept)]) == 0
    assert sorted(os.listdir(kept)) == ["member-0"]
    copied = set(os.listdir(kept / "member-0"))
    assert copied == set(os.listdir(trained_run)) - {runs.CHECKPOINT_FILE, ".lock"}
    original = str(source / "member-0" / runs.MODEL_FILE)
    assert os.path.getsize(kept / "member-0" / runs.MODEL_FILE) < os.path.getsize(original)
    _, (x_test, _) = tiny_data
    np.testing.assert_array_equal(
        predict_probabilities(load_model(str(kept / "member-0")), x_test),
        predict_probabilities(load_model(original), x_test),
    )
    assert members.keep(str(source), str(kept)) == []  # a kept member is not copied again


def test_record_writes_each_model_s_mean_and_spread(tmp_path, capsys):
    def member(folder, model, epochs, error=None):
        os.makedirs(folder)
        with open(os.path.join(folder, runs.CONFIG_FILE), "w") as handle:
            json.dump({"model": model, "epochs": epochs}, handle)
        if error is not None:  # None: still training, no metrics.json
            with open(os.path.join(folder, runs.METRICS_FILE), "w") as handle:
                json.dump({"error": error}, handle)

    root = tmp_path / "members"
    for index, error in enumerate([0.30, 0.40, 0.35]):
        member(root / "best-e40" / f"member-{index}", "best", 40, error)
    member(root / "best-e40" / "member-3", "best", 40)  # unfinished: left out
    member(root / "deotte-e45" / "member-0", "deotte", 45, 0.32)
    out = tmp_path / "measured.json"
    out.write_text(json.dumps({"cnn": {"error_mean": 1.1, "error_std": 0.1, "runs": 3}}))

    def record():
        return members.main(["--members", str(root), "record", "--out", str(out)])

    assert record() == 0
    recorded = json.loads(out.read_text())
    assert recorded["cnn"] == {"error_mean": 1.1, "error_std": 0.1, "runs": 3}  # kept
    assert recorded["best"]["runs"] == 3 and recorded["deotte"]["runs"] == 1
    assert recorded["best"]["error_mean"] == pytest.approx(0.35)
    # sample standard deviation by hand: deviations -0.05, 0.05, 0; sum of squares / (3 - 1)
    assert recorded["best"]["error_std"] == pytest.approx((0.005 / 2) ** 0.5)
    assert recorded["deotte"]["error_std"] == 0.0
    assert "best: 0.350%" in capsys.readouterr().out

    # metrics.json listed in the manifest but not fetched: refused, not read as unfinished
    (root / members.MANIFEST).write_text(f"{'0' * 64}  deotte-e45/member-0/{runs.METRICS_FILE}\n")
    os.remove(root / "deotte-e45" / "member-0" / runs.METRICS_FILE)
    assert record() == 2
    assert "not fetched" in capsys.readouterr().err
    os.remove(root / members.MANIFEST)

    member(root / "best-20" / "member-0", "best", 20, 0.41)  # a variant of best's 40-epoch recipe
    assert record() == 0
    assert json.loads(out.read_text())["best"]["runs"] == 3  # the variant is not mixed in
    member(root / "deotte-e30" / "member-0", "deotte", 30, 0.5)  # two recipes, neither deotte's 45
    member(root / "deotte-e60" / "member-0", "deotte", 60, 0.4)
    assert record() == 2
    assert "[30, 60] epochs" in capsys.readouterr().err
    assert members.main(["--members", str(tmp_path / "none"), "record", "--out", str(out)]) == 2
