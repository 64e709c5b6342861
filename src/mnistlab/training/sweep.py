"""Hyperparameter sweeps: a grid or a random search over models and recipe options.

A sweep is one TOML file:

    [sweep]
    method = "grid"            # every combination; or "random" with trials = N and seed
    out = "runs/sweep1"        # one run folder per trial inside, plus results.md/.csv
    [fixed]                    # TrainConfig keys shared by every trial
    epochs = 3
    train_size = 10000
    [grid]                     # lists of values to combine (random: draws from them)
    model = ["cnn", "larger_cnn"]
    learning_rate = [0.001, 0.003]

A random search may also draw a number from a range: ``learning_rate = {log_uniform =
[0.0003, 0.01]}`` or ``{uniform = [low, high]}`` (integers if both ends are integers).

Trials run through ``executors.run_trials`` (local processes or Ray), so rerunning a sweep
skips finished trials and resumes interrupted ones. Trials are ranked by their best
validation error (history.csv); the test error is shown beside it, never used to rank.
"""

from __future__ import annotations

import csv
import itertools
import math
import os
import random

from mnistlab.core import runs
from mnistlab.core.config import TrainConfig, fields_of
from mnistlab.training.executors import run_trials
from mnistlab.training.train import resolve_config

SECTIONS = ("sweep", "fixed", "grid")

SWEEP_KEYS = {  # key: type (what it means)
    "method": str,  # grid or random
    "out": str,  # folder of the sweep's run folders and results
    "trials": int,  # number of random draws (random only)
    "seed": int,  # seed of the random draws (random only)
    "data": str,  # MNIST folder or mnist.npz for every trial
    "backend": str,  # Keras backend of every trial
    "executor": str,  # local or ray
    "address": str,  # Ray cluster address
    "max_retries": int,  # extra attempts for a failed trial
    "num_cpus": int,  # local: trials at once; ray: CPUs of a local Ray
}
METHODS = ("grid", "random")
RANGES = ("uniform", "log_uniform")
SIGNIFICANT_DIGITS = 4  # random draws are rounded so names and tables stay readable
SPEC_FILE = "sweep.json"  # the trials of a sweep folder; a different sweep there is refused


def load_sweep(path: str) -> dict:
    """Reads and checks a sweep file.

    Args:
        path: a TOML file with [sweep], [fixed] and [grid] tables.

    Returns:
        dict with the [sweep] keys (method, out, trials, seed, ...), "fixed" and "grid".
    """
    import tomllib

    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except OSError as error:
        raise ValueError(f"Cannot read sweep file '{path}': {error.strerror}.") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"Sweep file '{path}' is not valid TOML: {error}.") from None
    unknown = sorted(set(document) - set(SECTIONS))
    if unknown:
        raise ValueError(
            f"Sweep file '{path}': unknown section(s) {', '.join(unknown)}. "
            f"Sections: {', '.join(f'[{name}]' for name in SECTIONS)}."
        )
    settings = dict(document.get("sweep", {}))
    unknown = sorted(set(settings) - set(SWEEP_KEYS))
    if unknown:
        raise ValueError(
            f"Sweep file '{path}': unknown key(s) in [sweep]: {', '.join(unknown)}. "
            f"Known: {', '.join(SWEEP_KEYS)}."
        )
    for key, value in settings.items():
        expected = SWEEP_KEYS[key]
        if not isinstance(value, expected) or isinstance(value, bool):
            raise ValueError(
                f"Sweep file '{path}': [sweep] {key} must be {expected.__name__}, got {value!r}."
            )
    settings.setdefault("method", "grid")
    if settings["method"] not in METHODS:
        raise ValueError(
            f"Sweep file '{path}': method must be one of {', '.join(METHODS)}, "
            f"got {settings['method']!r}."
        )
    fixed, grid = dict(document.get("fixed", {})), dict(document.get("grid", {}))
    _check_train_keys(path, "fixed", fixed)
    _check_train_keys(path, "grid", grid)
    both = sorted(set(fixed) & set(grid))
    if both:
        raise ValueError(f"Sweep file '{path}': {', '.join(both)} in both [fixed] and [grid].")
    for key, values in grid.items():
        _check_grid_value(path, settings["method"], key, values)
    if "model" not in fixed and "model" not in grid:
        raise ValueError(f"Sweep file '{path}': name the model(s) in [fixed] or [grid].")
    if settings["method"] == "random":
        if settings.get("trials", 0) < 1:
            raise ValueError(
                f"Sweep file '{path}': method = 'random' needs trials = N (a positive integer)."
            )
    else:
        extra = sorted({"trials", "seed"} & set(settings))
        if extra:
            raise ValueError(
                f"Sweep file '{path}': {', '.join(extra)} are for method = 'random'; "
                "a grid runs every combination."
            )
    return {**settings, "fixed": fixed, "grid": grid}


