"""The tables and the chart of benchmarks/speed.py, from its measurements (or its speed.json).

The headline is the like-for-like table (``like_for_like``): for each network, mnistlab against
the plain Keras script and the plain PyTorch loop in the same precision, float32 against float32
and mnistlab's bfloat16 default against the script with Keras's mixed_bfloat16 policy and the
loop under torch.autocast in bfloat16, by the median epoch and by the whole process, start to
exit.
"""

from __future__ import annotations

import os
import statistics

ONEDNN_MARK = {True: "on", False: "off", None: "-"}  # TensorFlow's oneDNN kernels in that process
# (label, mnistlab's row, the plain Keras row and the plain PyTorch row it is set against): the
# same precision each
PAIRS = (
    ("float32", "mnistlab-f32", "keras", "pytorch"),
    ("bfloat16", "mnistlab", "keras-bf16", "pytorch-bf16"),
)
# each peer's rows (float32, bfloat16) and the backend they run on (None: mnistlab's row's)
PEERS = {"Keras": ("keras", "keras-bf16", None), "PyTorch": ("pytorch", "pytorch-bf16", "torch")}
# the bars of the chart, top to bottom in each network's group: (implementation, label)
CHART_BARS = (
    ("mnistlab-f32", "mnistlab, float32"),
    ("keras", "plain Keras, float32"),
    ("mnistlab", "mnistlab, its default precision"),
    ("keras-bf16", "plain Keras, mixed bfloat16"),
    ("pytorch", "plain PyTorch, float32"),
    ("pytorch-bf16", "plain PyTorch, bfloat16 autocast"),
)
MATMUL_TARGET = 40  # % of numpy's matrix-multiply rate that issue 6 asks of cnn and larger_cnn


def same_precision(ours: dict, peer: dict) -> bool:
    """Whether two rows both train in float32 or both in a bfloat16 precision."""
    return (ours.get("precision", "float32") == "float32") == (
        peer.get("precision", "float32") == "float32"
    )


def network_flops(results: dict) -> dict:
    """(training, forward) FLOPs per image of each network, as the mnistlab workers counted."""
    counts = {}
    for (impl, _, model, _), runs in results.items():
        if impl.startswith("mnistlab"):
            counts.setdefault(model, (runs[0]["train_flops"], runs[0]["forward_flops"]))
    return counts


def summarize(results: dict, matmul: float, args) -> list[dict]:
    """One row per measurement: the median over rounds, the rounds' [min, max], and each
    round's figures (``*_rounds``, in round order, so rows can be paired round by round)."""
    flops = network_flops(results)
    rows = []
    for (impl, backend, model, settings), runs in results.items():
        speeds = [run["images_per_second"] for run in runs]
        processes = [run["process_seconds"] for run in runs]
        seconds = statistics.median(run["seconds_per_epoch"] for run in runs)
        train_flops, forward_flops = flops[model]
        work = train_flops * args.train_images + forward_flops * args.val_images
        gflops = work / seconds / 1e9
        rows.append(
            {
                "model": model,
                "implementation": impl,
                "backend": backend,
                "settings": " ".join(settings) or "default",
                "images_per_second": statistics.median(speeds),
                "spread": [min(speeds), max(speeds)],
                "images_per_second_rounds": speeds,
                "process_seconds": statistics.median(processes),
                "process_spread": [min(processes), max(processes)],
                "process_seconds_rounds": processes,
                "gflops": gflops,
                "percent_of_matmul": 100 * gflops / matmul,
                "peak_rss_mb": max(run["peak_rss_mb"] for run in runs),
                # each round's epochs, the warm-up first: any other statistic can be taken again
                "epoch_seconds": [run["epoch_seconds"] for run in runs],
                "val_accuracy": statistics.median(run["val_accuracy"] for run in runs),
                "compile": runs[0].get("compile"),
                "onednn": runs[0].get("onednn"),
                "precision": runs[0].get("precision", "float32"),
                "optimizer": runs[0].get("optimizer"),  # mnistlab rows: FusedAdam or Adam
                "train_step": runs[0].get("train_step"),  # mnistlab rows: lean, scan or keras (why)
            }
        )
    return rows


