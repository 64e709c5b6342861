"""An ensemble chosen on validation predictions alone, then read on the test set once.

The rule, fixed before the test set is read (benchmarks/members/README.md records when):

1. The pool is every finished member of the designs kept in benchmarks/members when the rule
   was fixed (POOL: DESIGN/member-I, each holding out its own validation fold of 1,000
   training images). Designs kept later are left out, so that a rerun reads what was read.
2. The shared folds are the folds that every design has a finished member holding out. On
   fold f, a mixture of designs is the weighted average of the probabilities of the designs'
   fold-f members, each on the images it never trained on.
3. Greedy forward selection with replacement (Caruana et al. 2004): STEPS times, add the design
   whose addition gives the lowest validation log loss over the shared folds (ties: fewer
   validation mistakes, then the name). A design's weight is the share of steps that picked it.
4. The ensemble is every finished member of each design picked, a design's weight shared
   equally among its members. Its test error is read once.

The test curve, how the error falls as members are added, takes the first k members of each
picked design (seed order) for k = 1, 2, ...; it is reported, never used to choose.

``--calibrated`` is the second rule, written after the first was read (0.31%, all `deotte`): the
designs trained with label smoothing give probabilities near 0.9 even when right, so log loss
favoured the one design without it. With it, step 3 first divides each design's logits by its
own temperature, fitted on the shared folds (models.calibration.fit_temperature), and the same
temperature scales its members' test probabilities. Writes ensemble-selected-calibrated.*.

Usage (after `python benchmarks/members.py fetch ...`; about 5 minutes, both cores):
    python benchmarks/ensemble_select.py
Writes benchmarks/results/ensemble-selected.{json,md}; member probabilities are cached in
runs/ensemble-select/ so a rerun reads them back.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from runinfo import git_commit  # noqa: E402

sys.path.insert(0, os.path.join(REPO, "src"))

from mnistlab.core import runs  # noqa: E402

MEMBERS = os.path.join(HERE, "members")
RESULTS = os.path.join(HERE, "results")
CACHE = os.path.join(REPO, "runs", "ensemble-select")
STEPS = 12  # greedy additions; weights come in twelfths
POOL = ("best-e40", "best5-e40", "best_deskew-e40", "deotte-e45")  # the designs the rule read
NAME = "ensemble-selected"


def finished_members(root: str = MEMBERS, pool=POOL) -> dict[str, list[dict]]:
    """{design: [{"folder", "seed", "fold", "config"}, ...] in seed order}, finished only."""
    designs: dict[str, list[dict]] = {}
    for folder in sorted(glob.glob(os.path.join(root, "*", "member-*"))):
        if os.path.basename(os.path.dirname(folder)) not in pool:
            continue
        if not os.path.exists(os.path.join(folder, runs.MODEL_FILE)):
            continue  # stopped before its last epoch: only a checkpoint
        config = runs.read_json(os.path.join(folder, "config.json"))
        member = {"folder": folder, "seed": config["seed"], "fold": config["val_fold"]}
        designs.setdefault(os.path.basename(os.path.dirname(folder)), []).append(
            {**member, "config": config}
        )
    return {design: sorted(found, key=lambda m: m["seed"]) for design, found in designs.items()}


def held_out(member: dict, x_train, y_train):
    """(images, labels) the member never trained on: its validation fold, as training split it."""
    from mnistlab.core.config import TrainConfig
    from mnistlab.training.train import split_fold

    return split_fold(x_train, y_train, TrainConfig.from_dict(member["config"]))[1]


def member_probabilities(member: dict, x_train, y_train, x_test) -> tuple[np.ndarray, np.ndarray]:
    """(validation, test) probabilities of one member, cached beside the run folders."""
    key = os.path.relpath(member["folder"], MEMBERS).replace(os.sep, "-")
    cached = os.path.join(CACHE, f"{key}.npz")
    if os.path.exists(cached):
        with np.load(cached) as stored:
            return stored["val"], stored["test"]
    from mnistlab.models.saved import load_model, predict_probabilities

    model = load_model(member["folder"], compile=False)
    val = predict_probabilities(model, held_out(member, x_train, y_train)[0])
    test = predict_probabilities(model, x_test)
    os.makedirs(CACHE, exist_ok=True)
    np.savez(cached, val=val, test=test)
    return val, test


def mixture_loss(picks: dict[str, int], val_probs, val_labels) -> tuple[float, int]:
    """(mean log loss, mistakes) of the designs mixed by pick counts, over the shared folds."""
    total = sum(picks.values())
    mixed = sum(count / total * val_probs[design] for design, count in picks.items())
    chosen = mixed[np.arange(len(val_labels)), val_labels]
    loss = float(-np.mean(np.log(np.clip(chosen, 1e-12, None))))
    return loss, int(np.sum(np.argmax(mixed, axis=1) != val_labels))


def greedy_select(val_probs: dict, val_labels, steps: int = STEPS) -> tuple[dict, list[dict]]:
    """Caruana's greedy selection with replacement; returns (pick counts, one row a step).

    Example:
        >>> labels = np.array([0, 1])
        >>> good = np.array([[0.9, 0.1], [0.2, 0.8]]); bad = np.array([[0.4, 0.6], [0.6, 0.4]])
        >>> greedy_select({"good": good, "bad": bad}, labels, steps=2)[0]
        {'good': 2}
    """
    picks: dict[str, int] = {}
    trail = []
    for step in range(1, steps + 1):
        scored = []
        for design in sorted(val_probs):
            trial = {**picks, design: picks.get(design, 0) + 1}
            loss, mistakes = mixture_loss(trial, val_probs, val_labels)
            scored.append((loss, mistakes, design))
        loss, mistakes, design = min(scored)
        picks[design] = picks.get(design, 0) + 1
        trail.append(
            {"step": step, "added": design, "val_log_loss": loss, "val_mistakes": mistakes}
        )
    return picks, trail


def shared_validation(designs, probabilities, x_train, y_train) -> tuple[dict, np.ndarray, list]:
    """Each design's probabilities on the folds every design holds out, stacked fold by fold."""
    folds = sorted(set.intersection(*({m["fold"] for m in found} for found in designs.values())))
    val_probs, labels = {}, None
    for design, found in designs.items():
        by_fold = {m["fold"]: m for m in found}
        val_probs[design] = np.concatenate([probabilities[by_fold[f]["folder"]][0] for f in folds])
        fold_labels = [held_out(by_fold[f], x_train, y_train)[1] for f in folds]
        design_labels = np.concatenate(fold_labels)
        if labels is not None and not np.array_equal(labels, design_labels):
            raise ValueError(f"{design}'s folds hold other images than the other designs'.")
        labels = design_labels
    return val_probs, labels, folds


