"""Builds the tutorial's notebooks from docs/tutorial.md, the one source of both forms.

Each ``## N. Title`` chapter of the page becomes ``docs/notebooks/NN-title.ipynb``, converted by
jupytext's Markdown reader: ```python blocks become code cells, ```bash blocks ``%%bash`` cells,
and everything else (prose, ```text outputs, blocks marked ``<!-- no-run: REASON -->``) stays
Markdown, so a notebook runs top to bottom. Around the page's own blocks come a few cells that
only a notebook needs, tagged ``"mnistlab": "notebook"`` in their metadata: the set-up cell
(go to the repository's root, install mnistlab when it is missing, find or download MNIST),
a cell that trains the run folders an earlier chapter made (so a chapter opens on its own), and
a cell that shows each picture a block has just drawn. Outputs are never committed.

    python docs/notebooks/build.py          # rewrite the notebooks after editing tutorial.md
    python docs/notebooks/build.py --check  # exit 1 when the notebooks differ from the page

tests/test_notebooks.py runs the check; tests/test_tutorial.py executes the notebooks' cells.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

import jupytext
import nbformat

HERE = os.path.dirname(os.path.abspath(__file__))
TUTORIAL = os.path.join(os.path.dirname(HERE), "tutorial.md")
BUILD_COMMAND = "python docs/notebooks/build.py"
REPOSITORY_URL = None  # the public git address, once there is one: the set-up cell clones it
GENERATED = "notebook"  # metadata["mnistlab"] of the cells a notebook adds to the page's blocks
CHAPTER = re.compile(r"^## (\d+)\. (.+)$", re.M)
FENCE = re.compile(r"^```")
NO_RUN = re.compile(r"^<!--\s*no-run:\s*(.*?)\s*-->$")
LINK = re.compile(r"\]\(([^)\s]+)\)")  # a Markdown link's or image's target
PICTURE = re.compile(r"--out\s+([\w.-]+\.png)\b|[\"']([\w-]+\.png)[\"']")  # drawn in the run folder
TRAIN_LINE = re.compile(r"^mnistlab train \S+ .*--out (runs/[\w.-]+)\s*$", re.M)
RUN_FOLDER = re.compile(r"\bruns/[\w.-]+")

SETUP = """\
# Set-up: run this cell first. It moves to the repository's root (the tutorial's commands
# write runs/ there and read docs/figures/), installs mnistlab from this clone when it is
# missing, and loads MNIST: $MNISTLAB_DATA, the caches, else a verified download (11 MB).
import os
import subprocess
import sys

{clone}while not os.path.isdir(os.path.join("docs", "figures")):
    if os.path.dirname(os.getcwd()) == os.getcwd():
        raise RuntimeError("Open this notebook from a clone of mnistlab: it is in docs/notebooks/.")
    os.chdir("..")
try:
    import mnistlab
except ImportError:  # mnistlab is not on PyPI yet: install the clone this notebook is in
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "-e", ".[plot]"])
    import mnistlab

# The names the tutorial's earlier chapters define and later ones use (its Python is one session)
import keras
import numpy as np
from mnistlab.models.registry import to_input

(x_train, y_train), (x_test, y_test) = mnistlab.load_mnist()
print("mnistlab", mnistlab.__version__, "in", os.getcwd())
"""
CLONE = """\
if not os.path.isdir("docs") and not os.path.isdir("mnistlab"):  # Colab: a bare machine
    subprocess.check_call(["git", "clone", "-q", "{url}", "mnistlab"])
if os.path.isdir("mnistlab"):
    os.chdir("mnistlab")
"""


def slug(title: str) -> str:
    """GitHub's anchor for a heading: ``slug("1. MNIST: the data") == "1-mnist-the-data"``."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def chapters(text: str) -> list[tuple[int, str, str]]:
    """(number, title, Markdown body) of each ``## N.`` chapter; the last runs to the end."""
    starts = list(CHAPTER.finditer(text))
    found = []
    for index, match in enumerate(starts):
        end = starts[index + 1].start() if index + 1 < len(starts) else len(text)
        body = text[match.end() : end].strip()
        body = re.sub(r"\n---$", "", body).strip()  # the page's rule between chapters
        found.append((int(match.group(1)), match.group(2).strip(), body))
    return found


def filename(number: int, title: str) -> str:
    return f"{number:02d}-{slug(title)}.ipynb"


def relink(markdown: str, anchors: dict[str, str]) -> str:
    """Links of docs/tutorial.md as seen from docs/notebooks/ (other chapters: their notebook)."""

    def target(match: re.Match) -> str:
        link = match.group(1)
        if link.startswith("#"):
            link = anchors.get(link[1:], link)
        elif not re.match(r"\w+:|/", link):  # relative to docs/
            link = "../" + link
        return f"]({link})"

    return LINK.sub(target, markdown)


