"""How the speedrun's networks and settings were chosen: candidates side by side, seeds 1 and 2.

Each candidate is `mnistlab speedrun` itself (mnistlab.training.speedrun.run_speedrun: the same
training, clock and test measure) with a target's settings and a few of them changed:
the network, its batch normalisation's momentum, the peak rate, how many of the training
images it sees, how many epochs. Candidates:

- the 99.5 network, `speedrun_large`, for one pass over 40,000 images at Keras's default
  momentum (0.99) and at 0.9: why the networks keep their statistics at 0.9;
- the 99.0 network, `speedrun` (a strided first convolution: a pass takes it less than
  half as long), in batches of 128 on 40,000 and 50,000 images, and of 64 (chosen) on 40,000, at
  peak rates 0.01 and 0.02;
- `speedrun` with the 99.5 setting (affine augmentation) for 12 epochs: where it levels off,
  why the 99.5 target keeps the larger network.

Two seeds: a probe, not a result (benchmarks/speedrun.py measures the chosen settings over 5
seeds). About 6 minutes on the 2-core CPU.

Usage:
    flock /tmp/mnistlab-heavy.lock python benchmarks/speedrun_probe.py [--tiny]

Writes benchmarks/results/speedrun_probe.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = (1, 2)
B128, RATE_01 = dict(batch_size=128, train_size=40000), dict(learning_rate=0.01)
# (label, target, network, settings that differ from the target's)
CANDIDATES = [
    ("momentum 0.99 (Keras's), rate 0.01", "99.0", "probe_large_m099", dict(RATE_01, **B128)),
    ("momentum 0.9, rate 0.01", "99.0", "speedrun_large", dict(RATE_01, **B128)),
    ("batch 128, rate 0.02", "99.0", "speedrun", B128),
    ("batch 128, rate 0.02", "99.0", "speedrun", dict(B128, train_size=50000)),
    ("batch 64, rate 0.01", "99.0", "speedrun", RATE_01),
    ("batch 64, rate 0.02 (chosen for 99.0)", "99.0", "speedrun", {}),
    ("99.5 setting, rate 0.02, 12 epochs", "99.5", "speedrun", dict(epochs=12, learning_rate=0.02)),
]  # fmt: skip


def register_probe_network() -> None:
    """`speedrun_large` at Keras's default batch normalisation momentum, for the first row."""
    from mnistlab.models.registry import register
    from mnistlab.models.small import recipe, speedrun_large

    register("probe_large_m099", "speedrun_large at momentum 0.99 (probe only)", **recipe("99.0"))(
        lambda: speedrun_large(momentum=0.99)
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="600 images, 1 epoch, seed 1: for CI")
    parser.add_argument("--out", default=os.path.join(HERE, "results"), help="results folder")
    args = parser.parse_args(argv)

    from mnistlab.data.mnist import load_mnist
    from mnistlab.models.small import TARGETS
    from mnistlab.training.speedrun import run_speedrun

    register_probe_network()
    data = load_mnist()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for number, (label, target, network, changes) in enumerate(CANDIDATES):
            changes = {**changes, **(dict(train_size=600, epochs=1) if args.tiny else {})}
            report = run_speedrun(
                target,
                seeds=SEEDS[:1] if args.tiny else SEEDS,
                data=data,
                out=os.path.join(folder, str(number)),
                model=network,
                **changes,
            )
            settings = report["settings"]
            images = settings["train_size"] or len(data[0][0])
            seconds = [run["train_seconds"] for run in report["runs"]]
            accuracy = [run["accuracy"] for run in report["runs"]]
            shown = "speedrun_large" if network == "probe_large_m099" else network
            rows.append((shown, label, images, settings, seconds, accuracy))
            print(f"{shown}, {label}: {seconds} s, {accuracy}%", flush=True)

    sys.path.insert(0, HERE)
    from speed import write_table

    from mnistlab.core.runs import machine_description

    lines = [
        f"# Speedrun probe: networks and settings (seeds {', '.join(map(str, SEEDS))})",
        "",
        f"Machine: {machine_description()}. Command: `python "
        f"benchmarks/speedrun_probe.py{' --tiny' if args.tiny else ''}`. Each row is "
        "`mnistlab speedrun` with the target's settings and the changes named; seconds are its "
        "training clock (tracing included, test measures not). Targets' settings: "
        + "; ".join(
            f"{target}: `{spec['model']}`, "
            + ", ".join(f"{key}={value}" for key, value in spec["settings"].items())
            for target, spec in TARGETS.items()
        )
        + ".",
        "",
        "| network | candidate | images | batch | epochs | train s (each seed) | test accuracy % "
        "(each seed) | mean % |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *[
            f"| `{network}` | {label} | {images} | {settings['batch_size']} | "
            f"{settings['epochs']} | "
            f"{', '.join(f'{s:.1f}' for s in seconds)} | "
            f"{', '.join(f'{a:.2f}' for a in accuracy)} | {sum(accuracy) / len(accuracy):.2f} |"
            for network, label, images, settings, seconds, accuracy in rows
        ],
    ]
    write_table(args.out, "speedrun_probe.md", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
