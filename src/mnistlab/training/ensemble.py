"""Ensembles: train N members of one model with different seeds and validation folds, then
average their probabilities in ONE saved model that evaluate, predict and visualize accept.

An ensemble folder holds:
    members/member-0 ... member-N-1   ordinary run folders (trained, skipped or resumed by
                                      executors.run_trials: a crashed member is retried,
                                      a finished one is never retrained)
    model.keras     a functional model: input -> every member -> Average -> probabilities
    ensemble.json   the recipe: member model, seeds, folds, member folders and their errors
    meta.json       versions and machine
    metrics.json    test metrics of the averaged model (written last: marks it complete)

Member i trains with seed ``seed + i`` and holds out validation fold ``i`` (the i-th slice
of val_size images from the end of the training set), so no member ever sees the test set
while it trains, and the members' validation errors are measured on different images.

Runs trained apart (other recipes, even other models) are averaged as they are with
``build_ensemble(folders, out)``, or ``mnistlab ensemble --runs RUN [RUN ...] --out OUT``.
"""

from __future__ import annotations

import os

from mnistlab.core import runs
from mnistlab.core.config import TrainConfig, saved_config
from mnistlab.data.mnist import find_source, load_mnist
from mnistlab.models.registry import get_spec
from mnistlab.models.saved import load_model, measure
from mnistlab.training.executors import run_trials, summarize

MEMBERS_DIR = "members"  # member run folders live in DIR/members/member-I

RECIPE_FILE = "ensemble.json"
MNIST_TRAIN_IMAGES = 60_000  # how many validation folds fit: 60,000 / val_size


