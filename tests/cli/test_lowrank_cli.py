"""The low-rank GMM through the commands: `memlab crossover predict --data lowrank-gmm`, `memlab train
--data lowrank-gmm`, a sweep spec's [data]; bad values of the new options exit 2 with one line."""

import json

import numpy as np
import pytest

from memlab.cli import main
from memlab.config import DataConfig
from memlab.sweep.spec import data_key, parse_spec

LR = ["--data", "lowrank-gmm", "--dim", "8", "--rank", "2", "--noise", "0.05", "--components", "2"]


def test_crossover_predict_on_the_lowrank_gmm(capsys):
    args = ["crossover", "predict", *LR, "--n-train", "24", "--draws", "4", "--repeats", "2", "--grid", "6",
            "--bootstrap", "20", "--json"]
    assert main(args) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["dim"] == 8 and r["config"]["data"]["rank"] == 2 and r["config"]["data"]["noise"] == 0.05
    psi = np.array([p["psi"] for p in r["per_t"]])
    # theta_star's closed-form loss uses the low-rank spectrum: 2 of s2 + tau^2, 6 of tau^2
    want = 2 * 1.05 / (1 + psi * 1.05) + 6 * 0.05 / (1 + psi * 0.05)
    np.testing.assert_allclose(r["approximations"]["_generalizing_closed_form_per_t"], want, rtol=1e-9)
    assert 0 < r["m_star_over_n"] <= 1


def test_train_on_the_lowrank_gmm_writes_its_config(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", *LR, "--n-train", "20", "--n-test", "50", "--size", "4", "--steps", "30", "--draws", "2",
            "--samples", "16", "--checkpoints", "2", "--quiet", "--out", str(out), "--json"]
    assert main(args) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["dim"] == 8 and m["n_train"] == 20 and 0 <= m["memorization_ratio"] <= 1
    saved = json.loads((out / "config.json").read_text())["data"]
    assert (saved["dataset"], saved["rank"], saved["noise"]) == ("lowrank-gmm", 2, 0.05)


def test_sweep_spec_takes_the_lowrank_gmm_and_old_cells_keep_their_ids():
    spec = parse_spec({"name": "lr", "data": {"dataset": "lowrank-gmm", "dim": 10, "rank": 3, "noise": 0.1,
                                              "n_train": [40, 80]}, "model": {"sizes": [0.5]}})
    assert [(c.dataset, c.rank, c.noise, c.n_train) for c in spec.data] == [("lowrank-gmm", 3, 0.1, 40),
                                                                             ("lowrank-gmm", 3, 0.1, 80)]
    assert {"rank", "noise"} <= set(spec.to_json()["data"][0])
    gmm = parse_spec({"name": "g", "data": {"dim": 10}, "model": {"sizes": [0.5]}})
    assert not {"rank", "noise"} & set(gmm.to_json()["data"][0])  # a sweep saved before them still resumes
    # rank and noise enter the identity of low-rank cells only
    assert data_key(DataConfig(rank=3)) == data_key(DataConfig(rank=5, noise=0.2))
    assert data_key(DataConfig(dataset="lowrank-gmm", rank=3)) != data_key(DataConfig(dataset="lowrank-gmm", rank=5))


@pytest.mark.parametrize("argv, needle", [
    (["--rank", "0"], "--rank must be an integer >= 1"),
    (["--rank", "9"], "--rank must be <= dim (8)"),
    (["--rank", "two"], "--rank"),
    (["--noise", "-0.1"], "--noise must be"),
    (["--noise", "nan"], "--noise must be"),
])
@pytest.mark.parametrize("command", ["train", "crossover"])
def test_bad_lowrank_options_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, command, argv, needle):
    out = tmp_path / "out"
    base = (["train", "--out", str(out)] if command == "train"
            else ["crossover", "predict", "--out", str(out / "r.json")])
    code = main([*base, *LR, *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("extra, needle", [
    ('rank = [2, 3]', "data.rank must be one value per sweep"),
    ('noise = [0.0, 0.1]', "data.noise must be one value per sweep"),
    ('rank = 20', "rank must be <= dim (10)"),
    ('noise = -1.0', "noise must be"),
])
def test_bad_lowrank_sweep_spec_exits_2_with_one_line(tmp_path, capsys, extra, needle):
    spec = tmp_path / "s.toml"
    spec.write_text(f'name = "x"\n[data]\ndataset = "lowrank-gmm"\ndim = 10\n{extra}\n[model]\nsizes = [0.5]\n')
    out = tmp_path / "o"
    assert main(["sweep", "run", str(spec), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()
