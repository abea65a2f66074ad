"""`memlab iar stages RUN` (issue 12 item 3): the stage list, the yardsticks of two stages gathered into one
table and one Pareto grid (a row per stage), no yardstick -> no figure, bad input -> exit 2 writing nothing."""

import json
import math
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import torch

from memlab.cli import main
from memlab.iar import config as iar_config
from tests.iar.test_stages import tiny
from memlab.iar.stage_report import cost_measures, gather, stage_label, stage_table, stages_figure
from memlab.iar.train import train_run

torch.set_num_threads(1)

YARD = ["--localizer", "unitmem", "--ks", "10", "--factors", "0", "--cloud-ks", "5,20", "--n-samples", "16",
        "--n-boot", "50", "--candidates", "4"]
N_ROWS = 1 + 2 * 5  # one top-k edit, 2 cloud ks x 5 draws


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """3 epochs (checkpoints 1, 2; final 3), 'memorized' at target accuracy 0.2 (epoch 2), with the yardstick
    at epoch 1 and at the final weights."""
    out = tmp_path_factory.mktemp("stages") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(iar_config, "MEMORIZED_ACC", 0.2)  # the tiny model never reaches 0.99 in 3 epochs
        train_run(tiny(3, lr=5e-3), out, progress=False, figures=False)  # lr: reaches 0.2 by epoch 2
    for stage in (["--checkpoint", "1"], []):
        assert main(["iar", "ablate", str(out), *YARD, *stage]) == 0
    return out


def _one_line_error(capsys, code, needle):
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and needle in err, err


def test_stages_lists_every_stage_and_gathers_both_yardsticks(run, capsys):
    capsys.readouterr()
    assert main(["iar", "stages", str(run), "--json"]) == 0
    cap = capsys.readouterr()
    out = json.loads(cap.out)
    history = {r["epoch"]: r for r in json.loads((run / "metrics.json").read_text())["model"]}
    assert json.loads((run / "metrics.json").read_text())["memorized_epoch"] == 2
    stages = out["stages"]
    assert [s["epoch"] for s in stages] == [1, 2, 3]
    assert [s["final"] for s in stages] == [False, False, True]
    assert [s["memorized"] for s in stages] == [False, True, False]
    assert [s["yardstick"] for s in stages] == [True, False, True]
    assert [s["work_dir"] for s in stages] == ["checkpoints/epoch-0001", "checkpoints/epoch-0002", "."]
    for s in stages:
        h = history[s["epoch"]]
        assert (s["train_acc"], s["target_acc"], s["heldout_nll"]) == pytest.approx(
            (h["train_acc"], h["target_acc"], h["heldout_nll"]))
        assert s["uniform_nll"] == pytest.approx(math.log(16))
    csv = pd.read_csv(run / "stages.csv")
    assert csv["epoch"].tolist() == [1, 2, 3] and csv["final"].tolist() == [False, False, True]
    assert csv["target_acc"].tolist() == pytest.approx([history[e]["target_acc"] for e in (1, 2, 3)])
    assert out["yardstick_epochs"] == [1, 3] and out["notes"] == []
    assert out["files"] == {"stages": str(run / "stages.csv"), "yardstick": str(run / "stages_yardstick.csv"),
                            "figure": str(run / "stages_pareto.png")}
    gathered = pd.read_csv(run / "stages_yardstick.csv")
    assert gathered.groupby("stage_epoch").size().to_dict() == {1: N_ROWS, 3: N_ROWS}
    assert gathered.groupby("stage_epoch")["stage"].unique().map(list).to_dict() == {1: ["epoch"], 3: ["final"]}
    at1 = pd.read_parquet(run / "checkpoints" / "epoch-0001" / "yardstick" / "yardstick.parquet")
    assert gathered[gathered["stage_epoch"] == 1]["T_extracted"].tolist() == at1["T_extracted"].tolist()
    assert (run / "stages_pareto.png").stat().st_size > 10_000
    assert "training stages of" in cap.err and "yardstick of epoch(s) 1, 3" in cap.err


def test_the_figure_has_one_row_per_stage_and_one_column_per_cost_measure(run):
    stages = stage_table(run, 16)
    yardsticks, _ = gather(run, stages)
    assert [y.epoch for y in yardsticks] == [1, 3] and [y.n_targets for y in yardsticks] == [2, 2]
    costs = cost_measures(yardsticks)
    curves = [set(pd.read_csv(w / "yardstick" / "curves.csv")["cost_measure"])
              for w in (run / "checkpoints" / "epoch-0001", run)]
    assert set(costs) == curves[0] | curves[1] and len(costs) >= 1
    fig = stages_figure(yardsticks)
    axes = fig.axes
    grid = {(ax.get_subplotspec().rowspan.start, ax.get_subplotspec().colspan.start) for ax in axes}
    assert grid == {(r, c) for r in range(2) for c in range(len(costs))}
    assert [ax.get_xlabel() for ax in axes[:len(costs)]] == costs
    titles = [ax.get_title(loc="left") for ax in axes if ax.get_title(loc="left")]
    assert titles == [stage_label(stages.iloc[0]), stage_label(stages.iloc[2])]
    assert titles[1].startswith("epoch 3 (final), target acc ")


def test_stage_label_numbers():
    row = {"epoch": 12, "memorized": True, "final": False, "target_acc": 0.99, "heldout_nll": 6.1,
           "uniform_nll": 5.5}
    assert stage_label(row) == "epoch 12 (memorized), target acc 0.99, held-out NLL 6.1 / log V 5.5"
    both = {**row, "final": True, "target_acc": None}
    assert stage_label(both) == "epoch 12 (memorized, final), target acc n/a, held-out NLL 6.1 / log V 5.5"


def test_no_yardstick_writes_the_stage_list_only(run, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("stages*"))
    capsys.readouterr()
    assert main(["iar", "stages", str(copy), "--tag", "none", "--json"]) == 0
    cap = capsys.readouterr()
    out = json.loads(cap.out)
    assert out["yardstick_epochs"] == [] and out["files"]["yardstick"] is None and out["files"]["figure"] is None
    assert [s["yardstick"] for s in out["stages"]] == [False, False, False]
    assert (copy / "stages.csv").is_file() and not list(copy.glob("stages_*"))
    assert "no finished yardstick (yardstick-none) at any stage" in cap.err


def test_bad_input_exits_2_with_one_line_and_writes_nothing(run, tmp_path, capsys):
    _one_line_error(capsys, main(["iar", "stages", str(tmp_path / "missing")]), "does not exist or is not a directory")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    _one_line_error(capsys, main(["iar", "stages", str(tmp_path / "other")]), "directory memlab did not write")
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("stages*"))
    _one_line_error(capsys, main(["iar", "stages", str(copy), "--tag", "a/b"]), "--tag must be letters, digits")
    (copy / "checkpoints" / "epoch-0001" / "yardstick" / "curves.csv").write_text("cost_measure,cost\nx,1\n")
    _one_line_error(capsys, main(["iar", "stages", str(copy)]), "damaged curves file")
    assert not list(copy.glob("stages*")) and not list((tmp_path / "other").glob("stages*"))


def test_the_command_does_not_import_torch(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("stages*"))
    code = ("import sys; from memlab.cli import main; rc = main(['iar', 'stages', sys.argv[1]]); "
            "assert rc == 0, rc; assert 'torch' not in sys.modules, 'torch imported'")
    res = subprocess.run([sys.executable, "-c", code, str(copy)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert (copy / "stages_pareto.png").is_file()