def test_curve(designs, picks, probabilities, y_test, temperatures=None) -> list[dict]:
    """Test error of the picked designs' first k members each (k = 1, 2, ...), weights as picked;
    each design's probabilities at its temperature (``temperatures``, default 1)."""
    from mnistlab.models.calibration import apply_temperature

    temperatures = temperatures or {}
    total = sum(picks.values())
    rows = []
    for k in range(1, max(len(designs[design]) for design in picks) + 1):
        mixed = 0
        used = 0
        for design, count in picks.items():
            members = designs[design][:k]
            used += len(members)
            tempered = [
                apply_temperature(probabilities[m["folder"]][1], temperatures.get(design, 1.0))
                for m in members
            ]
            mixed = mixed + count / total * np.mean(tempered, axis=0)
        wrong = int(np.sum(np.argmax(mixed, axis=1) != y_test))
        rows.append(
            {"members_per_design": k, "members": used, "test_error": wrong / len(y_test) * 100}
        )
    return rows


def write_results(result: dict, name: str = NAME) -> None:
    runs.write_json(os.path.join(RESULTS, f"{name}.json"), result)
    weights = ", ".join(f"`{d}` {c}/{STEPS}" for d, c in sorted(result["picks"].items()))
    lines = [
        "# An ensemble chosen on validation, read on test once",
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {result['machine']}; commit {result['commit']}; written {result['written']}.",
        "",
        f"Pool: {result['pool']}. Shared validation folds: {result['folds']} "
        f"({result['val_images']} images, each predicted by members that never trained on it).",
        "",
        *(
            [
                "Temperatures fitted on those folds: "
                + ", ".join(f"`{d}` {t:.3f}" for d, t in sorted(result["temperatures"].items()))
                + ".",
                "",
            ]
            if result.get("temperatures")
            else []
        ),
        "| step | design added | validation log loss | validation mistakes |",
        "|---:|---|---:|---:|",
    ]
    lines += [
        f"| {r['step']} | `{r['added']}` | {r['val_log_loss']:.4f} | {r['val_mistakes']} |"
        for r in result["trail"]
    ]
    lines += [
        "",
        f"Picked: {weights}. The ensemble: {result['members']} members. "
        f"**Test error {result['test_error']:.2f}%** ({result['test_mistakes']} of 10,000), read once.",
        "",
        "As members are added (the first k of each picked design; reported, not used to choose):",
        "",
        "| members per design | members | test error |",
        "|---:|---:|---:|",
    ]
    lines += [
        f"| {r['members_per_design']} | {r['members']} | {r['test_error']:.2f}% |"
        for r in result["curve"]
    ]
    with open(os.path.join(RESULTS, f"{name}.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="MNIST folder (default $MNISTLAB_DATA)")
    parser.add_argument(
        "--calibrated",
        action="store_true",
        help="the second rule: each design at its own temperature, fitted on the shared folds",
    )
    args = parser.parse_args(argv)
    from mnistlab.core.backend import use_backend

    use_backend("tensorflow")
    from mnistlab.data.mnist import load_mnist

    (x_train, y_train), (x_test, y_test) = load_mnist(args.data)
    designs = finished_members()
    if not designs:
        sys.exit(
            "mnistlab: no finished members in benchmarks/members; fetch them first "
            "(python benchmarks/members.py fetch ...)."
        )
    probabilities = {
        m["folder"]: member_probabilities(m, x_train, y_train, x_test)
        for found in designs.values()
        for m in found
    }
    val_probs, val_labels, folds = shared_validation(designs, probabilities, x_train, y_train)
    temperatures = {}
    if args.calibrated:
        from mnistlab.models.calibration import apply_temperature, fit_temperature

        temperatures = {d: fit_temperature(val_probs[d], val_labels) for d in sorted(val_probs)}
        val_probs = {d: apply_temperature(p, temperatures[d]) for d, p in val_probs.items()}
    picks, trail = greedy_select(val_probs, val_labels)
    curve = test_curve(designs, picks, probabilities, y_test, temperatures)
    final = curve[-1]
    result = {
        "rule": "greedy design selection on shared validation folds (docstring)"
        + (", each design at its own temperature" if args.calibrated else ""),
        "temperatures": temperatures,
        "pool": ", ".join(f"{d} ({len(found)})" for d, found in sorted(designs.items())),
        "folds": folds,
        "val_images": len(val_labels),
        "trail": trail,
        "picks": picks,
        "members": final["members"],
        "test_error": final["test_error"],
        "test_mistakes": round(final["test_error"] * len(y_test) / 100),
        "curve": curve,
        "machine": runs.machine_description(),
        "commit": git_commit(),
        "command": "python benchmarks/ensemble_select.py " + " ".join(argv or sys.argv[1:]),
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    name = NAME + ("-calibrated" if args.calibrated else "")
    write_results(result, name)
    print(open(os.path.join(RESULTS, f"{name}.md")).read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
