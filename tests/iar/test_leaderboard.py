"""`memlab iar localizers RUN`: several localizers on one yardstick (one random cloud), INJ and the per-image
overlap in one leaderboard; bad input exits 2 with one line and writes nothing."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from memlab.cli import main
from memlab.iar.leaderboard import per_image_overlap
from memlab.iar.train import train_run
from tests.iar.test_stages import tiny

torch.set_num_threads(1)
SMALL = ["--ks", "10", "--factors", "0", "--cloud-ks", "5,20", "--n-samples", "16", "--n-boot", "50",
         "--candidates", "4", "--mask-steps", "5"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lb") / "run"
    train_run(tiny(4, lr=5e-3), out, progress=False, figures=False)
    return out


def test_leaderboard_scores_every_method_against_one_cloud_and_resumes(run, capsys):
    argv = ["iar", "localizers", str(run), "--methods", "zero-out,activation", *SMALL, "--per-image", "--json"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    board = pd.read_csv(run / "leaderboard" / "leaderboard.csv")
    assert board["method"].tolist() == ["zero-out", "activation"]
    table = pd.read_parquet(run / "leaderboard" / "del" / "yardstick.parquet")
    assert table["method"].tolist() == ["zero-out", "activation"] + ["random"] * 10  # one cloud for both
    verdicts = pd.read_csv(run / "leaderboard" / "del" / "verdicts.csv")
    assert set(verdicts["method"]) == {"zero-out", "activation"}
    for name in ("zero-out", "activation"):
        row = board[board["method"] == name].iloc[0]
        mine = table[table["method"] == name].iloc[0]
        assert row["del_T_k10_factor0"] == mine["T_extracted"] and row["del_T_n"] == 2
        counts = verdicts[(verdicts["method"] == name) & (verdicts["cost_measure"] == "cost_sample_nll")]
        assert row["del_sample_nll_better"] + row["del_sample_nll_indistinguishable"] + row["del_sample_nll_worse"] \
            == counts["verdict"].isin(["better", "indistinguishable", "worse"]).sum()
        assert 0 <= row["per_image_top1pct_overlap"] <= 1 and row["seconds"] >= 0 and not row["uses_labels"]
    assert (run / "localizers" / "zero-out-per-image" / "units.parquet").is_file()
    where = pd.read_csv(run / "leaderboard" / "where.csv")  # where the methods put memorization, from their tables
    from memlab.iar.where import where_table

    units = {m: pd.read_parquet(run / "localizers" / m / "units.parquet") for m in ("zero-out", "activation")}
    assert np.allclose(where["share"], where_table(units)["share"]) and set(where["by"]) == {"block"}
    assert (run / "leaderboard" / "where.png").is_file() and len(first["where"]) == len(where)
    rows = (run / "leaderboard" / "del" / "state" / "rows.json").read_text()
    assert main(argv) == 0  # everything reused
    assert json.loads(capsys.readouterr().out)["leaderboard"] == first["leaderboard"]
    assert (run / "leaderboard" / "del" / "state" / "rows.json").read_text() == rows


def test_inj_recall_joins_the_leaderboard(run, capsys):
    argv = ["iar", "localizers", str(run), "--methods", "zero-out", *SMALL, "--inject", "--n-images", "2",
            "--fractions", "0.5", "--seeds", "0,1", "--max-epochs", "30", "--tag", "inj"]
    assert main(argv) == 0
    board = pd.read_csv(run / "leaderboard-inj" / "leaderboard.csv")
    summary = pd.read_csv(run / "inject" / "inj.csv")
    whole = summary[(summary["block"] == -1) & (summary["method"] == "zero-out")].iloc[0]
    assert board["inj_recall_f0.5"].iloc[0] == pytest.approx(whole["recall"])
    assert board["inj_chance_f0.5"].iloc[0] == pytest.approx(0.5)


def test_per_image_overlap_is_the_mean_jaccard_of_the_top_sets():
    units = [("l", u) for u in range(200)]
    a = pd.DataFrame({"target": "a", "layer": "l", "unit": range(200), "score": np.arange(200.0)})
    b = a.assign(target="b")
    c = a.assign(target="c", score=-np.arange(200.0))  # its top 1% (2 units) are the others' bottom
    assert per_image_overlap(pd.concat([a, b])) == 1.0 and len(units) == 200
    assert per_image_overlap(pd.concat([a, b, c])) == pytest.approx(1 / 3)
    assert np.isnan(per_image_overlap(a))


@pytest.mark.parametrize("extra, needle", [
    (["--methods", "nope"], "unknown localizer 'nope' in --methods; allowed:"),
    (["--methods", "random"], "random is the yardstick's random cloud"),
    (["--inject", "--checkpoint", "1"], "--inject works on the final weights"),
    (["--tag", "a b"], "--tag must be letters"),
    (["--ks", "0"], "--ks"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(run, capsys, extra, needle):
    before = sorted(p.name for p in run.iterdir())
    code = main(["iar", "localizers", str(run), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and needle in err, err
    assert sorted(p.name for p in run.iterdir()) == before
