"""Every notebook in notebooks/ runs top to bottom on synthetic data, so none of them rots.

Each runs in a fresh kernel of this interpreter (the venv's), with notebooks/ as its working
directory and its data and cache pointed at the session's shared dirs, so synthetic data is
built once for all tests. A cell that raises fails the test, naming the cell.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import install as install_kernelspec
from nbclient import NotebookClient

from vla_lab.utils.config import PROJECT_ROOT

NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
KERNEL_NAME = "python3"


@pytest.fixture(scope="session")
def jupyter_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kernelspec `python3` running this interpreter, ahead of any user or system one."""
    prefix = tmp_path_factory.mktemp("jupyter")
    path = prefix / "share" / "jupyter"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(path))  # else install warns that it cannot be found
        install_kernelspec(kernel_name=KERNEL_NAME, prefix=str(prefix))
    return path


@pytest.fixture()
def notebook_env(monkeypatch, jupyter_path: Path, shared_dirs: dict[str, Path]) -> None:
    """The kernel inherits this process's environment: the kernelspec and the data dirs."""
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter_path))
    monkeypatch.setenv("VLA_LAB_DATA_DIR", str(shared_dirs["data_dir"]))
    monkeypatch.setenv("VLA_LAB_CACHE_DIR", str(shared_dirs["cache_dir"]))


def execute(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Run every cell in a fresh kernel; nbclient raises CellExecutionError at the first error."""
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name=KERNEL_NAME,
        resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},
    )
    return client.execute()


def test_the_notebooks_are_found() -> None:
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOKS_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path: Path, notebook_env: None) -> None:
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    execute(notebook)
    print(f"{path.name}: executed in {time.perf_counter() - start:.1f} s")
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code_cells and all(cell.execution_count for cell in code_cells)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    """Outputs (figures above all) would bloat git and go stale: clear them before committing."""
    notebook = nbformat.read(path, as_version=4)
    dirty = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, (
        f"{path.name}: code cells {dirty} hold outputs or execution counts; clear them before "
        "committing (Jupyter: Edit > Clear Outputs of All Cells, then save)"
    )


def test_notebook_kernel_is_this_interpreter(notebook_env: None) -> None:
    source = "import os, sys\nprint(sys.executable)\nprint(os.getcwd())"
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    execute(notebook)
    executable, cwd = notebook.cells[0].outputs[0]["text"].splitlines()
    assert Path(executable) == Path(sys.executable)
    assert Path(cwd) == NOTEBOOKS_DIR
