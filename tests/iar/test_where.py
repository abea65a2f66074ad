"""Where the localizers put memorization (memlab.iar.where, `memlab iar where`, and where.csv in the leaderboard):
shares of each method's top-k% per block and per scale, ties shared evenly, one line and nothing written on bad
input."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from memlab.cli import main
from memlab.iar.train import train_run
from memlab.iar.where import top_weights, where_table
from tests.iar.test_stages import tiny

torch.set_num_threads(1)


def test_ties_share_the_last_places_and_shares_follow_the_top_units():
    w = top_weights(np.array([5.0, 3.0, 3.0, 3.0, 1.0] + [0.0] * 15), 10)  # top 2 of 20: 5, then one of three 3s
    assert w[0] == 1 and np.allclose(w[1:4], 1 / 3) and w[4:].sum() == 0 and w.sum() == pytest.approx(2)
    units = pd.DataFrame({"block": [0] * 10 + [1] * 10, "score": np.r_[np.zeros(10), np.arange(1.0, 11.0)]})
    flat = pd.DataFrame({"block": [0] * 10 + [1] * 10, "score": np.zeros(20)})  # all tied: chance
    scales = pd.DataFrame({"scale": np.repeat([0, 1, 2], 10), "score": np.r_[np.zeros(20), np.ones(10)]})
    t = where_table({"late": units, "flat": flat}, {"late": scales}, top_pct=20)
    late = t[(t["method"] == "late") & (t["by"] == "block")].set_index("group")
    assert late["share"].tolist() == [0.0, 1.0] and late["n"].tolist() == [10, 10] and late["n_top"].sum() == 4
    assert t[(t["method"] == "flat")]["share"].tolist() == pytest.approx([0.5, 0.5])
    by_scale = t[t["by"] == "scale"].set_index("group")
    assert by_scale["share"].tolist() == [0.0, 0.0, 1.0] and by_scale["chance"].tolist() == pytest.approx([1 / 3] * 3)
    with pytest.raises(ValueError, match="top_pct must be in"):
        where_table({"late": units}, top_pct=0)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    cfg = tiny(4, lr=5e-3)
    cfg = replace(cfg, train=replace(cfg.train, arch="next-scale", scales=(1, 2, 4)))
    out = tmp_path_factory.mktemp("where") / "run"
    train_run(cfg, out, progress=False, figures=False)
    return out


def test_where_command_writes_blocks_and_scales_from_the_leaderboards_tables(run, capsys):
    argv = ["iar", "where", str(run), "--methods", "zero-out,grad-act", "--per-scale", "--candidates", "4", "--json"]
    assert main(argv) == 0
    metrics = json.loads(capsys.readouterr().out)
    table = pd.read_csv(run / "where" / "where.csv")
    assert (run / "where" / "where.png").is_file() and (run / "where" / "metrics.json").is_file()
    pd.testing.assert_frame_equal(pd.DataFrame(metrics["where"]), table, check_dtype=False)
    for (method, by), part in table.groupby(["method", "by"]):
        assert part["share"].sum() == pytest.approx(1.0) and part["chance"].sum() == pytest.approx(1.0)
        assert part["group"].tolist() == ([0] if by == "block" else [0, 1, 2])  # depth 1; scales 1, 2, 4
    units = pd.read_parquet(run / "localizers" / "zero-out" / "units.parquet")
    scales = pd.read_parquet(run / "localizers" / "zero-out-per-scale" / "scales.parquet")
    assert len(scales) == 3 * len(units)
    expect = where_table({"zero-out": units}, {"zero-out": scales})
    mine = table[table["method"] == "zero-out"].reset_index(drop=True)
    assert np.allclose(mine["share"], expect["share"]) and (mine["by"] == expect["by"]).all()
    stamp = (run / "localizers" / "zero-out-per-scale" / "metrics.json").stat().st_mtime_ns
    assert main(argv[:-1] + ["--tag", "again"]) == 0  # the tables are reused
    assert (run / "localizers" / "zero-out-per-scale" / "metrics.json").stat().st_mtime_ns == stamp
    assert pd.read_csv(run / "where-again" / "where.csv").equals(table)


@pytest.mark.parametrize("extra, needle", [
    (["--methods", "nope"], "unknown localizer 'nope' in --methods; allowed:"),
    (["--top-pct", "0"], "--top-pct must be"),
    (["--tag", "a b"], "--tag must be letters"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(run, capsys, extra, needle):
    before = sorted(p.name for p in run.iterdir())
    code = main(["iar", "where", str(run), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and needle in err, err
    assert sorted(p.name for p in run.iterdir()) == before
