"""The notebooks run from top to bottom (small settings), so they cannot rot."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "notebooks")


@pytest.mark.slow
def test_notebooks_execute(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SMALL", "1")
    monkeypatch.setenv("ULMFIT_TF_DATA", data_dir)
    monkeypatch.setenv("NOTEBOOK_OUT", str(tmp_path / "runs"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    for name in ("01_three_stages.ipynb", "02_export_and_serving.ipynb",
                 "03_keras_api.ipynb"):
        book = nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)
        NotebookClient(book, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
        errors = [o for c in book.cells if c.cell_type == "code"
                  for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, errors
    assert os.path.isfile(tmp_path / "runs" / "exported" / "1" / "saved_model.pb")
    assert os.path.isfile(tmp_path / "runs" / "keras_api_export" / "1" / "saved_model.pb")
