"""notebooks/05_mitigations.ipynb runs its job spec (base, yardstick, cartography, MemSinks, pruning, merging,
unlearning, the scoreboard) at a tiny size, and what it prints agrees with the files it wrote."""

import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest

nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "05_mitigations.ipynb"
TINY = '''
train = {"n_train": 16, "n_heldout": 16, "duplicates": 3, "n_duplicated": 2, "epochs": 4,
         "tokenizer_epochs": 1, "width": 32, "depth": 2, "heads": 2, "codebook_size": 16, "latent_channels": 4,
         "tokenizer_channels": [8, 8, 8], "scales": [1, 2, 4]}
yardstick = {"localizer": "unitmem", "ks": 10, "factors": 0, "cloud_ks": [5, 20], "n_samples": 16, "n_boot": 50,
             "candidates": 4}
methods = ["memsinks", "prune-memorization", "merge", "unlearn-ga"]
unlearn = {"steps": 4, "eval_every": 2, "retain_size": 8, "trajectory_samples": 8, "n_samples": 16}
merge = {"last": 2}
prune = 25
'''


def test_mitigations_notebook_runs_tiny(tmp_path):
    book = nbformat.read(NOTEBOOK, as_version=4)
    assert "parameters" in book.cells[0].metadata.get("tags", [])
    assert all(not c.get("outputs") and not c.get("execution_count") for c in book.cells if c.cell_type == "code")
    book.cells.insert(1, nbformat.v4.new_code_cell(TINY))
    nbclient.NotebookClient(book, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(o.get("text", "") for c in book.cells if c.cell_type == "code" for o in c.outputs)
    out = tmp_path / "mitigations_run"
    status = pd.read_parquet(out / "results.parquet")
    assert set(status["status"]) == {"ok"} and len(status) == 8  # base, yardstick, carto, 4 methods, score
    board_dir = out / "runs" / "base-next-scale-s0" / "mitigations"
    board = pd.read_csv(board_dir / "mitigations.csv")
    assert list(board[board["kind"] == "mitigation"]["method"]) == ["memsinks", "prune-memorization", "merge", "unlearn-ga"]
    metrics = json.loads((board_dir / "metrics.json").read_text())
    assert f"T = {len(metrics['sets']['target_ids'])} targets" in text
    counts = {k: int(n) for k, n in pd.read_csv(board_dir / "verdicts.csv").groupby("verdict").size().items()}
    assert f"verdicts: {counts}" in text
    assert (board_dir / "pareto.png").read_bytes()[:4] == b"\x89PNG"
