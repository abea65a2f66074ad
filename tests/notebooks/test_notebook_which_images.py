"""notebooks/06_which_images.ipynb trains a graded-duplication run and its reference at a tiny size, runs
every analysis, and what it prints agrees with the files it wrote."""

import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest

nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "06_which_images.ipynb"
TINY = '''
import torch; torch.set_num_threads(1)
data = {"data": "shapes", "size": 16, "n_train": 12, "n_heldout": 8, "graded": (1, 2, 4), "graded_size": 2}
moved_start = 6
train = {"epochs": 2, "tokenizer_epochs": 1, "width": 32, "depth": 2, "heads": 2, "codebook_size": 16,
         "latent_channels": 4, "tokenizer_channels": (8, 8, 8), "scales": (1, 2, 4)}
analyze = {"n_boot": 20, "ms": (1,)}
'''


def test_which_images_notebook_runs_tiny(tmp_path):
    book = nbformat.read(NOTEBOOK, as_version=4)
    assert "parameters" in book.cells[0].metadata.get("tags", [])
    assert all(not c.get("outputs") and not c.get("execution_count") for c in book.cells if c.cell_type == "code")
    book.cells.insert(1, nbformat.v4.new_code_cell(TINY))
    nbclient.NotebookClient(book, timeout=400, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(o.get("text", "") for c in book.cells if c.cell_type == "code" for o in c.outputs)
    res = tmp_path / "which_images_run" / "analyze"
    m = json.loads((res / "metrics.json").read_text())
    assert "12 unique training images; copies: {1: 8, 2: 2, 4: 2}" in text
    assert f"{m['n_memorized']} of 12 training images memorized" in text
    law = m["analyses"]["entropy"]["group"]
    assert f"over {law['n_points']} bins" in text
    auc = pd.read_csv(res / "inference_auc.csv").set_index("test").loc["entropy-adjusted score", "auc"]
    assert f"entropy-adjusted AUC {auc:.3f}" in text
    assert m["analyses"]["frequency"]["reference"] is True
    freq = pd.read_csv(res / "frequency.csv")
    assert {"all", "memorized at one copy", "not memorized at one copy"} >= set(freq["split"]) and len(freq) >= 3
    for f in ("entropy", "inference", "perturb", "frequency"):
        assert (res / f"{f}.png").read_bytes()[:4] == b"\x89PNG"