def _check_train_keys(path: str, section: str, values: dict) -> None:

    known = fields_of(TrainConfig)
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(
            f"Sweep file '{path}': unknown key(s) in [{section}]: {', '.join(unknown)}. "
            f"Training keys: {', '.join(known)}."
        )


def _check_grid_value(path: str, method: str, key: str, values) -> None:
    if isinstance(values, list) and values:
        return
    if method == "random" and isinstance(values, dict) and len(values) == 1:
        ((kind, bounds),) = values.items()
        numbers = (
            isinstance(bounds, list)
            and len(bounds) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bounds)
        )
        if kind in RANGES and numbers and bounds[0] < bounds[1]:
            if kind == "uniform" or bounds[0] > 0:
                return
    expected = "a non-empty list of values"
    if method == "random":
        expected += ", or a range {uniform = [low, high]} or {log_uniform = [low, high]} "
        expected += "with low < high (low > 0 for log_uniform)"
    raise ValueError(f"Sweep file '{path}': [grid] {key} = {values!r} must be {expected}.")


def _draw(rng: random.Random, values):
    if isinstance(values, list):
        return rng.choice(values)
    ((kind, (low, high)),) = values.items()
    if kind == "uniform" and isinstance(low, int) and isinstance(high, int):
        return rng.randint(low, high)
    if kind == "log_uniform":
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
    else:
        value = rng.uniform(low, high)
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def combinations(spec: dict) -> list[dict]:
    """The varied values of each trial, in a fixed order (same file, same trials).

    Returns:
        A list of dicts of [grid] keys and their values: every combination for a grid,
        ``trials`` draws for a random search (distinct when the grid is all lists).
    """
    keys = list(spec["grid"])
    if spec["method"] == "grid":
        return [
            dict(zip(keys, values, strict=True))
            for values in itertools.product(*(spec["grid"][key] for key in keys))
        ]
    rng = random.Random(spec.get("seed", 0))
    count = spec["trials"]
    if all(isinstance(spec["grid"][key], list) for key in keys):
        every = list(itertools.product(*(spec["grid"][key] for key in keys)))
        if count > len(every):
            raise ValueError(
                f"The sweep asks for {count} random trials but [grid] has only {len(every)} "
                "combinations; lower trials, or use method = 'grid'."
            )
        return [dict(zip(keys, values, strict=True)) for values in rng.sample(every, count)]
    return [{key: _draw(rng, spec["grid"][key]) for key in keys} for _ in range(count)]


def trial_name(index: int, varied: dict) -> str:
    """Folder name of a trial: its number, then its varied values.

    Example:
        >>> trial_name(3, {"model": "cnn", "learning_rate": 0.003})
        '003-cnn-learning_rate-0.003'
    """
    parts = [f"{index:03d}"]
    for key, value in varied.items():
        text = f"{value:g}" if isinstance(value, float) else str(value)
        parts.append(text if key == "model" else f"{key}-{text}")
    return "-".join(parts)


def expand_trials(
    spec: dict, out: str | None = None, data: str | None = None, backend: str | None = None
) -> list[dict]:
    """Turns a sweep spec into run_trials' trials, each checked as a full training config.

    Args:
        spec: what ``load_sweep`` returns.
        out, data, backend: override the [sweep] values.

    Returns:
        A list of trial dicts (``mnistlab.train`` keywords, with "out" and "varied").
    """

    folder = out or spec.get("out")
    if not folder:
        raise ValueError("Say where the sweep writes: out = 'runs/NAME' in [sweep], or --out.")
    data = data or spec.get("data")
    backend = backend or spec.get("backend")
    trials = []
    for index, varied in enumerate(combinations(spec)):
        values = {**spec["fixed"], **varied}
        settings = {key: value for key, value in values.items() if key != "model"}
        config = resolve_config(values["model"], None, None, **settings)
        if config.val_size == 0:
            raise ValueError(
                "A sweep ranks trials by validation error, but val_size = 0 validates on the "
                "test set, so the ranking would choose by test error. Set val_size > 0."
            )
        trial = {**values, "out": os.path.join(folder, trial_name(index, varied))}
        if data:
            trial["data"] = data
        if backend:
            trial["backend"] = backend
        trials.append({**trial, "varied": varied})
    return trials