def row_of(rows, model, impl, backend) -> dict | None:
    for row in rows:
        if (row["model"], row["implementation"], row["backend"]) == (model, impl, backend):
            return row
    return None


def ratio(ours: dict, theirs: dict, key: str, faster_is_smaller: bool = False) -> dict:
    """mnistlab's figure over the peer's (seconds: the peer's over mnistlab's), as the ratio of
    the medians, and the [min, max] of the ratios round by round (the rounds are interleaved)."""
    pairs = list(zip(ours[f"{key}_rounds"], theirs[f"{key}_rounds"], strict=False))
    if faster_is_smaller:
        pairs = [(b, a) for a, b in pairs]
    each = [a / b for a, b in pairs]
    mine, peer = ours[key], theirs[key]
    value = peer / mine if faster_is_smaller else mine / peer
    return {"value": value, "rounds": [min(each), max(each)] if each else [value, value]}


def like_for_like(rows: list[dict]) -> list[dict]:
    """mnistlab against the plain Keras script and the plain PyTorch loop in the same
    precision, network by network.

    Returns:
        One dict per (network, precision) where mnistlab's and the Keras script's rows were
        timed: model, backend, precision ("float32" or "bfloat16"), the two rows' precisions,
        images/s and process seconds of each, ``x_keras_epoch`` and ``x_keras_process``
        (mnistlab's speed over the script's: {"value": ratio of the medians, "rounds": [min,
        max] round by round}), and mnistlab's percent_of_matmul; where the PyTorch loop ran in
        that precision (row pytorch for float32, pytorch-bf16 for bfloat16), its precision,
        images/s, process seconds and accuracy (``pytorch_*``) and ``x_pytorch_epoch`` and
        ``x_pytorch_process``.
    """
    pairs = []
    for ours_default in (row for row in rows if row["implementation"] == "mnistlab"):
        model, backend = ours_default["model"], ours_default["backend"]
        for label, ours_impl, plain_impl, torch_impl in PAIRS:
            ours = row_of(rows, model, ours_impl, backend)
            if label == "float32" and ours_default["precision"] == "float32":
                ours = ours_default  # where mnistlab's default is float32 (an AVX2 CPU)
            elif label == "bfloat16" and ours_default["precision"] == "float32":
                continue
            plain = row_of(rows, model, plain_impl, backend)
            if not ours or not plain:
                continue
            pair = {
                "model": model,
                "backend": backend,
                "precision": label,
                "mnistlab_precision": ours["precision"],
                "plain_precision": plain["precision"],
                "mnistlab_images_per_second": ours["images_per_second"],
                "mnistlab_spread": ours["spread"],
                "plain_images_per_second": plain["images_per_second"],
                "plain_spread": plain["spread"],
                "mnistlab_process_seconds": ours["process_seconds"],
                "plain_process_seconds": plain["process_seconds"],
                "x_keras_epoch": ratio(ours, plain, "images_per_second"),
                "x_keras_process": ratio(ours, plain, "process_seconds", faster_is_smaller=True),
                "percent_of_matmul": ours["percent_of_matmul"],
                "mnistlab_val_accuracy": ours["val_accuracy"],
                "plain_val_accuracy": plain["val_accuracy"],
                "onednn": [ours.get("onednn"), plain.get("onednn")],
            }
            torch_row = row_of(rows, model, torch_impl, "torch")
            if torch_row:
                pair.update(pytorch_figures(ours, torch_row))
            pairs.append(pair)
    return pairs


def pytorch_figures(ours: dict, torch_row: dict) -> dict:
    """A like-for-like pair's PyTorch figures: the loop's precision, images/s, process seconds
    and accuracy, and mnistlab's speed over it by the median epoch and by the whole process."""
    return {
        "pytorch_precision": torch_row["precision"],
        "pytorch_val_accuracy": torch_row["val_accuracy"],
        "pytorch_images_per_second": torch_row["images_per_second"],
        "pytorch_process_seconds": torch_row["process_seconds"],
        "x_pytorch_epoch": ratio(ours, torch_row, "images_per_second"),
        "x_pytorch_process": ratio(ours, torch_row, "process_seconds", faster_is_smaller=True),
    }


