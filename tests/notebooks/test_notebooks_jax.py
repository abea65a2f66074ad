"""The JAX notebooks run end to end at a tiny size: their parameters cell is overridden (as papermill
would), they execute with nbclient in a temporary directory, and what they compute matches the API."""

from pathlib import Path

import nbformat
import pytest

nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
TINY_SWEEP = '''
name = "tiny"
seeds = 1
train = {"steps": 20, "lr": 1e-2, "eval_test": 50, "n_boot": 50, "n_checkpoints": 3}
samples = 16
predict = {"repeats": 2, "draws": 4, "grid": 5}
workers = 1
'''
TINY = {
    "01_crossover_prediction": 'dim = 5\ncomponents = 2\nn_train = 20\ndraws = 4\nrepeats = 2\ngrid = 5\n',
    "02_phase_diagram_gmm": TINY_SWEEP + 'data = {"dataset": "gmm", "dim": 5, "components": 2, "n_train": [20]}\n'
                                         'model = {"kind": "mixture", "unit": "fraction", "sizes": [1.0]}\n',
    "03_phase_diagram_templates": TINY_SWEEP + 'data = {"dataset": "templates", "components": 2, "n_train": [12], '
                                               '"height": 6, "width": 6}\n'
                                               'model = {"kind": "mixture", "unit": "fraction", "sizes": [1.0]}\n',
}


def run_notebook(name: str, cwd: Path) -> nbformat.NotebookNode:
    book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    first = book.cells[0]
    assert "parameters" in first.metadata.get("tags", []), "the first cell must be the parameters cell"
    assert all(not c.get("outputs") and not c.get("execution_count") for c in book.cells if c.cell_type == "code"), \
        "notebooks are committed without outputs"
    book.cells.insert(1, nbformat.v4.new_code_cell(TINY[name]))
    nbclient.NotebookClient(book, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return book


def outputs_text(book) -> str:
    return "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                     for c in book.cells if c.cell_type == "code" for o in c.outputs)


def test_01_crossover_prediction_prints_the_api_result(tmp_path):
    from memlab.config import DataConfig
    from memlab.crossover.predict import CrossoverConfig, predict

    book = run_notebook("01_crossover_prediction", tmp_path)
    expected = predict(DataConfig(dim=5, components=2, n_train=20),
                       CrossoverConfig(weighting="eps", draws=4, repeats=2, grid=5, seed=0))
    assert f"M*/N = {expected['m_star_over_n']:.3f}" in outputs_text(book)


@pytest.mark.parametrize("name, out_dir", [("02_phase_diagram_gmm", "phase_gmm"),
                                           ("03_phase_diagram_templates", "phase_templates")])
def test_phase_notebooks_write_a_resumable_sweep_and_its_figure(tmp_path, name, out_dir):
    from memlab.sweep import load_table

    book = run_notebook(name, tmp_path)
    table = load_table(tmp_path / out_dir)
    assert len(table) == 1 and set(table["status"]) == {"ok"}  # one size x one seed: compile time dominates
    # M = N, started at theta_mem and trained 20 steps: still a memorizer
    assert table["memorization_ratio"].iloc[0] >= 0.9
    assert (tmp_path / out_dir / "phase.png").read_bytes()[:4] == b"\x89PNG"
    assert "1 rows; 0 not ok" in outputs_text(book)
