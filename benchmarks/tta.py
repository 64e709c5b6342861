"""Test-time augmentation for trained networks: chosen on validation, then measured on test.

For each run folder given, the network predicts its own held-out validation slice (the
val_size images of fold val_fold that it never trained on) and the test set, once per view:
the image itself, its four one-pixel shifts, rotations by +-6 degrees and zooms by +-5%. Sets of
views are compared by their mistakes on the validation slices, pooled over the runs; the set
with the fewest wins (ties go to fewer views, then to the first listed), and only that set and
no augmentation are read on the test set. The networks' probabilities averaged (an ensemble)
are reported both ways too. `mnistlab evaluate --tta` uses the shift set (evaluate.TTA_SHIFTS).

Usage (minutes: 9 predictions of each validation and test image per network):
    flock /tmp/mnistlab-heavy.lock python benchmarks/tta.py \\
        --runs runs/bench-best-v1000-e20/members/member-{0,1,2} --name tta

Writes benchmarks/results/NAME.md and NAME.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "src"))

from mnistlab.core import runs  # noqa: E402

VIEWS = {  # name -> keyword arguments of augment.affine_warp
    "image": {},
    "up 1": {"shifts": (-1, 0)},
    "down 1": {"shifts": (1, 0)},
    "left 1": {"shifts": (0, -1)},
    "right 1": {"shifts": (0, 1)},
    "rotated +6": {"angles": 6.0},
    "rotated -6": {"angles": -6.0},
    "zoom 1.05": {"scales": 1.05},
    "zoom 0.95": {"scales": 0.95},
}
SETS = {
    "none": ["image"],
    "shifts": ["image", "up 1", "down 1", "left 1", "right 1"],
    "rotations": ["image", "rotated +6", "rotated -6"],
    "zooms": ["image", "zoom 1.05", "zoom 0.95"],
    "all": list(VIEWS),
}


def view_probabilities(model, images) -> dict:
    """{view: (N, 10) probabilities} for (N, 28, 28) uint8 images."""
    import numpy as np

    from mnistlab.models.registry import to_input
    from mnistlab.models.saved import PREDICT_BATCH
    from mnistlab.training.augment import affine_warp

    inputs = to_input(images)
    return {
        name: np.asarray(
            model.predict(affine_warp(inputs, **warp), batch_size=PREDICT_BATCH, verbose=0)
        )
        for name, warp in VIEWS.items()
    }


def mistakes(probabilities: dict, views: list[str], labels) -> int:
    import numpy as np

    mean = np.mean([probabilities[view] for view in views], axis=0)
    return int(np.sum(mean.argmax(axis=1) != labels))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", required=True, help="finished run folders")
    parser.add_argument("--name", default="tta", help="results file name (default tta)")
    parser.add_argument("--data", help="MNIST folder or mnist.npz (default: $MNISTLAB_DATA)")
    parser.add_argument("--out", default=os.path.join(HERE, "results"), help="results folder")
    args = parser.parse_args(argv)

    import numpy as np

    from mnistlab.data.mnist import load_mnist
    from mnistlab.models.saved import TTA_SHIFTS, load_model

    (x_train, y_train), (x_test, y_test) = load_mnist(args.data)
    started = time.perf_counter()
    rows, test_views = [], []
    for folder in args.runs:
        runs.check_complete(folder)
        config = runs.read_json(os.path.join(folder, runs.CONFIG_FILE))
        if not config["val_size"]:
            raise ValueError(f"{folder} validated on the test set: it has no held-out slice.")
        end = len(x_train) - config["val_fold"] * config["val_size"]
        held_out = slice(end - config["val_size"], end)
        model = load_model(folder, compile=False)
        validation = view_probabilities(model, x_train[held_out])
        rows.append(
            {
                "run": folder,
                "seed": config["seed"],
                "val_images": config["val_size"],
                "val_mistakes": {
                    name: mistakes(validation, views, y_train[held_out])
                    for name, views in SETS.items()
                },
            }
        )
        test_views.append(view_probabilities(model, x_test))
        print(folder, rows[-1]["val_mistakes"], flush=True)

    pooled = {name: sum(row["val_mistakes"][name] for row in rows) for name in SETS}
    chosen = min(SETS, key=lambda name: (pooled[name], len(SETS[name])))
    shift_names = [
        next(name for name, warp in VIEWS.items() if tuple(warp.get("shifts", (0, 0))) == shift)
        for shift in TTA_SHIFTS
    ]
    assert sorted(shift_names) == sorted(SETS["shifts"])  # what evaluate --tta does
    for row, probabilities in zip(rows, test_views, strict=True):
        row["test_error"] = {
            name: 100 * mistakes(probabilities, SETS[name], y_test) / len(y_test)
            for name in dict.fromkeys(["none", chosen])
        }
    ensemble = {
        name: 100
        * mistakes(
            {view: np.mean([p[view] for p in test_views], axis=0) for view in VIEWS},
            SETS[name],
            y_test,
        )
        / len(y_test)
        for name in dict.fromkeys(["none", chosen])
    }
    mean = {name: statistics.mean(row["test_error"][name] for row in rows) for name in ensemble}
    spread = {
        name: statistics.stdev(row["test_error"][name] for row in rows) if len(rows) > 1 else 0.0
        for name in ensemble
    }
    sys.path.insert(0, HERE)
    from speed import write_table

    from mnistlab.core.runs import machine_description

    result = {
        "command": "python benchmarks/tta.py --runs "
        + " ".join(args.runs)
        + f" --name {args.name}",
        "machine": machine_description(),
        "written": time.strftime("%Y-%m-%d %H:%M"),
        "seconds": time.perf_counter() - started,
        "sets": SETS,
        "views": VIEWS,
        "pooled_val_mistakes": pooled,
        "val_images": sum(row["val_images"] for row in rows),
        "chosen": chosen,
        "runs": rows,
        "test_error_mean": mean,
        "test_error_std": spread,
        "ensemble_test_error": ensemble,
    }
    runs.write_json(os.path.join(args.out, f"{args.name}.json"), result)
    names = list(SETS)
    lines = [
        f"# Test-time augmentation of {len(rows)} networks",
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {result['machine']}  ",
        f"Written: {result['written']}",
        "",
        "Views: " + "; ".join(f"**{name}**: {', '.join(views)}" for name, views in SETS.items()),
        "(probabilities averaged over a set's views).",
        "",
        "Mistakes on each network's own held-out validation slice (never trained on):",
        "",
        "| run | seed | val images | " + " | ".join(names) + " |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in names) + " |",
        *[
            f"| {row['run']} | {row['seed']} | {row['val_images']} | "
            + " | ".join(str(row["val_mistakes"][name]) for name in names)
            + " |"
            for row in rows
        ],
        f"| pooled | | {result['val_images']} | "
        + " | ".join(str(pooled[name]) for name in names)
        + " |",
        "",
        f"Chosen on validation: **{chosen}** (fewest pooled mistakes; ties to fewer views). "
        "Then read once on the 10,000 test images:",
        "",
        "| | " + " | ".join(f"test error, {name}" for name in ensemble) + " |",
        "| --- | " + " | ".join("---:" for _ in ensemble) + " |",
        *[
            f"| seed {row['seed']} | "
            + " | ".join(f"{row['test_error'][name]:.2f}%" for name in ensemble)
            + " |"
            for row in rows
        ],
        f"| mean ± sd over {len(rows)} | "
        + " | ".join(f"{mean[name]:.4g}% ± {spread[name]:.2f}" for name in ensemble)
        + " |",
        f"| the {len(rows)} averaged (ensemble) | "
        + " | ".join(f"{ensemble[name]:.2f}%" for name in ensemble)
        + " |",
    ]
    write_table(args.out, f"{args.name}.md", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
