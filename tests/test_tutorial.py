"""docs/tutorial.md runs, block by block, so the tutorial can never drift from the code.

What runs
    Every fenced ```bash and ```python block of docs/tutorial.md, in page order, in ONE fresh
    temporary working folder that starts with a copy of docs/figures (the images the tutorial
    classifies), so ``runs/cnn`` made by one block is there for the next. A block is skipped
    only when the line just before its fence is ``<!-- no-run: REASON -->`` (a server that runs
    until stopped, a GPU, an hour of training); the reason is required, and the test lists them.

    The blocks are run as the notebooks docs/notebooks/*.ipynb hold them (one notebook per
    chapter, built from this page by docs/notebooks/build.py), so one run tests both forms: the
    notebooks one after another, cell by cell, in the same folder, each notebook starting from
    an empty Python namespace (a notebook is its own session). A python cell runs as it is; a
    ``%%bash`` cell as the bash block it came from. The cells a notebook adds to the page's
    blocks (set-up, earlier chapters' runs, showing pictures) run too and must pass. The page's
    blocks are matched to the notebooks' cells in order; tests/test_notebooks.py checks that
    the notebooks are exactly what the page builds.

Quick mode (the only changes made to the text of a block; see ``quick()``)
    Every training runs 1 epoch on the first 2,000 training images, 1,000 of them held out for
    validation (so 1,000 to learn from), instead of the page's epochs, data and validation:
    1. Commands that train get these flags (QUICK_FLAGS), each set to this value, replacing the
       page's value or added when the page leaves it out:
         mnistlab train     --epochs 1 --train-size 2000 --val-size 1000
         mnistlab ensemble  --epochs 1 --train-size 2000 --val-size 500 --members 2
         mnistlab speedrun  --epochs 1 --train-size 2000 --seeds 1
       (ensemble members each hold out their own 500-image slice; the speedrun recipe
       validates on the test set, which it only watches).
    2. In Python code (python blocks, and Python fed to ``python -`` in a bash block), every
       keyword ``epochs=N`` becomes ``epochs=1, train_size=2000, val_size=1000``, and any other
       ``val_size=N`` keyword is dropped. So that no full training can slip through, every
       ``mnistlab.train(`` call in the page must say ``epochs=`` (checked).
    3. In a TOML file written by a bash block (a sweep), a line ``epochs = N`` becomes
       ``epochs = 1`` and a line ``train_size = N`` becomes ``train_size = 2000`` plus a line
       ``val_size = 1000``.
    The data are real MNIST from $MNISTLAB_DATA (tests skip without it), so shapes, parameter
    counts and the test set's 10,000 images (every run is still measured on all of them) are
    exactly what a learner sees.

How it runs (one process, to pay TensorFlow's start-up of about 8 s only once)
    A driver process (this file, run as a script) executes the blocks in order:
    - python blocks with ``exec`` in one shared namespace, as a learner's one Python session;
    - bash blocks whose every line is a plain ``mnistlab ARGS`` command (no pipes, redirects,
      variables or ``--backend`` switch) through ``mnistlab.commands.main.main(ARGS)``, the function the
      ``mnistlab`` console script calls, in the same process; exit status must be 0;
    - every other bash block with ``bash -euo pipefail -c BLOCK`` in a subprocess (the venv's
      bin first on PATH), e.g. a ``--backend jax`` run, which needs a fresh process.
    It stops at the first failing block; later blocks are reported as not reached.

Expected output
    A ```text block right after a runnable block is the output a learner should expect. When the
    line before it is ``<!-- expect -->``, every non-blank line of it must appear (stripped) as a
    line of that block's actual output: use this for what quick mode does not change (shapes,
    parameter counts, layer tables). Unmarked text blocks come from full runs (10 epochs, all
    the data) on the machine the page names, and are not compared.

Run the whole thing (about 1-2 minutes on 2 cores):
    MNISTLAB_DATA=../shared/data/mnist python -m pytest -q -m slow tests/test_tutorial.py
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TUTORIAL = os.path.join(REPO, "docs", "tutorial.md")
FIGURES = os.path.join(REPO, "docs", "figures")
FIGURE_SCRIPT = os.path.join(REPO, "docs", "make_figures.sh")
NOTEBOOKS = os.path.join(REPO, "docs", "notebooks")
NOTEBOOK_CELL = "notebook"  # metadata["mnistlab"] of a cell the notebook adds to the page's blocks
MAX_FIGURE_BYTES = 100_000  # committed PNGs stay small
QUICK_EPOCHS = 1  # epochs of every training in quick mode
QUICK_TRAIN_SIZE = 2000  # first N training images ...
QUICK_VAL_SIZE = 1000  # ... of which N held out for validation
QUICK_FLAGS = {  # mnistlab command -> flags set in quick mode (rule 1)
    "train": {"--epochs": 1, "--train-size": 2000, "--val-size": 1000},
    "ensemble": {"--epochs": 1, "--train-size": 2000, "--val-size": 500, "--members": 2},
    "speedrun": {"--epochs": 1, "--train-size": 2000, "--seeds": 1},
}
PYTHON_EPOCHS = re.compile(r"(?<![-\w])epochs=\d+")  # a Python keyword, not --epochs=N (rule 2)
PYTHON_QUICK = f"epochs={QUICK_EPOCHS}, train_size={QUICK_TRAIN_SIZE}, val_size={QUICK_VAL_SIZE}"
PYTHON_VAL_SIZE = re.compile(r"(?<![-\w])val_size=\d+,\s*|,\s*(?<![-\w])val_size=\d+")
TOML_SETTINGS = {  # a line "key = N" of a TOML heredoc -> its quick value (rule 3)
    re.compile(r"^(\s*)epochs\s*=\s*\d+\s*$", re.M): rf"\g<1>epochs = {QUICK_EPOCHS}",
    re.compile(r"^(\s*)train_size\s*=\s*\d+\s*$", re.M): (
        rf"\g<1>train_size = {QUICK_TRAIN_SIZE}\n\g<1>val_size = {QUICK_VAL_SIZE}"
    ),
}
# seconds for the whole page (a loaded machine; ~2 minutes when idle), scaled as conftest's
# timeouts are (not imported from it: this file also runs as the driver, without conftest)
DRIVER_TIMEOUT = 900 * float(os.environ.get("MNISTLAB_TEST_TIMEOUT_SCALE", "1"))
RUNNABLE = ("bash", "python")
NO_RUN = re.compile(r"<!--\s*no-run:\s*(.*?)\s*-->")
EXPECT = re.compile(r"<!--\s*expect\s*-->")
SHELL_SYNTAX = re.compile(r"[|&;<>$`*?(){}\[\]~]|^\s*\w+=")  # anything that needs a real shell


@dataclass
class Block:
    """One fenced block of the page."""

    line: int  # 1-based line of the opening fence
    language: str  # the fence's first word: bash, python, text, toml, ...
    code: str
    no_run: str | None = None  # the reason, when marked not to run
    expect: bool = False  # a text block whose lines must appear in the previous block's output

    @property
    def runnable(self) -> bool:
        return self.language in RUNNABLE and self.no_run is None

    @property
    def name(self) -> str:
        return f"tutorial.md:{self.line}-{self.language}"


def parse(text: str) -> list[Block]:
    """The fenced blocks of a Markdown page, with the marker comment before each, if any.

    Example:
        >>> [b.language for b in parse("```bash\\nls\\n```\\n<!-- expect -->\\n```text\\nx\\n```")]
        ['bash', 'text']
    """
    blocks, lines = [], text.splitlines()
    index = 0
    while index < len(lines):
        stripped = lines[index].strip()
        if stripped.startswith("```"):
            fence = stripped[: len(stripped) - len(stripped.lstrip("`"))]
            info = stripped[len(fence) :].strip()
            start = index
            body = []
            index += 1
            while index < len(lines) and lines[index].strip() != fence:
                body.append(lines[index])
                index += 1
            before = lines[start - 1].strip() if start > 0 else ""
            no_run = NO_RUN.fullmatch(before)
            blocks.append(
                Block(
                    line=start + 1,
                    language=(info.split() or [""])[0],
                    code="\n".join(body) + "\n",
                    no_run=no_run.group(1) if no_run else None,
                    expect=bool(EXPECT.fullmatch(before)),
                )
            )
        index += 1
    return blocks


def logical_lines(code: str) -> list[str]:
    """Shell lines with backslash continuations joined, comments and blank lines dropped."""
    joined = code.replace("\\\n", " ")
    return [
        line.strip()
        for line in joined.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def quick_command(line: str) -> str:
    """Quick mode for one shell line (module docstring, rule 1).

    Example:
        >>> quick_command("mnistlab train cnn --epochs 10 --out runs/cnn")
        'mnistlab train cnn --epochs 1 --out runs/cnn --train-size 2000 --val-size 1000'
    """
    words = line.split()
    if len(words) < 2 or words[0] != "mnistlab" or words[1] not in QUICK_FLAGS:
        return line
    for flag, value in QUICK_FLAGS[words[1]].items():
        pattern = rf"{flag}([ =])\S+"
        if re.search(pattern, line):
            line = re.sub(pattern, rf"{flag}\g<1>{value}", line)
        else:
            line += f" {flag} {value}"
    return line


def quick(block: Block) -> str:
    """The code of a runnable block as quick mode runs it (rules 1, 2 and 3)."""
    code = block.code
    if PYTHON_EPOCHS.search(code):
        code = PYTHON_EPOCHS.sub(PYTHON_QUICK, PYTHON_VAL_SIZE.sub("", code))
    if block.language == "python":
        return code
    for pattern, replacement in TOML_SETTINGS.items():
        code = pattern.sub(replacement, code)
    out, pending = [], ""
    for raw in code.splitlines():  # keep comments and layout; rewrite whole commands
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line, pending = pending + raw, ""
        out.append(quick_command(line.strip()) if line.strip().startswith("mnistlab ") else line)
    return "\n".join(out) + "\n"


def in_process_argv(code: str) -> list[list[str]] | None:
    """The argument lists of a block of plain ``mnistlab ARGS`` lines, else None (use bash)."""
    commands = []
    for line in logical_lines(code):
        words = line.split()
        if words[0] != "mnistlab" or SHELL_SYNTAX.search(line) or "--backend" in words:
            return None
        commands.append(shlex.split(line)[1:])
    return commands or None


# --- the driver: runs in its own process, in the working folder -----------------------------


def drive(blocks_file: str, results_file: str) -> None:
    """Runs the blocks of ``blocks_file`` in order; writes one result per block as it goes."""
    with open(blocks_file) as handle:
        blocks = json.load(handle)
    namespace = {}
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    results = []
    for block in blocks:
        if block.get("reset") or not namespace:  # a new notebook: a new Python session
            namespace = {"__name__": "__main__"}
        started = time.perf_counter()
        output = io.StringIO()
        ok, how = True, "python"
        try:
            if block["language"] == "python":
                code = compile(block["code"], block["name"], "exec")
                with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
                    exec(code, namespace)
            elif (commands := in_process_argv(block["code"])) is not None:
                from mnistlab.commands.main import main

                how = "in-process"
                for argv in commands:
                    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
                        status = main(argv)
                    if status:
                        raise RuntimeError(f"mnistlab {' '.join(argv)} exited with {status}")
            else:
                how = "bash"
                done = subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", block["code"]],
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=DRIVER_TIMEOUT,
                )
                output.write(done.stdout + done.stderr)
                if done.returncode:
                    raise RuntimeError(f"bash exited with {done.returncode}")
        except BaseException as error:  # noqa: BLE001 (report anything a block raises)
            ok = False
            output.write("\n" + "".join(traceback.format_exception(error)))
        results.append(
            {
                "name": block["name"],
                "ok": ok,
                "how": how,
                "seconds": round(time.perf_counter() - started, 2),
                "output": output.getvalue(),
            }
        )
        with open(results_file, "w") as handle:
            json.dump(results, handle)
        if not ok:
            break


# --- the tests ------------------------------------------------------------------------------


def page_blocks() -> list[Block]:
    with open(TUTORIAL, encoding="utf-8") as handle:
        return parse(handle.read())


BLOCKS = page_blocks() if os.path.exists(TUTORIAL) else []
RUN_BLOCKS = [block for block in BLOCKS if block.runnable]


def notebook_cells(blocks: list[Block]) -> list[dict]:
    """The code cells of docs/notebooks/*.ipynb in order, as the driver runs them in quick mode.

    A cell from the page is named as its block (``tutorial.md:73-bash``), a cell the notebook
    adds as ``NN-title.ipynb:INDEX-notebook``. Fails when the notebooks do not hold ``blocks``.
    """
    cells, pending = [], list(blocks)
    for name in sorted(n for n in os.listdir(NOTEBOOKS) if n.endswith(".ipynb")):
        with open(os.path.join(NOTEBOOKS, name), encoding="utf-8") as handle:
            notebook = json.load(handle)
        first = True
        for index, cell in enumerate(notebook["cells"]):
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"])
            language = "bash" if source.startswith("%%bash\n") else "python"
            code = source.removeprefix("%%bash\n") + "\n"
            if cell.get("metadata", {}).get("mnistlab") == NOTEBOOK_CELL:
                block = Block(0, language, code)
                cell_name = f"{name}:{index}-{NOTEBOOK_CELL}"
            else:
                block = pending.pop(0) if pending else None
                if block is None or (block.language, block.code) != (language, code):
                    pytest.fail(
                        f"{name} cell {index} is not {block.name if block else 'on the page'}: "
                        "the notebooks are out of date; run python docs/notebooks/build.py"
                    )
                cell_name = block.name
            cells.append({**asdict(block), "name": cell_name, "code": quick(block), "reset": first})
            first = False
    if pending:
        pytest.fail(f"{pending[0].name} is in no notebook; run python docs/notebooks/build.py")
    return cells


def short(name: str) -> str:
    """``tutorial.md:73-bash`` -> ``73-bash``; ``01-mnist-the-data.ipynb:1-notebook`` -> ``01:1-notebook``."""
    where, cell = name.split(":", 1)
    return cell if where == "tutorial.md" else f"{where[:2]}:{cell}"


@pytest.fixture(scope="module")
def tutorial_run(tmp_path_factory):
    """Runs every runnable block once in quick mode; returns {block name: result}."""
    if not os.environ.get("MNISTLAB_DATA"):
        pytest.skip("set MNISTLAB_DATA to the MNIST folder to run the tutorial")
    folder = tmp_path_factory.mktemp("tutorial")
    shutil.copytree(FIGURES, folder / "docs" / "figures")
    blocks_file, results_file = folder / ".blocks.json", folder / ".results.json"
    blocks_file.write_text(json.dumps(notebook_cells(RUN_BLOCKS)))
    env = {**os.environ, "PYTHONPATH": os.path.join(REPO, "src") + os.pathsep + REPO}
    env.setdefault("KERAS_BACKEND", "tensorflow")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.pop("DISPLAY", None)  # pictures are saved, never shown
    subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--drive", str(blocks_file), str(results_file)],
        cwd=folder,
        env=env,
        timeout=DRIVER_TIMEOUT,
        check=False,
    )
    results = json.loads(results_file.read_text()) if results_file.exists() else []
    timing = ", ".join(f"{short(r['name'])} {r['seconds']:.0f}s" for r in results)
    print(f"\ntutorial blocks: {timing}")
    return {result["name"]: result for result in results}


@pytest.mark.slow  # the whole tutorial on real MNIST: 1-2 minutes idle
@pytest.mark.parametrize("block", RUN_BLOCKS, ids=lambda block: block.name)
def test_block_runs_and_prints_what_the_page_shows(block, tutorial_run):
    result = tutorial_run.get(block.name)
    if result is None:
        failed = [r["name"] for r in tutorial_run.values() if not r["ok"]]
        pytest.fail(f"not reached: an earlier block failed ({', '.join(failed) or 'driver'})")
    assert result["ok"], f"{block.name} failed ({result['how']}):\n{result['output'][-4000:]}"
    following = BLOCKS[BLOCKS.index(block) + 1 :][:1]
    if following and following[0].expect:
        actual = {line.strip() for line in result["output"].splitlines()}
        missing = [
            line.strip()
            for line in following[0].code.splitlines()
            if line.strip() and line.strip() not in actual
        ]
        assert not missing, (
            f"{block.name}: the page's expected output (line {following[0].line}) has lines the "
            f"run did not print: {missing}\n--- actual output ---\n{result['output'][-4000:]}"
        )


@pytest.mark.slow  # needs the whole tutorial's run on real MNIST (tutorial_run), as above
def test_the_cells_notebooks_add_to_the_page_run(tutorial_run):
    added = [r for r in tutorial_run.values() if r["name"].endswith(NOTEBOOK_CELL)]
    assert added, "no set-up cells ran: docs/notebooks/ is empty or was not reached"
    for result in added:
        assert result["ok"], f"{result['name']} failed:\n{result['output'][-4000:]}"


def test_the_page_has_runnable_blocks_and_every_no_run_says_why():
    assert len(RUN_BLOCKS) >= 10
    for block in BLOCKS:
        if block.no_run is not None:
            assert len(block.no_run) >= 10, f"{block.name}: say why it does not run"
        if block.expect:
            assert block.language == "text", f"{block.name}: <!-- expect --> marks text blocks"
            previous = BLOCKS[BLOCKS.index(block) - 1]
            assert previous.runnable, f"{block.name}: expected output of a block that never runs"


def test_every_python_training_call_names_its_epochs():
    """Quick mode rewrites epochs=N; a train call without it would run a full training."""
    for block in RUN_BLOCKS:
        for call in re.findall(r"mnistlab\.train\((.*?)\)", block.code, flags=re.S):
            assert PYTHON_EPOCHS.search(call), f"{block.name}: mnistlab.train(...) without epochs="


@pytest.mark.parametrize(
    "line, expected",
    [
        (
            "mnistlab train mlp --val-size 0 --out runs/mlp",
            "mnistlab train mlp --val-size 1000 --out runs/mlp --epochs 1 --train-size 2000",
        ),
        (
            "mnistlab train cnn --epochs=30 --train-size 100",
            "mnistlab train cnn --epochs=1 --train-size 2000 --val-size 1000",
        ),
        (
            "mnistlab ensemble cnn --members 5 --epochs 10",
            "mnistlab ensemble cnn --members 2 --epochs 1 --train-size 2000 --val-size 500",
        ),
        ("mnistlab speedrun", "mnistlab speedrun --epochs 1 --train-size 2000 --seeds 1"),
        ("mnistlab evaluate runs/cnn", "mnistlab evaluate runs/cnn"),
        ("ls runs/cnn", "ls runs/cnn"),
    ],
)
def test_quick_mode_rewrites_only_what_the_docstring_says(line, expected):
    assert quick_command(line) == expected


@pytest.mark.parametrize(
    "code, expected",
    [
        (
            "run = mnistlab.train('cnn', epochs=10, out='runs/cnn')\n",
            "run = mnistlab.train('cnn', epochs=1, train_size=2000, val_size=1000, out='runs/cnn')\n",
        ),
        (
            "mnistlab.train('cnn', epochs=10, val_size=0, out='r')\n",
            "mnistlab.train('cnn', epochs=1, train_size=2000, val_size=1000, out='r')\n",
        ),
        (
            "mnistlab.train('cnn', val_size=0,\n    epochs=10)\n",
            "mnistlab.train('cnn',\n    epochs=1, train_size=2000, val_size=1000)\n",
        ),
        ("x = dict(val_size=0)\n", "x = dict(val_size=0)\n"),  # no training: untouched
    ],
)
def test_quick_mode_for_python(code, expected):
    assert quick(Block(1, "python", code)) == expected


def test_quick_mode_for_continued_lines_heredocs_and_toml():
    shell = Block(1, "bash", "# train\nmnistlab train cnn \\\n  --out runs/cnn\n")
    assert quick(shell) == (
        "# train\nmnistlab train cnn    --out runs/cnn --epochs 1 --train-size 2000 --val-size 1000\n"
    )
    heredoc = Block(1, "bash", "python - <<'EOF'\nmnistlab.train('mlp', epochs=3)\nEOF\n")
    assert "epochs=1, train_size=2000, val_size=1000" in quick(heredoc)
    toml = Block(1, "bash", "cat > s.toml <<'EOF'\n[fixed]\nepochs = 3\ntrain_size = 20000\nEOF\n")
    assert "\nepochs = 1\ntrain_size = 2000\nval_size = 1000\n" in quick(toml)


def test_plain_commands_run_in_process_and_shell_syntax_goes_to_bash():
    assert in_process_argv("# a comment\nmnistlab models\nmnistlab evaluate 'runs/my cnn'\n") == [
        ["models"],
        ["evaluate", "runs/my cnn"],
    ]
    for code in (
        "mnistlab models | head",
        "ls runs",
        "mnistlab train mlp --backend jax",
        "KERAS_BACKEND=jax mnistlab train mlp",
        "mnistlab predict $IMAGE",
    ):
        assert in_process_argv(code) is None, code


def test_figures_are_small_used_by_the_page_and_each_has_its_command():
    with open(TUTORIAL, encoding="utf-8") as handle:
        page = handle.read()
    with open(FIGURE_SCRIPT, encoding="utf-8") as handle:
        script = handle.read()
    linked = set(re.findall(r"\]\(figures/([\w.-]+\.png)\)", page))
    on_disk = {name for name in os.listdir(FIGURES) if name.endswith(".png")}
    assert linked, "the page shows no figures"
    assert linked <= on_disk, f"linked but missing: {sorted(linked - on_disk)}"
    for name in sorted(on_disk):
        size = os.path.getsize(os.path.join(FIGURES, name))
        assert size < MAX_FIGURE_BYTES, f"{name} is {size:,} bytes; keep figures under 100 KB"
        assert name in script, f"{name}: docs/make_figures.sh must show the command that made it"


if __name__ == "__main__" and sys.argv[1:2] == ["--drive"]:
    drive(sys.argv[2], sys.argv[3])
