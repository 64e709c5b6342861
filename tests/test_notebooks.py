"""docs/notebooks/*.ipynb are exactly what docs/tutorial.md builds, so nothing is kept twice.

The notebooks are made from the page by docs/notebooks/build.py (jupytext's Markdown reader);
an edit to either side without a rebuild fails here, with the command that rebuilds them. The
notebooks' cells are executed by tests/test_tutorial.py, which runs the tutorial from them; the
last test here runs one notebook in a real Jupyter kernel, as a reader's Jupyter would.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys

import pytest

from tests.conftest import SUBPROCESS_TIMEOUT

jupytext = pytest.importorskip("jupytext", reason="pip install -e '.[dev]' for the notebooks")
nbformat = pytest.importorskip("nbformat")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = os.path.join(REPO, "docs", "notebooks")
TUTORIAL = os.path.join(REPO, "docs", "tutorial.md")


def load_build():
    spec = importlib.util.spec_from_file_location("build", os.path.join(NOTEBOOKS, "build.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = load_build()


def page() -> str:
    with open(TUTORIAL, encoding="utf-8") as handle:
        return handle.read()


def test_the_committed_notebooks_are_what_the_tutorial_builds():
    stale = build.differences(NOTEBOOKS, page())
    assert not stale, (
        f"docs/notebooks/ has drifted from docs/tutorial.md ({', '.join(stale)}): edit the "
        f"tutorial, then run {build.BUILD_COMMAND}"
    )


def test_a_notebook_is_committed_without_outputs():
    for name in sorted(n for n in os.listdir(NOTEBOOKS) if n.endswith(".ipynb")):
        with open(os.path.join(NOTEBOOKS, name), encoding="utf-8") as handle:
            notebook = json.load(handle)
        for cell in notebook["cells"]:
            if cell["cell_type"] == "code":
                assert not cell["outputs"] and cell["execution_count"] is None, name


@pytest.fixture
def copied(tmp_path):
    """A copy of the notebooks and their page, to change one side of."""
    shutil.copytree(
        NOTEBOOKS, tmp_path / "notebooks", ignore=shutil.ignore_patterns("*.py", "__pycache__")
    )
    (tmp_path / "tutorial.md").write_text(page(), encoding="utf-8")
    return tmp_path


def test_a_change_to_the_tutorial_alone_fails_the_check(copied):
    text = page().replace('print("first labels:", y_train[:10])', "print(y_train[:10])", 1)
    assert text != page()
    assert build.differences(str(copied / "notebooks"), text) == ["01-mnist-the-data.ipynb"]
    prose = page().replace('MNIST ("Modified NIST")', "MNIST", 1)
    assert build.differences(str(copied / "notebooks"), prose) == ["01-mnist-the-data.ipynb"]
    assert build.differences(str(copied / "notebooks"), page()) == []  # the untouched page passes


def test_the_check_command_says_how_to_rebuild(copied, monkeypatch, capsys):
    assert build.main(["--check"]) == 0
    monkeypatch.setattr(build, "HERE", str(copied / "notebooks"))
    (copied / "notebooks" / "05-a-larger-cnn.ipynb").unlink()
    assert build.main(["--check"]) == 1
    assert "05-a-larger-cnn.ipynb" in capsys.readouterr().out
    assert build.BUILD_COMMAND == "python docs/notebooks/build.py"


def test_a_change_to_a_notebook_alone_fails_the_check(copied):
    path = copied / "notebooks" / "01-mnist-the-data.ipynb"
    notebook = nbformat.read(path, as_version=4)
    notebook.cells[-1].source += "\nedited in Jupyter"
    nbformat.write(notebook, path)
    assert build.differences(str(copied / "notebooks"), page()) == ["01-mnist-the-data.ipynb"]


def test_a_new_chapter_without_its_notebook_fails_the_check(copied):
    text = page() + "\n## 11. A new chapter\n\n```python\nprint(1)\n```\n"
    assert build.differences(str(copied / "notebooks"), text) == ["11-a-new-chapter.ipynb"]


def test_each_chapter_is_a_notebook_that_opens_on_its_own():
    notebooks = build.build(page())
    assert len(notebooks) == 10
    for name, notebook in notebooks.items():
        setup = notebook.cells[1].source
        assert "import mnistlab" in setup and "mnistlab.load_mnist()" in setup, name
        sources = "\n".join(cell.source for cell in notebook.cells)
        assert "Exercises" in sources and "<details>" in sources, f"{name}: exercises, hints"
        assert "](figures/" not in sources, f"{name}: links must be relative to docs/notebooks"
    chapter8 = notebooks["08-looking-inside-the-network.ipynb"].cells[2].source
    assert "if [ ! -d runs/cnn ]" in chapter8 and "if [ ! -d runs/larger_cnn ]" in chapter8


def test_a_notebook_runs_in_a_real_kernel_and_shows_its_pictures(tmp_path, monkeypatch):
    """Chapter 1 (no training) in ipykernel, as Jupyter runs it: set-up cell, %%bash, plots."""
    if not os.environ.get("MNISTLAB_DATA"):
        pytest.skip("set MNISTLAB_DATA to the MNIST folder to run a notebook")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    source = os.path.join(REPO, "src")  # the kernel and its %%bash see this checkout's mnistlab
    monkeypatch.setenv("PYTHONPATH", source + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    shutil.copytree(os.path.join(REPO, "docs", "figures"), tmp_path / "docs" / "figures")
    (tmp_path / "docs" / "notebooks").mkdir()
    notebook = nbformat.read(os.path.join(NOTEBOOKS, "01-mnist-the-data.ipynb"), as_version=4)
    folder = str(tmp_path / "docs" / "notebooks")  # where Jupyter starts a notebook's kernel
    client = nbclient.NotebookClient(
        notebook,
        timeout=SUBPROCESS_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": folder}},
    )
    client.execute()
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    assert any("image/png" in output.get("data", {}) for output in outputs), "no inline picture"
    assert (tmp_path / "samples.png").exists(), "the set-up cell did not move to the root"


def test_the_readme_links_every_notebook():
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as handle:
        readme = handle.read()
    for name in build.build(page()):
        assert f"](docs/notebooks/{name})" in readme, f"README.md does not link {name}"
    assert "jupyter lab docs/notebooks" in readme
