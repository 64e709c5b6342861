"""Accuracy on the own-digits check set: photo- and scan-like images, through the real predict path.

Each image of benchmarks/own_digits (labels.csv: file, label, kind, description) goes through
``mnistlab.predict`` exactly as ``mnistlab predict IMAGE`` would send it: preprocess.to_mnist,
then the model, all images in one batch. An image that preprocessing refuses counts as wrong
and is listed. Prints a Markdown table of accuracy per kind and overall, and writes it to
benchmarks/results/own_digits.md.

Run:
    python benchmarks/own_digits_accuracy.py                    # the shipped model
    python benchmarks/own_digits_accuracy.py --model runs/cnn   # any run folder or .keras file
    python benchmarks/own_digits_accuracy.py --quick --model runs/cnn --out /tmp/own.md  # smoke
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CHECK_SET = os.path.join(HERE, "own_digits")  # images/ and labels.csv
RESULTS = os.path.join(HERE, "results", "own_digits.md")
QUICK_IMAGES = 10  # images in --quick mode, spread over the kinds


def read_labels(folder: str) -> list[dict]:
    """Rows of labels.csv: dicts with "path", "label" (int) and "kind"."""
    labels_path = os.path.join(folder, "labels.csv")
    if not os.path.exists(labels_path):
        raise SystemExit(
            f"No check set at {folder} (labels.csv missing). Build it with "
            "python benchmarks/own_digits/make_check_set.py"
        )
    with open(labels_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [
        {
            "path": os.path.join(folder, "images", row["file"]),
            "label": int(row["label"]),
            "kind": row["kind"],
        }
        for row in rows
    ]


def spread(rows: list[dict], count: int) -> list[dict]:
    """``count`` rows taken at even strides, so that every kind appears in a small sample."""
    if count >= len(rows):
        return rows
    stride = len(rows) / count
    return [rows[int(index * stride)] for index in range(count)]


def score(rows: list[dict], results: list[dict]) -> dict:
    """Per kind and overall: images, right, unreadable (refused by preprocessing), wrong."""
    table: dict = {}
    for row, result in zip(rows, results, strict=True):
        for key in (row["kind"], "overall"):
            entry = table.setdefault(key, {"images": 0, "right": 0, "unreadable": [], "wrong": []})
            entry["images"] += 1
            entry["right"] += int(result["digit"] == row["label"])
            name = os.path.basename(row["path"])
            if result["error"] is not None:
                entry["unreadable"].append(name)
            elif result["digit"] != row["label"]:
                entry["wrong"].append(f"{name} ({row['label']} → {result['digit']})")
    table["overall"] = table.pop("overall")  # last row of the table
    return table


def markdown(table: dict, model: str, seconds: float, command: str) -> str:
    """The Markdown report: what was measured, how, and the table."""
    from mnistlab.core.runs import machine_description

    lines = [
        "# Accuracy on the own-digits check set",
        "",
        f"Model: `{model}`. Images: benchmarks/own_digits (simulated photos and scans; see its "
        "README). Path: `mnistlab.predict` with preprocessing, as `mnistlab predict` runs it.",
        f"Machine: {machine_description()}; {seconds:.1f} s for {table['overall']['images']} "
        "images, preprocessing included.",
        f"Command: `{command}`",
        "",
        "| kind | images | right | accuracy | refused by preprocessing |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for kind, entry in table.items():
        accuracy = 100.0 * entry["right"] / entry["images"]
        name = f"**{kind}**" if kind == "overall" else kind
        lines.append(
            f"| {name} | {entry['images']} | {entry['right']} | {accuracy:.1f}% "
            f"| {len(entry['unreadable'])} |"
        )
    overall = table["overall"]
    if overall["wrong"]:
        lines += ["", f"Wrong (true → predicted): {', '.join(overall['wrong'])}."]
    if overall["unreadable"]:
        lines += ["", f"Refused: {', '.join(overall['unreadable'])}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="run folder or .keras file (shipped model)")
    parser.add_argument("--check-set", default=CHECK_SET, help="folder with images/, labels.csv")
    parser.add_argument(
        "--quick", action="store_true", help=f"only {QUICK_IMAGES} images (a smoke test)"
    )
    parser.add_argument(
        "--out", default=None, help=f"Markdown file to write (default {RESULTS}; none if --quick)"
    )
    parser.add_argument("--backend", default=None, help="Keras backend")
    args = parser.parse_args(argv)

    from mnistlab.core.backend import use_backend

    use_backend(args.backend)
    import mnistlab

    rows = read_labels(args.check_set)
    if args.quick:
        rows = spread(rows, QUICK_IMAGES)
    started = time.perf_counter()
    try:
        results = mnistlab.predict([row["path"] for row in rows], model=args.model)
    except (ValueError, FileNotFoundError) as error:
        print(f"own_digits_accuracy: error: {error}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    command = "python benchmarks/own_digits_accuracy.py"
    command += f" --model {args.model}" if args.model else ""
    command += " --quick" if args.quick else ""
    report = markdown(score(rows, results), args.model or "shipped", seconds, command)
    print(report, end="")
    out = args.out or (None if args.quick else RESULTS)
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, "w") as handle:
            handle.write(report)
        print(f"Wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
