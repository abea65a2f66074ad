"""Runner + store with stand-in cells: rows per (cell, seed), resume skips finished cells, failures are
recorded and the sweep goes on, refinement fills the bracket, a different spec in the same dir is refused."""

import pandas as pd
import pytest

from memlab.errors import UsageError
from memlab.sweep import runner as runner_mod
from memlab.sweep.runner import run_sweep
from memlab.sweep.spec import parse_spec
from memlab.sweep.store import SweepStore
import sweep_standin as standin
from sweep_standin import STANDINS


def make_spec(sizes=(0.1, 0.3, 0.7, 1.0), n_train=(40, 80), rounds=0, seeds=2, name="t"):
    return parse_spec({"name": name, "data": {"dim": 3, "components": 2, "n_train": list(n_train)},
                       "model": {"sizes": list(sizes)}, "seeds": {"count": seeds},
                       "refine": {"rounds": rounds, "points": 3}})


def test_rows_per_cell_and_seed_and_resume_skips_finished_cells(tmp_path, monkeypatch):
    calls = []
    counting = lambda *a: calls.append(a[1]["size"]) or standin.fake_cell(*a)  # noqa: E731
    df = run_sweep(make_spec(), tmp_path, workers=1, progress=False, **dict(STANDINS, cell_fn=counting))
    assert len(df) == 2 * 4 * 2 and len(calls) == 8
    assert set(df["status"]) == {"ok"}
    assert all(sorted(g) == [0, 1] for _, g in df.groupby("cell_id")["seed"])
    assert sorted(df.loc[df["n_train"] == 80, "size"].unique()) == [8, 24, 56, 80]
    assert (df["m_over_n"] == df["size"] / df["n_train"]).all()
    again = run_sweep(make_spec(), tmp_path, workers=1, progress=False, **dict(STANDINS, cell_fn=counting))
    assert len(calls) == 8  # nothing re-ran
    pd.testing.assert_frame_equal(again, df)
    assert pd.read_parquet(tmp_path / "results.parquet").equals(df)
    assert (tmp_path / "predictions").is_dir() and len(list((tmp_path / "predictions").glob("*.json"))) == 2


def test_failed_cell_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMLAB_STANDIN_FAIL", "12")  # size 12 = 0.3 * 40
    df = run_sweep(make_spec(), tmp_path, workers=1, progress=False, **STANDINS)
    bad = df[df["status"] == "failed"]
    assert len(bad) == 2 and set(bad["size"]) == {12} and bad["error"].str.contains("stand-in failure at size 12").all()
    assert (df["status"] == "ok").sum() == 14 and bad["memorization_ratio"].isna().all()
    monkeypatch.setenv("MEMLAB_STANDIN_FAIL", "")
    run_sweep(make_spec(), tmp_path, workers=1, progress=False, **STANDINS)
    assert (SweepStore(tmp_path).table()["status"] == "failed").sum() == 2  # kept unless asked to retry
    df = run_sweep(make_spec(), tmp_path, workers=1, progress=False, retry_failed=True, **STANDINS)
    assert set(df["status"]) == {"ok"} and len(df) == 16


def test_refinement_adds_sizes_inside_the_bracket_only(tmp_path):
    spec = make_spec(sizes=(0.1, 0.2, 0.4, 0.6, 0.8, 1.0), n_train=(100,), rounds=2, seeds=3)
    df = run_sweep(spec, tmp_path, workers=1, progress=False, **STANDINS)
    coarse = df[df["stage"] == 0].groupby("size")["memorization_ratio"].mean()
    lo = max(s for s, r in coarse.items() if r < 0.1 and s < min(s2 for s2, r2 in coarse.items() if r2 >= 0.9))
    hi = min(s for s, r in coarse.items() if r >= 0.9)
    refined = sorted(df.loc[df["stage"] == 1, "size"].unique())
    assert refined and all(lo < s < hi for s in refined) and len(refined) <= 3
    assert set(df["stage"]) <= {0, 1, 2} and len(df) % 3 == 0


def test_a_different_spec_in_the_same_dir_is_refused_before_writing(tmp_path):
    run_sweep(make_spec(), tmp_path, workers=1, progress=False, **STANDINS)
    before = sorted(p.name for p in (tmp_path / "rows").iterdir())
    with pytest.raises(UsageError, match="holds a different sweep"):
        run_sweep(make_spec(seeds=3), tmp_path, workers=1, progress=False, **STANDINS)
    assert sorted(p.name for p in (tmp_path / "rows").iterdir()) == before


def test_bad_backend_and_missing_ray_write_nothing(tmp_path, monkeypatch):
    with pytest.raises(UsageError, match="unknown --backend 'slurm'; allowed: local, ray"):
        run_sweep(make_spec(), tmp_path / "a", backend="slurm", progress=False, **STANDINS)
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(UsageError, match=r"pip install -e '\.\[ray\]'"):
        run_sweep(make_spec(), tmp_path / "b", backend="ray", progress=False, **STANDINS)
    with pytest.raises(UsageError, match="needs --backend ray"):
        runner_mod.check_backend("local", "10.0.0.1:6379")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_process_pool_gives_the_same_table_as_in_process(tmp_path):
    one = run_sweep(make_spec(), tmp_path / "one", workers=1, progress=False, **STANDINS)
    two = run_sweep(make_spec(), tmp_path / "two", workers=2, progress=False, **STANDINS)
    cols = [c for c in one.columns if c != "wall_s"]
    pd.testing.assert_frame_equal(one[cols], two[cols])
