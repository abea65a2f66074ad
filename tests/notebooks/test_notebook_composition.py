"""notebooks/07_composition.ipynb trains a held-out-combination run and an arbitrary-label run at a tiny size,
runs the composition analysis at their checkpoints, and what it prints agrees with the files it wrote."""

from pathlib import Path

import nbformat
import pandas as pd
import pytest

nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "07_composition.ipynb"
TINY = '''
import torch; torch.set_num_threads(1)
data = {"data": "factors", "size": 16, "n_train": 24, "n_heldout": 8}
kinds = {"heldout": {"heldout_share": 0.25}, "arbitrary": {"arbitrary_labels": 0.5, "arbitrary_classes": 2}}
train = {"epochs": 2, "tokenizer_epochs": 1, "width": 32, "depth": 2, "heads": 2,
         "codebook_size": 16, "latent_channels": 4, "tokenizer_channels": (8, 8, 8), "scales": (1, 2, 4)}
analyze = {"what": ("composition",), "epochs": (1, 2), "n_boot": 20, "samples_per_class": 2, "probe_folds": 2,
           "classifier_steps": 20, "classifier_images": 128}
'''


def test_composition_notebook_runs_tiny(tmp_path):
    book = nbformat.read(NOTEBOOK, as_version=4)
    assert "parameters" in book.cells[0].metadata.get("tags", [])
    assert all(not c.get("outputs") and not c.get("execution_count") for c in book.cells if c.cell_type == "code")
    book.cells.insert(1, nbformat.v4.new_code_cell(TINY))
    nbclient.NotebookClient(book, timeout=400, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(o.get("text", "") for c in book.cells if c.cell_type == "code" for o in c.outputs)
    runs = tmp_path / "composition_runs"
    assert "heldout: next-scale, 24 training images, checkpoints [1, 2]" in text
    out = pd.read_csv(runs / "heldout" / "analyze" / "composition_output.csv")
    row = out[(out.epoch == 2) & (out.group == "held-out") & (out.measure == "both")].iloc[0]
    assert f"held-out {row.rate:.3f} [{row.lo:.3f}, {row.hi:.3f}]" in text
    arb = pd.read_csv(runs / "arbitrary" / "analyze" / "composition_arbitrary.csv")
    row = arb[(arb.group == "arbitrary") & (arb.measure == "extracted")].iloc[0]
    assert f"extracted: arbitrary labels {row.rate:.3f}" in text
    for kind in ("heldout", "arbitrary"):
        for f in ("composition", "composition_probes", "composition_training"):
            assert (runs / kind / "analyze" / f"{f}.png").read_bytes()[:4] == b"\x89PNG"
