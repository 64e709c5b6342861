"""Rebuilds the model shipped with mnistlab from finished runs, chosen on validation alone.

The rule, fixed before any candidate's test error is looked at: among the run folders given,
the one whose saved model has the lowest error on its own held-out validation fold
(``val_error`` in its metrics.json); a tie goes to the run named first. A candidate may be an
ensemble folder (``mnistlab ensemble --runs``) whose members all held out the same fold: its
averaged model is measured on that fold here, and its calibration.json was fitted there. Its network is
installed into src/mnistlab/models/pretrained as

- model.keras: the network without its optimizer's state (loaded without compiling, saved);
- calibration.json: the run's own, fitted on the same validation fold;
- shipped.json: which run it is, its recipe, and every candidate's validation error;
- model.onnx and onnx.json: exported and checked against Keras (export.build_pretrained_onnx).

With ``--against INCUMBENT ...`` (the shipped recipe's networks, one a fold), the candidates
must first beat them by more than chance: each candidate is paired with the incumbent holding
out the same validation fold, and on the pooled images that exactly one of a pair gets wrong,
an exact one-sided sign test (McNemar's) must give p < 0.05 (ALPHA). Otherwise nothing is
installed, and the script says so and exits 1.

Then the shipped model's test error is read, once, with its size on disk, and written to
benchmarks/results/NAME.md and .json. Speed is benchmarks/inference.py's; the own-digits check,
benchmarks/own_digits_accuracy.py's.

Usage:
    python benchmarks/ship.py runs/bench-x/members/member-0 runs/bench-x/members/member-1 ...
    python benchmarks/ship.py RUN ... --dry-run     # name the choice, install nothing
    python benchmarks/ship.py RUN ... --against benchmarks/members/best-e40/member-{0,1,2}
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import sys
import time
from math import comb

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))
sys.path.insert(0, HERE)  # runinfo

from runinfo import git_commit  # noqa: E402

from mnistlab.core import runs  # noqa: E402
from mnistlab.training.calibrate import SHIPPED_RECORD  # noqa: E402
from mnistlab.training.ensemble import RECIPE_FILE  # noqa: E402

RESULTS = os.path.join(HERE, "results")
ALPHA = 0.05  # the sign test's threshold


def held_out_config(folder: str) -> dict:
    """The training config that says which validation images `folder`'s model never saw.

    A run's own; for an ensemble folder, its members' when they all held out the same images
    (otherwise each trained on the others' validation images, and none is unseen by all).
    """
    recipe_path = os.path.join(folder, RECIPE_FILE)
    if not os.path.exists(recipe_path):
        return runs.read_json(os.path.join(folder, runs.CONFIG_FILE))
    members = runs.read_json(recipe_path)["members"]
    configs = [runs.read_json(os.path.join(folder, m, runs.CONFIG_FILE)) for m in members]
    held = {(c.get("val_size", 0), c.get("val_fold", 0), c.get("train_size", 0)) for c in configs}
    if len(held) != 1 or not configs[0].get("val_size"):
        raise ValueError(
            f"'{folder}' is an ensemble whose members held out different validation images "
            "(or none): no image is unseen by all of them, so it cannot be chosen on validation."
        )
    return {**configs[0], "seeds": [c["seed"] for c in configs]}


def candidate(folder: str) -> dict:
    """What the rule reads of a finished run or ensemble: its validation error and fold."""
    metrics_path = os.path.join(folder, runs.METRICS_FILE)
    if not os.path.exists(metrics_path):
        raise ValueError(f"'{folder}' is not a finished run (no {runs.METRICS_FILE}).")
    config = held_out_config(folder)
    if os.path.exists(os.path.join(folder, RECIPE_FILE)):  # measured here: ensembles keep none
        val_error = round(100 * float(np.mean(validation_wrong(folder, *training_images()))), 4)
    else:
        val_error = runs.read_json(metrics_path).get("val_error")
    if val_error is None:
        raise ValueError(f"'{folder}' validated on the test set; it cannot be chosen honestly.")
    return {
        "path": os.path.abspath(folder),
        "folder": os.path.relpath(os.path.abspath(folder), os.path.dirname(HERE)),
        "val_error": val_error,
        "seed": config.get("seeds", config["seed"]),  # an ensemble: its members' seeds
        "val_size": config["val_size"],
        "val_fold": config["val_fold"],
    }


@functools.cache
def training_images():
    """MNIST's 60,000 training images and labels, read once."""
    from mnistlab.data.mnist import load_mnist

    return load_mnist(None)[0]


def choose(candidates: list[dict]) -> dict:
    """The lowest validation error; the first named among equals.

    Example:
        >>> choose([{"val_error": 0.2}, {"val_error": 0.1}, {"val_error": 0.1}]) is not None
        True
    """
    return min(candidates, key=lambda row: row["val_error"])  # min keeps the first of ties


def sign_test_p(wins: int, losses: int) -> float:
    """P(at least `wins` of wins + losses fair coin flips go the candidate's way).

    Example:
        >>> sign_test_p(5, 0)  # five images only the incumbent got wrong, none the other way
        0.03125
        >>> sign_test_p(4, 3)  # four images one way, three the other: no evidence
        0.5
    """
    flips = wins + losses
    return sum(comb(flips, k) for k in range(wins, flips + 1)) / 2**flips


def validation_wrong(folder: str, x_train, y_train) -> np.ndarray:
    """One bool an image of the run's held-out validation fold: did its saved model get it wrong."""
    from mnistlab.core.config import TrainConfig
    from mnistlab.models.saved import load_model, predict_probabilities
    from mnistlab.training.train import split_fold

    config = TrainConfig.from_dict(
        {k: v for k, v in held_out_config(folder).items() if k != "seeds"}
    )
    x_val, y_val = split_fold(x_train, y_train, config)[1]
    probabilities = predict_probabilities(load_model(folder, compile=False), x_val)
    return np.argmax(probabilities, axis=1) != y_val


def paired_test(candidates: list[dict], incumbents: list[dict], wrong) -> dict:
    """The sign test of the candidates against the incumbents of the same folds.

    `wrong(row)` gives a row's validation mistakes, one bool an image.
    """
    by_fold = {(row["val_size"], row["val_fold"]): row for row in incumbents}
    wins = losses = 0
    pairs = []
    for row in candidates:
        rival = by_fold.get((row["val_size"], row["val_fold"]))
        if rival is None:
            raise ValueError(
                f"no incumbent holds out fold {row['val_fold']} of {row['val_size']} images, "
                f"as '{row['folder']}' does: pass one with --against."
            )
        ours, theirs = wrong(row), wrong(rival)
        wins += int(np.sum(theirs & ~ours))
        losses += int(np.sum(ours & ~theirs))
        pairs.append(
            {
                "candidate": row["folder"],
                "incumbent": rival["folder"],
                "candidate_mistakes": int(ours.sum()),
                "incumbent_mistakes": int(theirs.sum()),
            }
        )
    p = sign_test_p(wins, losses)
    return {"pairs": pairs, "wins": wins, "losses": losses, "p": p, "passed": p < ALPHA}


def install(folder: str, record: dict) -> None:
    """Writes model.keras, calibration.json and shipped.json of the chosen run, then the ONNX."""
    from mnistlab.models.saved import PRETRAINED_DIR, load_model
    from mnistlab.serving.export import build_pretrained_onnx

    model = load_model(folder, compile=False)
    runs.save_model_atomic(model, os.path.join(PRETRAINED_DIR, runs.MODEL_FILE))
    shutil.copyfile(
        os.path.join(folder, "calibration.json"), os.path.join(PRETRAINED_DIR, "calibration.json")
    )
    runs.write_json(os.path.join(PRETRAINED_DIR, SHIPPED_RECORD), record)
    record["onnx"] = build_pretrained_onnx()
    for name in (runs.MODEL_FILE, "calibration.json", SHIPPED_RECORD):
        os.chmod(os.path.join(PRETRAINED_DIR, name), 0o644)  # package files: readable by all


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="finished run folders, the candidates")
    parser.add_argument("--name", default="ship", help="results file name (default ship)")
    parser.add_argument("--dry-run", action="store_true", help="name the choice only")
    parser.add_argument(
        "--against",
        nargs="+",
        metavar="RUN",
        help="the shipped recipe's runs: ship only if the candidates beat them (sign test)",
    )
    args = parser.parse_args(argv)
    try:
        candidates = [candidate(folder) for folder in args.runs]
        incumbents = [candidate(folder) for folder in args.against or ()]
        test = incumbents and against(candidates, incumbents)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if test and not test["passed"]:
        print("Not shipped: the candidates do not beat the incumbents by more than chance.")
        return 1
    chosen = choose(candidates)
    print(f"Chosen on validation: {chosen['folder']} ({chosen['val_error']:.2f}%).", flush=True)
    if args.dry_run:
        return 0
    is_ensemble = os.path.exists(os.path.join(chosen["path"], RECIPE_FILE))
    config = runs.read_json(
        os.path.join(chosen["path"], RECIPE_FILE if is_ensemble else runs.CONFIG_FILE)
    )
    record = {
        "rule": "lowest validation error of the candidates (their own folds), first of ties"
        + (f", after a paired sign test against {len(incumbents)} incumbents" if test else ""),
        "sign_test": test or None,
        "chosen": chosen,
        "candidates": candidates,
        "recipe": config,
        "command": "python benchmarks/ship.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "commit": git_commit(),
        "machine": runs.machine_description(),
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    install(chosen["path"], record)
    write_results(record, args.name)
    return 0


def against(candidates: list[dict], incumbents: list[dict]) -> dict:
    """Runs the sign test on MNIST's training images and prints its reading."""
    x_train, y_train = training_images()
    test = paired_test(
        candidates, incumbents, lambda row: validation_wrong(row["path"], x_train, y_train)
    )
    for pair in test["pairs"]:
        print(
            f"wrong on validation: {pair['candidate']} {pair['candidate_mistakes']}, "
            f"{pair['incumbent']} {pair['incumbent_mistakes']}"
        )
    print(
        f"Sign test: {test['wins']} images only the incumbents got wrong, {test['losses']} only "
        f"the candidates; p = {test['p']:.3f} (ships below {ALPHA})."
    )
    return test


def write_results(record: dict, name: str) -> None:
    """Reads the installed model's test error once and writes NAME.md and NAME.json."""
    from mnistlab.data.mnist import load_mnist
    from mnistlab.models.saved import PRETRAINED_DIR, load_model, measure

    _, (x_test, y_test) = load_mnist(None)
    metrics = measure(load_model(None, compile=False), x_test, y_test)
    sizes = {
        file: os.path.getsize(os.path.join(PRETRAINED_DIR, file))
        for file in (runs.MODEL_FILE, "model.onnx")
    }
    result = {**record, "test_error": metrics["error"], "bytes": sizes}
    runs.write_json(os.path.join(RESULTS, f"{name}.json"), result)
    chosen, config = record["chosen"], record["recipe"]
    lines = [
        "# The shipped model",
        "",
        f"Command: `{record['command']}`  ",
        f"Machine: {record['machine']}; commit {record['commit']}; written {record['written']}.",
        "",
        f"Rule: {record['rule']}.",
        "",
        *(
            [
                f"Sign test against the incumbents: {test['wins']} validation images only they "
                f"got wrong, {test['losses']} only the candidates; p = {test['p']:.3f}.",
                "",
            ]
            if (test := record.get("sign_test"))
            else []
        ),
        "| candidate | seed | val fold | val error % |",
        "| --- | ---: | ---: | ---: |",
        *(
            f"| {row['folder']} | {row['seed']} | {row['val_fold']} | {row['val_error']:.2f} |"
            for row in record["candidates"]
        ),
        "",
        f"Shipped: `{chosen['folder']}` (`{config['model']}`, seed {chosen['seed']}"
        + (f", distilled from `{config['teacher']}`" if config.get("teacher") else "")
        + f"). **Test error {metrics['error']:.2f}%** ({round(metrics['error'] * 100)} of "
        f"{len(y_test):,}), read once, after the choice. On disk: model.keras "
        f"{sizes[runs.MODEL_FILE] / 1e6:.2f} MB, model.onnx {sizes['model.onnx'] / 1e6:.2f} MB.",
        "",
    ]
    with open(os.path.join(RESULTS, f"{name}.md"), "w") as handle:
        handle.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
