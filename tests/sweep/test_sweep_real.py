"""The sweep with the real `memlab train` cells and the real crossover prediction, at a tiny size."""

import pytest

from memlab.cli import main
from memlab.sweep.phase import summarize_dir
from memlab.sweep.store import load_table

SPEC = '''
name = "real"
[data]
dim = {dim}
components = {k}
n_train = {n}
[model]
sizes = [{sizes}]
[seeds]
count = {seeds}
[train]
steps = {steps}
lr = 1e-2
n_checkpoints = 3
eval_test = 50
[sampling]
samples = 32
[predict]
repeats = 2
draws = 8
'''


def test_one_real_cell_end_to_end_and_resume(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC.format(dim=5, k=2, n=20, sizes="1.0", seeds=1, steps=20))
    out = tmp_path / "out"
    assert main(["sweep", "run", str(spec), "--out", str(out), "--workers", "1"]) == 0
    df = load_table(out)
    (row,) = df.itertuples()
    assert row.status == "ok" and row.size == 20 and row.m_over_n == 1.0 and row.param_count == 20 * 5 + 1
    assert row.memorization_ratio >= 0.9  # M = N starts at theta_mem; 20 steps keep it there
    assert (out / "runs" / row.cell_id / "metrics.json").is_file()  # each cell is a memlab train run
    _, preds, summary = summarize_dir(out, n_boot=50)
    assert 0 < summary[0]["predicted"]["m_over_n"] <= 1.0
    mtime = (out / "rows" / f"{row.cell_id}.parquet").stat().st_mtime_ns
    assert main(["sweep", "run", str(spec), "--out", str(out), "--workers", "1"]) == 0
    assert (out / "rows" / f"{row.cell_id}.parquet").stat().st_mtime_ns == mtime  # skipped, not re-run


@pytest.mark.slow
def test_trained_mixtures_cross_from_generalizing_to_memorizing(tmp_path):
    spec = tmp_path / "s.toml"
    # the acceptance setting (d=30, K=4) at N=40: generalizes at M/N = 0.1 and 0.5, memorizes at M = N
    spec.write_text(SPEC.format(dim=30, k=4, n=40, sizes="0.1, 0.5, 1.0", seeds=2, steps=600))
    assert main(["sweep", "run", str(spec), "--out", str(tmp_path / "o"), "--workers", "2"]) == 0
    _, _, (rec,) = summarize_dir(tmp_path / "o", n_boot=200)
    sizes = {s["size"]: s["mean_ratio"] for s in rec["observed"]["sizes"]}
    assert sizes[4] <= 0.1 and sizes[20] <= 0.1 and sizes[40] >= 0.9
    assert rec["observed"]["m_over_n"] is not None and 0.5 < rec["observed"]["m_over_n"] < 1.0