def member_trials(model: str, members: int, out: str, **overrides) -> list[dict]:
    """One trial (keyword arguments of ``mnistlab.train``) per ensemble member.

    Args:
        model: registry name of the members' network, e.g. "best".
        members: how many members (1 or more).
        out: the ensemble folder; members go to out/members/member-I.
        **overrides: TrainConfig keys (and data/backend) shared by every member; "seed" is
            the first member's seed (default: the model's recipe, else TrainConfig's).

    Returns:
        list of dicts with model, out, seed, val_fold and the overrides.

    Example:
        >>> [t["seed"] for t in member_trials("cnn", 3, "runs/e", seed=1)]
        [1, 2, 3]
    """

    if members < 1:
        raise ValueError(f"An ensemble needs at least 1 member, got --members {members}.")
    recipe = {**TrainConfig().to_dict(), **(get_spec(model).recipe or {})}
    overrides = {key: value for key, value in overrides.items() if value is not None}
    first_seed = overrides.pop("seed", recipe["seed"])
    val_size = overrides.get("val_size", recipe["val_size"])
    if not val_size:
        raise ValueError(
            "Ensemble members validate on held-out folds; val_size=0 (validate on test) "
            "would choose the ensemble on the test set. Use val_size > 0."
        )
    train_images = overrides.get("train_size") or MNIST_TRAIN_IMAGES
    folds = max(1, train_images // val_size - 1)  # keep at least one fold's worth to train on
    return [
        {
            "model": model,
            "out": os.path.join(out, MEMBERS_DIR, f"member-{index}"),
            **overrides,
            "seed": first_seed + index,
            "val_fold": index % folds,
        }
        for index in range(members)
    ]


def train_members(trials: list[dict], executor: str = "local", address=None, on_result=None):
    """Trains (or skips, or resumes) every member; returns executors.run_trials' results.

    Raises:
        ValueError: naming every member that still failed after its retries.
    """

    results = run_trials(trials, executor=executor, address=address, on_result=on_result)
    failed = [result for result in results if result["status"] != "ok"]
    if failed:
        reasons = "; ".join(f"{result['out']}: {result['error']}" for result in failed)
        raise ValueError(
            f"{len(failed)} of {len(results)} members failed ({reasons}). Finished members "
            "are kept; run the same command again to retry the others."
        )
    return results


def average_models(models, name: str = "ensemble", weights=None):
    """Wraps models of the same input shape into one that averages their outputs.

    Args:
        models: keras.Models mapping (N, 28, 28, 1) to (N, 10) probabilities.
        name: the wrapping model's name.
        weights: None for the plain mean, or one positive weight per model (divided by
            their sum), e.g. to give two designs half each however many members each has.

    Returns:
        keras.Model whose output is the (weighted) mean of the members' probabilities.
    """
    import keras

    from mnistlab.models.layers import WeightedAverage, normalize_weights

    if weights is not None:
        weights = normalize_weights(weights)
        if len(weights) != len(models):
            raise ValueError(f"{len(weights)} member weights for {len(models)} members.")

    inputs = keras.Input(models[0].input_shape[1:])
    outputs = []
    for index, member in enumerate(models):
        member.name = f"member_{index}"  # nested models need unique names in one graph
        outputs.append(member(inputs))
    if len(outputs) == 1:
        return keras.Model(inputs, outputs[0], name=name)
    if weights is None:
        averaged = keras.layers.Average(name="average_probabilities")(outputs)
    else:
        averaged = WeightedAverage(weights, name="average_probabilities")(outputs)
    return keras.Model(inputs, averaged, name=name)


def split_configs(configs: list[dict]) -> tuple[dict, dict]:
    """The settings all members share, and per-member lists of the others.

    Seeds and validation folds are left out (ensemble.json lists them on their own).

    Example:
        >>> split_configs([{"model": "best", "ema": 0.0, "seed": 1},
        ...                {"model": "best", "ema": 0.999, "seed": 2}])
        ({'model': 'best'}, {'ema': [0.0, 0.999]})
    """
    keys = sorted({key for config in configs for key in config} - {"seed", "val_fold"})
    shared, differing = {}, {}
    for key in keys:
        values = [config.get(key) for config in configs]
        if all(value == values[0] for value in values):
            shared[key] = values[0]
        else:
            differing[key] = values
    return shared, differing


def build_ensemble(member_folders: list[str], out: str, data=None, weights=None) -> dict:
    """Averages finished member run folders into one model and measures it on the test set.

    Any finished runs can be members: different seeds, recipes or registered models (all take
    28x28 images to 10 probabilities). ensemble.json keeps the settings they share and lists
    the ones that differ, member by member.

    Args:
        member_folders: complete run folders (each holds model.keras).
        out: folder to write model.keras, ensemble.json, meta.json and metrics.json to.
        data: None, a path, or arrays, as for ``mnistlab.train``; only the test set is used.
        weights: None (every member counts the same) or one positive weight per member
            folder, divided by their sum; ensemble.json records them.

    Returns:
        metrics dict of ``evaluate.measure`` plus "member_test_errors" (percent each).
    """
    from mnistlab.models.layers import normalize_weights

    if not member_folders:
        raise ValueError("An ensemble needs at least 1 member run folder.")
    if weights is not None:
        weights = normalize_weights(weights)
        if len(weights) != len(member_folders):
            raise ValueError(
                f"--weights gives {len(weights)} weights for {len(member_folders)} run folders; "
                "give one per folder."
            )
    for folder in member_folders:
        runs.check_complete(folder)
        if os.path.exists(os.path.join(folder, RECIPE_FILE)):
            raise ValueError(f"'{folder}' is an ensemble; give its member run folders instead.")
    if os.path.exists(os.path.join(out, runs.CONFIG_FILE)):  # would overwrite its model.keras
        raise ValueError(f"'{out}' is a training run folder; write the ensemble to a new folder.")
    summaries = [summarize(folder) for folder in member_folders]
    # members without their optimizers: the ensemble only predicts, and Adam's two moments
    # per weight would triple the saved file
    members = [load_model(folder, compile=False) for folder in member_folders]
    model = average_models(members, weights=weights)
    if isinstance(data, (tuple, list)):
        _, (x_test, y_test) = data
        source = "arrays given by the caller"
    else:
        _, (x_test, y_test) = load_mnist(data)
        source = find_source(data)
    os.makedirs(out, exist_ok=True)
    with runs.lock_run(out):
        # keys that runs from older versions lack take the defaults those versions behaved by
        configs = [
            saved_config(runs.read_json(os.path.join(f, runs.CONFIG_FILE))) for f in member_folders
        ]
        shared, differing = split_configs(configs)
        recipe = {
            "model": "+".join(dict.fromkeys(config["model"] for config in configs)),
            "members": [os.path.relpath(f, out) for f in member_folders],
            "seeds": [config["seed"] for config in configs],
            "val_folds": [config.get("val_fold", 0) for config in configs],
            "member_val_errors": [summary["val_error"] for summary in summaries],
            "member_test_errors": [summary["test_error"] for summary in summaries],
            "member_weights": weights or [1 / len(member_folders)] * len(member_folders),
            "member_config": shared,
            "member_differences": differing,
        }
        runs.write_json(os.path.join(out, RECIPE_FILE), recipe)
        meta = {"versions": runs.environment_versions(), "data_source": source}
        runs.write_json(os.path.join(out, runs.META_FILE), meta)
        metrics = measure(model, x_test, y_test)
        metrics["members"] = len(member_folders)
        metrics["member_test_errors"] = recipe["member_test_errors"]
        metrics["member_weights"] = recipe["member_weights"]
        metrics["calibration"] = _calibrate_ensemble(model, configs, out, data)
        runs.save_model_atomic(model, os.path.join(out, runs.MODEL_FILE))
        runs.write_json(os.path.join(out, runs.METRICS_FILE), metrics)  # last: marks complete
    return metrics


def _calibrate_ensemble(model, configs: list[dict], out: str, data) -> str:
    """Fits the averaged model's calibration.json where every member held out the same images.

    Members that held out different folds each trained on the others' validation images, so
    no image is unseen by the whole ensemble: then nothing is fitted (T = 1, no doubt), and
    the reason is returned for metrics.json.
    """
    from mnistlab.training.calibrate import calibrate_model, held_out_images

    folds = {(c.get("val_size", 0), c.get("val_fold", 0), c.get("train_size", 0)) for c in configs}
    if len(folds) != 1 or not next(iter(folds))[0]:
        return "not fitted: the members held out different validation images (or none)"
    x_val, y_val, note = held_out_images(configs[0], data)
    calibrate_model(model, x_val, y_val, out, note)
    return f"fitted on {note}"


def ensemble(
    model: str,
    members: int,
    out: str | None = None,
    executor: str = "local",
    address: str | None = None,
    data=None,
    on_result=None,
    **overrides,
) -> dict:
    """Trains N members (skipping finished ones) and saves their average as one model.

    Args:
        model: registry name, e.g. "best".
        members: number of members.
        out: ensemble folder (default runs/MODEL-ensemble-N).
        executor: "local" or "ray" (see executors.run_trials).
        address: Ray cluster address for executor="ray".
        data: None or a path to MNIST (members train in their own processes).
        on_result: called with each member's result (executors.run_trials') as it finishes.
        **overrides: TrainConfig keys shared by the members (seed = first member's seed).

    Returns:
        The ensemble's test metrics (``["error"]`` in percent, ``["member_test_errors"]``).

    Example:
        >>> ensemble("best", members=3, out="runs/best-x3")["error"]   # doctest: +SKIP
        0.27
    """
    out = out or os.path.join("runs", f"{model}-ensemble-{members}")
    if data is not None:
        overrides["data"] = data
    trials = member_trials(model, members, out, **overrides)
    train_members(trials, executor=executor, address=address, on_result=on_result)
    return build_ensemble([trial["out"] for trial in trials], out, data=data)