def jupytext_markdown(body: str, anchors: dict[str, str]) -> str:
    """The chapter as jupytext's Markdown: headings one level up, and only runnable fences
    left as code (every other fenced block wrapped in a Markdown region)."""
    out, lines, index = [], body.splitlines(), 0
    while index < len(lines):
        line = lines[index]
        if not FENCE.match(line):
            if line.startswith("##"):
                line = line[1:]  # "### Exercises" -> "## Exercises" under the "# N." title
            out.append(relink(line, anchors))
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end] != "```":
            end += 1
        fence = lines[index : end + 1]
        language = line[3:].strip()
        no_run = NO_RUN.match(lines[index - 1]) if index else None
        if language in ("python", "bash") and not no_run:
            out.extend(fence)
        else:
            if no_run:  # keep the block to read, say why it is not a cell
                out[-1] = f"*Not run in the notebook: {no_run.group(1)}.*"
            out.extend(["<!-- #region -->", *fence, "<!-- #endregion -->"])
        index = end + 1
    header = "---\njupyter:\n  kernelspec:\n    display_name: Python 3\n"
    header += "    language: python\n    name: python3\n---\n\n"
    return header + "\n".join(out) + "\n"


def cell(source: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(source.rstrip("\n"), metadata={"mnistlab": GENERATED})


def prerequisites(number: int, body: str, earlier: dict[str, tuple[int, str]]) -> list:
    """A cell training the run folders this chapter uses and an earlier chapter trained."""
    made_here = set(re.findall(r"--out (runs/[\w.-]+)", body))
    needed = sorted(
        {run for run in RUN_FOLDER.findall(body) if run in earlier and run not in made_here}
    )
    if not needed:
        return []
    lines = ["%%bash", "# Run folders an earlier chapter trained; when you opened this"]
    lines.append("# chapter on its own, this trains them first (else it does nothing).")
    for run in needed:
        chapter, command = earlier[run]
        lines += [f"if [ ! -d {run} ]; then  # chapter {chapter}", f"  {command}", "fi"]
    return [cell("\n".join(lines))]


def pictures(source: str) -> list:
    """A cell showing the pictures a code cell drew, so they appear in the notebook."""
    names = [a or b for a, b in PICTURE.findall(source)]
    if not names:
        return []
    shown = "\n".join(f'display(Image("{name}"))' for name in dict.fromkeys(names))
    return [cell(f"from IPython.display import Image, display\n\n{shown}")]


def build(text: str) -> dict[str, nbformat.NotebookNode]:
    """{file name: notebook} for every chapter of the page's Markdown ``text``."""
    found = chapters(text)
    anchors = {slug(f"{n}. {t}"): filename(n, t) for n, t, _ in found}
    clone = CLONE.format(url=REPOSITORY_URL) if REPOSITORY_URL else ""
    notebooks, earlier = {}, {}
    for number, title, body in found:
        name = filename(number, title)
        read = jupytext.reads(jupytext_markdown(body, anchors), fmt="md")
        intro = (
            f"# {number}. {title}\n\nChapter {number} of the [mnistlab tutorial](../tutorial.md),"
            f" made from it by `{BUILD_COMMAND}`: edit the tutorial, not this notebook."
        )
        cells = [nbformat.v4.new_markdown_cell(intro, metadata={"mnistlab": GENERATED})]
        cells += [cell(SETUP.format(clone=clone))]
        cells += prerequisites(number, body, earlier)
        for page_cell in read.cells:
            page_cell.metadata = {}
            if page_cell.cell_type == cells[-1].cell_type == "markdown" and not cells[-1].metadata:
                cells[-1].source += "\n\n" + page_cell.source  # one cell between code cells
                continue
            cells.append(page_cell)
            if page_cell.cell_type == "code":
                cells += pictures(page_cell.source)
        notebook = nbformat.v4.new_notebook(cells=cells, metadata=dict(read.metadata))
        notebook.metadata.pop("jupytext", None)
        notebook.metadata["language_info"] = {"name": "python"}
        for index, each in enumerate(notebook.cells):  # stable ids: no diff on a rebuild
            each.id = f"c{index:03d}"
        notebooks[name] = notebook
        for match in TRAIN_LINE.finditer(body):  # what a later chapter may need again
            earlier.setdefault(match.group(1), (number, match.group(0).strip()))
    return notebooks


def write(notebook: nbformat.NotebookNode) -> str:
    return nbformat.writes(notebook) + "\n"


def differences(folder: str, text: str) -> list[str]:
    """File names in ``folder`` that differ from what ``text`` builds, or are missing or extra."""
    built = build(text)
    on_disk = {name for name in os.listdir(folder) if name.endswith(".ipynb")}
    stale = sorted(on_disk - set(built))
    for name, notebook in built.items():
        path = os.path.join(folder, name)
        if not os.path.exists(path):
            stale.append(name)
            continue
        with open(path, encoding="utf-8") as handle:
            committed = nbformat.read(handle, as_version=4)
        if [(c.cell_type, c.source) for c in committed.cells] != [
            (c.cell_type, c.source) for c in notebook.cells
        ]:
            stale.append(name)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report notebooks that differ")
    args = parser.parse_args(argv)
    with open(TUTORIAL, encoding="utf-8") as handle:
        text = handle.read()
    if args.check:
        stale = differences(HERE, text)
        if stale:
            print(f"Out of date with docs/tutorial.md: {', '.join(stale)}. Run: {BUILD_COMMAND}")
        return 1 if stale else 0
    built = build(text)
    for name in os.listdir(HERE):
        if name.endswith(".ipynb") and name not in built:
            os.remove(os.path.join(HERE, name))
    for name, notebook in built.items():
        with open(os.path.join(HERE, name), "w", encoding="utf-8") as handle:
            handle.write(write(notebook))
    print(f"wrote {len(built)} notebooks to docs/notebooks/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