def run_sweep(
    config_file: str,
    *,
    executor: str | None = None,
    address: str | None = None,
    out: str | None = None,
    data: str | None = None,
    backend: str | None = None,
    max_retries: int | None = None,
    num_cpus: int | None = None,
    on_result=None,
) -> list[dict]:
    """Runs (or finishes) a sweep and writes its results table.

    Args:
        config_file: the sweep's TOML file (see the module docstring).
        executor: "local" or "ray" (default: [sweep] executor, else local).
        address, max_retries, num_cpus: as for ``executors.run_trials``.
        out, data, backend: override the [sweep] values.
        on_result: called with each trial's result as it finishes.

    Returns:
        The results of ``run_trials`` with "name" and "varied" added, best validation
        error first (failed trials last). results.md and results.csv are in the sweep folder.

    Example:
        >>> results = run_sweep("sweep.toml")              # doctest: +SKIP
        >>> results[0]["name"], results[0]["val_error"]      # doctest: +SKIP
        ('001-cnn-learning_rate-0.003', 1.02)
    """

    spec = load_sweep(config_file)
    trials = expand_trials(spec, out, data, backend)
    folder = out or spec["out"]
    _claim_folder(folder, trials)
    results = run_trials(
        [{k: v for k, v in trial.items() if k != "varied"} for trial in trials],
        executor=executor or spec.get("executor", "local"),
        address=address or spec.get("address"),
        max_retries=spec.get("max_retries", 2) if max_retries is None else max_retries,
        num_cpus=num_cpus or spec.get("num_cpus"),
        on_result=on_result,
    )
    for trial, result in zip(trials, results, strict=True):
        result["name"] = os.path.basename(trial["out"])
        result["varied"] = trial["varied"]
    ranked = sorted(results, key=rank_key)
    write_results(folder, ranked)
    return ranked


def _claim_folder(folder: str, trials: list[dict]) -> None:
    """Records the sweep's trials in its folder; refuses a folder that holds another sweep."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, SPEC_FILE)
    listed = [{k: v for k, v in trial.items() if k not in ("data",)} for trial in trials]
    listed = [{**trial, "out": os.path.basename(trial["out"])} for trial in listed]
    if os.path.exists(path) and runs.read_json(path) != listed:
        raise ValueError(
            f"'{folder}' holds another sweep (its {SPEC_FILE} lists other trials). "
            "Choose another out folder, or delete that one to start over."
        )
    runs.write_json(path, listed)


def rank_key(result: dict):
    """Finished trials by best validation error, then name; failed trials last."""
    failed = result["status"] != "ok" or result.get("val_error") is None
    return (failed, result.get("val_error") or 0.0, result.get("name", result["out"]))


def results_rows(ranked: list[dict]) -> tuple[list[str], list[list]]:
    """Header and rows of the results table (errors in percent)."""
    varied = list(dict.fromkeys(key for result in ranked for key in result["varied"]))
    header = [
        "rank",
        "trial",
        *varied,
        "val_error_%",
        "best_epoch",
        "test_error_%",
        "epochs",
        "status",
        "attempts",
        "note",
    ]
    rows = []
    for rank, result in enumerate(ranked, start=1):
        ok = result["status"] == "ok"
        note = "" if ok else (result.get("error") or "").splitlines()[0][:120]
        if ok and result.get("skipped"):
            note = "already complete"
        elif ok and result.get("resumed"):
            note = "resumed"
        rows.append(
            [
                rank if ok else "",
                result["name"],
                *(result["varied"].get(key, "") for key in varied),
                _percent(result.get("val_error")),
                result.get("best_epoch") or "",
                _percent(result.get("test_error")),
                result.get("epochs_run") or "",
                result["status"],
                result["attempts"],
                note,
            ]
        )
    return header, rows


def _percent(value) -> str:
    return "" if value is None else f"{value:.2f}"


def write_results(folder: str, ranked: list[dict]) -> tuple[str, str]:
    """Writes results.md and results.csv in the sweep folder; returns their paths."""
    header, rows = results_rows(ranked)
    csv_path = os.path.join(folder, "results.csv")
    with runs.atomic_path(csv_path) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    markdown_path = os.path.join(folder, "results.md")
    lines = [
        f"# Sweep results: {os.path.basename(os.path.abspath(folder))}",
        "",
        "Ranked by the best validation error over the epochs (held-out images); the test "
        "error is shown, not used to rank. Errors in percent.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(str(cell).replace("|", "/") for cell in row) + " |" for row in rows]
    with runs.atomic_path(markdown_path) as temporary, open(temporary, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return markdown_path, csv_path