def _times(figure: dict | None) -> str:
    if not figure:
        return "-"
    low, high = figure["rounds"]
    text = f"{figure['value']:.2f}x"
    return f"**{text}**" if low > 1 else text  # bold: faster in every round


def _times_rounds(figure: dict | None) -> str:
    """A ratio with its rounds' range, "**2.10x** [1.95-2.30]"; "-" where not measured."""
    if not figure:
        return "-"
    return f"{_times(figure)} [{figure['rounds'][0]:.2f}-{figure['rounds'][1]:.2f}]"


def _number(pair: dict, key: str, form: str) -> str:
    return format(pair[key], form) if key in pair else "-"


def like_for_like_lines(pairs: list[dict]) -> list[str]:
    """The headline table: mnistlab against the plain Keras script and the plain PyTorch loop
    in the same precision ("-" in the PyTorch columns where the loop was not timed in it)."""
    lines = [
        "| network | backend | precision (mnistlab / plain Keras / plain PyTorch) | "
        "mnistlab images/s | plain Keras images/s | x plain Keras, median epoch [rounds] | "
        "plain PyTorch images/s | x plain PyTorch, median epoch [rounds] | mnistlab process s | "
        "plain Keras process s | x plain Keras, whole process [rounds] | plain PyTorch "
        "process s | x plain PyTorch, whole process [rounds] | % matmul | val acc (mnistlab / "
        "Keras / PyTorch) | oneDNN |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | --- | --- |",
    ]
    for pair in pairs:
        precisions = [pair["mnistlab_precision"], pair["plain_precision"]]
        accuracies = [pair["mnistlab_val_accuracy"], pair["plain_val_accuracy"]]
        precisions.append(pair.get("pytorch_precision", "-"))
        torch_accuracy = _number(pair, "pytorch_val_accuracy", ".3f")
        lines.append(
            f"| {pair['model']} | {pair['backend']} | {' / '.join(precisions)} | "
            f"{pair['mnistlab_images_per_second']:,.0f} | "
            f"{pair['plain_images_per_second']:,.0f} | {_times_rounds(pair['x_keras_epoch'])} | "
            f"{_number(pair, 'pytorch_images_per_second', ',.0f')} | "
            f"{_times_rounds(pair.get('x_pytorch_epoch'))} | "
            f"{pair['mnistlab_process_seconds']:.1f} | {pair['plain_process_seconds']:.1f} | "
            f"{_times_rounds(pair['x_keras_process'])} | "
            f"{_number(pair, 'pytorch_process_seconds', '.1f')} | "
            f"{_times_rounds(pair.get('x_pytorch_process'))} | "
            f"{pair['percent_of_matmul']:.0f}% | "
            f"{' / '.join(f'{value:.3f}' for value in accuracies)} / {torch_accuracy} | "
            f"{' / '.join(ONEDNN_MARK[value] for value in pair['onednn'])} |"
        )
    return lines


def plain_peer(rows, row, peer: str = "Keras") -> dict | None:
    """The plain row a mnistlab row compares with: the Keras script's on its backend or the
    PyTorch loop's (``peer``), in its precision (float32 where that one was not timed)."""
    float32, bfloat16, backend = PEERS[peer]
    backend = backend or row["backend"]
    impl = float32 if row.get("precision", "float32") == "float32" else bfloat16
    return row_of(rows, row["model"], impl, backend) or row_of(rows, row["model"], float32, backend)


