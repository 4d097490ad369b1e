"""The walkthrough notebooks run top to bottom (in a scratch directory, no network)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # the kernel shares cores with other tests
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    # What each walkthrough leaves behind in its working directory.
    expected = {"01_train_and_evaluate.ipynb": "mlruns.db",
                "02_winback_campaigns.ipynb": "campaign.html"}
    assert (tmp_path / expected.get(path.name, "mlruns.db")).exists()


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds the data scientists' walkthroughs"
