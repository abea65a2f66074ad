"""notebooks/04_iar_localization.ipynb runs train -> localize -> extract -> ablate at a tiny size, and its
files agree with what it printed."""

import json
from pathlib import Path

import nbformat
import pytest

nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "04_iar_localization.ipynb"
TINY = '''
import torch; torch.set_num_threads(1)
data = {"data": "shapes", "size": 16, "n_train": 12, "n_heldout": 12, "duplicates": 3, "n_duplicated": 2}
train = {"epochs": 2, "tokenizer_epochs": 1, "width": 32, "depth": 2, "heads": 2, "codebook_size": 16,
         "latent_channels": 4, "tokenizer_channels": (8, 8, 8), "scales": (1, 2, 4)}
n_aug, candidates, sweep, n_random, n_generate = 2, 4, (10.0,), 2, 8
'''


def test_iar_localization_notebook_runs_tiny(tmp_path):
    book = nbformat.read(NOTEBOOK, as_version=4)
    assert "parameters" in book.cells[0].metadata.get("tags", [])
    assert all(not c.get("outputs") and not c.get("execution_count") for c in book.cells if c.cell_type == "code")
    book.cells.insert(1, nbformat.v4.new_code_cell(TINY))
    nbclient.NotebookClient(book, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(o.get("text", "") for c in book.cells if c.cell_type == "code" for o in c.outputs)
    run = tmp_path / "iar_localization_run"
    ext = json.loads((run / "extract" / "metrics.json").read_text())
    assert f"extracted {ext['n_extracted']}/4 (threshold {ext['threshold']:.3f})" in text
    assert "12 unique training images, 2 planted duplicates" in text
    abl = json.loads((run / "ablate" / "metrics.json").read_text())
    assert abl["random"]["n_draws"] == 2 and abl["top_pct"] == 10.0
    for f in ("localize/unitmem.png", "extract/extraction.png", "ablate/ablation.png", "ablate/blocks.png"):
        assert (run / f).read_bytes()[:4] == b"\x89PNG", f