def all_rows_lines(rows: list[dict]) -> list[str]:
    """Every row timed, mnistlab's against the plain Keras row and the plain PyTorch row in
    the same precision."""
    lines = [
        "| network | implementation | backend | images/s | [min-max] | x plain Keras, same "
        "precision | x plain PyTorch, same precision | process s | GFLOP/s | % matmul | peak RSS MB | val acc | "
        "oneDNN | precision |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- "
        "| --- |",
    ]
    for row in rows:
        speed = row["images_per_second"]
        ours = row["implementation"].startswith("mnistlab")
        keras_row = plain_peer(rows, row) if ours else None
        torch_row = plain_peer(rows, row, "PyTorch") if ours else None
        versus_keras = f"{speed / keras_row['images_per_second']:.2f}" if keras_row else "-"
        versus_torch = f"{speed / torch_row['images_per_second']:.2f}" if torch_row else "-"
        low, high = row["spread"]
        name = row["implementation"] if row["implementation"] != "mnistlab" else "**mnistlab**"
        lines.append(
            f"| {row['model']} | {name} | {row['backend']} | {speed:.0f} | {low:.0f}-{high:.0f} | "
            f"{versus_keras} | {versus_torch} | {row.get('process_seconds', 0):.1f} | "
            f"{row['gflops']:.1f} | {row['percent_of_matmul']:.0f}% | {row['peak_rss_mb']:.0f} | "
            f"{row['val_accuracy']:.3f} | {ONEDNN_MARK[row.get('onednn')]} | "
            f"{row['precision']} |"
        )
    return lines


def sweep_lines(rows: list[dict]) -> list[str]:
    lines = [
        "| network | backend | settings | images/s | [min-max] | GFLOP/s | % matmul |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        low, high = row["spread"]
        lines.append(
            f"| {row['model']} | {row['backend']} | {row['settings']} | "
            f"{row['images_per_second']:.0f} | {low:.0f}-{high:.0f} | {row['gflops']:.1f} | "
            f"{row['percent_of_matmul']:.0f}% |"
        )
    return lines


def markdown(rows, matmul: float, args, elapsed: float) -> str:
    import time

    from runinfo import git_commit

    from mnistlab.core.runs import machine_description

    lines = [
        "# Training speed",
        "",
        f"Machine: {machine_description()}. Date {time.strftime('%Y-%m-%d')}, commit "
        f"{git_commit()}. numpy float32 matrix multiply: "
        f"**{matmul:.1f} GFLOP/s** (best of the run). {args.rounds} rounds, interleaved, each "
        f"measurement a fresh process: one warm-up epoch, then {args.timed_epochs} timed "
        f"epoch(s) of {args.train_images} training + {args.val_images} validation images, "
        f"batch 200, Adam. A process's figure: the {args.epoch_statistic} of its timed "
        "epochs; process s: the whole process, start to exit, for the same epochs (importing "
        "the framework and loading MNIST included). Median over rounds; [min-max] over rounds. "
        f"Whole run: {elapsed / 60:.1f} min.",
        "",
        f"Command: `python benchmarks/speed.py {' '.join(args.argv)}`".replace(" `", "`"),
        "",
    ]
    if args.sweep:
        return "\n".join(lines + sweep_lines(rows)) + "\n"
    lines += [
        "## Like for like",
        "",
        "mnistlab against the plain Keras script (benchmarks/plain/keras_tutorial.py) on the same "
        "backend in the same precision: float32 against float32, and mnistlab's default "
        "(bfloat16 where this CPU computes it) against the script with "
        '`keras.mixed_precision.set_global_policy("mixed_bfloat16")`. On TensorFlow the '
        "script gets TensorFlow's oneDNN kernels set as mnistlab sets them. Beside it the plain "
        "PyTorch loop (benchmarks/plain/torch_loop.py) in the same precision: float32, and "
        'its forward pass and loss under `torch.autocast("cpu", dtype=torch.bfloat16)` with '
        "float32 weights. x: mnistlab's speed over the script's (ratio of the medians; [the lowest and highest ratio round "
        "by round]); bold where mnistlab was faster in every round.",
        "",
        *like_for_like_lines(like_for_like(rows)),
        "",
        "## Every row",
        "",
        *all_rows_lines(rows),
    ]
    return "\n".join(lines) + "\n"


def write_table(folder: str, name: str, lines: list[str]) -> str:
    """Writes a results page (lines of Markdown) to folder/name, prints it and returns it."""
    text = "\n".join(lines) + "\n"
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "w") as handle:
        handle.write(text)
    print(text)
    return text


def plot(rows: list[dict], title: str, path: str):
    """The table as a chart, saved to path (PNG): for each network and backend mnistlab timed,
    images/s of mnistlab and of the plain Keras script and the plain PyTorch loop in each
    precision (median over rounds, whiskers from the slowest to the fastest round), with
    mnistlab's ratios to the script and the loop in the same precision; beside it,
    mnistlab's share of numpy's matrix-multiply rate, and the 40% target.

    Returns:
        The matplotlib Figure.
    """
    from matplotlib.figure import Figure

    ours = [row for row in rows if row["implementation"] == "mnistlab"]  # one group each

    def beside(row, impl):  # the row of impl timed beside mnistlab's row (PyTorch: on torch)
        backend = "torch" if impl.startswith("pytorch") else row["backend"]
        return row_of(rows, row["model"], impl, backend)

    timed = [(impl, label) for impl, label in CHART_BARS if any(beside(r, impl) for r in ours)]
    figure = Figure(figsize=(10, 1.2 + 0.3 * len(timed) * len(ours)), layout="constrained")
    speeds, shares = figure.subplots(1, 2, width_ratios=(3, 1), sharey=True)
    height = 0.8 / len(timed)
    offset = {
        impl: (index - (len(timed) - 1) / 2) * height for index, (impl, _) in enumerate(timed)
    }
    for impl, label in timed:
        bars = [  # (y position, row)
            (position + offset[impl], found)
            for position, row in enumerate(ours)
            if (found := beside(row, impl))
        ]
        values = [row["images_per_second"] for _, row in bars]
        whiskers = [
            [value - row["spread"][0] for value, (_, row) in zip(values, bars, strict=True)],
            [row["spread"][1] - value for value, (_, row) in zip(values, bars, strict=True)],
        ]
        positions = [position for position, _ in bars]
        speeds.barh(positions, values, height, xerr=whiskers, capsize=2, label=label)
    for position, row in enumerate(ours):
        for impl in ("mnistlab-f32", "mnistlab"):
            mine = beside(row, impl)
            if not mine:
                continue
            peers = [(name, plain_peer(rows, mine, name)) for name in PEERS]
            ratios = [
                f"{mine['images_per_second'] / peer['images_per_second']:.2f}x {name}"
                for name, peer in peers
                if peer and (name == "Keras" or same_precision(mine, peer))
            ]
            speeds.annotate(
                ", ".join(ratios),
                (mine["spread"][1], position + offset[impl]),  # right of its fastest round
                xytext=(6, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
            )
    share = [row["percent_of_matmul"] for row in ours]
    shares.barh(range(len(ours)), share, 0.5, color="C0")
    for position, percent in enumerate(share):
        shares.annotate(f"{percent:.0f}%", (percent, position), xytext=(3, 0),
                        textcoords="offset points", va="center", fontsize=8)  # fmt: skip
    shares.axvline(MATMUL_TARGET, color="black", linestyle="--", linewidth=1)
    shares.set_xlim(0, max(60, *share) * 1.2)
    shares.set_xlabel(f"mnistlab (default), % of numpy's\nmatmul rate (dashed: {MATMUL_TARGET}%)")
    speeds.set_yticks(range(len(ours)), [f"{row['model']}\n{row['backend']}" for row in ours])
    speeds.invert_yaxis()
    speeds.set_xlabel("training images per second (median over rounds; whiskers: min to max)")
    speeds.margins(x=0.3)
    speeds.legend(loc="lower right", fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.savefig(path, dpi=110)
    return figure


def chart_title(report: dict) -> str:
    """The chart's title from a speed.json: the machine, numpy's rate and how it was timed."""
    timing = ", ".join(
        f"{value:,} {name}" if isinstance(value, int) else f"{value} {name}"
        for name, value in (
            ("rounds", report.get("rounds")),
            ("images an epoch", report.get("train_images")),
            ("epoch of each process", report.get("epoch_statistic")),
        )
        if value
    )
    matmul = max(report["matmul_gflops"])
    return f"{report['cpu']}; numpy matrix multiply {matmul:.0f} GFLOP/s" + (
        f"\n{timing}" if timing else ""
    )


def draw_chart(folder: str, report: dict) -> None:
    """Writes folder/speed.png from a report (speed.json's contents), if matplotlib is there."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[plot]'): no speed.png")
        return
    plot(report["rows"], chart_title(report), os.path.join(folder, "speed.png"))
    print(f"Chart: {os.path.join(folder, 'speed.png')}")
