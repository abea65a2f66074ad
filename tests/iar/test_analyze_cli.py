"""`memlab iar analyze RUN`: end to end on a tiny trained run with graded duplication, and bad input -> exit 2
with one line and nothing written."""

import json

import pandas as pd
import pytest
import torch

from memlab.cli import main

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from memlab.iar.config import IARTrainConfig, ImageDataConfig, RunConfig
    from memlab.iar.train import train_run

    out = tmp_path_factory.mktemp("iar") / "run"
    cfg = RunConfig(data=ImageDataConfig(n_train=12, n_heldout=8, size=16, graded=(1, 2, 4), graded_size=2),
                    train=IARTrainConfig(arch="next-scale", epochs=2, tokenizer_epochs=1, width=32, depth=2, heads=2,
                                         codebook_size=16, latent_channels=4, tokenizer_channels=(8, 8, 8),
                                         scales=(1, 2, 4)))
    train_run(cfg, out, progress=False, figures=False)
    return out


def _one_line_error(capsys, code, needle):
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and needle in err, err


@pytest.mark.parametrize("extra, needle", [
    (["--what", "entropy,composure"], "unknown --what entry 'composure'; allowed: entropy, inference, perturb, frequency"),
    (["--prefix", "3"], "--prefix must be in [1, 2] scales for this next-scale model, got 3"),
    (["--prefix", "2", "--ms", "6"], "--ms must be in [1, 5] (the prefix of 2 scales reveals 5 tokens), got 6"),
    (["--modes", "nearest,flip"], "unknown --modes entry 'flip'; allowed: random, nearest"),
    (["--memorized-at", "0"], "--memorized-at must be in (0, 1], got 0.0"),
    (["--reference", "/no/such/run"], "--reference /no/such/run does not exist"),
    (["--checkpoint", "7"], "no checkpoint of epoch 7"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(capsys, run_dir, extra, needle):
    _one_line_error(capsys, main(["iar", "analyze", str(run_dir), *extra]), needle)
    assert not (run_dir / "analyze").exists()


def test_missing_run_exits_2(capsys):
    _one_line_error(capsys, main(["iar", "analyze", "/no/such/run"]), "does not exist or is not a directory")


def test_analyze_writes_tables_figures_and_json(capsys, run_dir):
    code = main(["iar", "analyze", str(run_dir), "--what", "entropy,frequency,perturb", "--prefix", "2", "--ms", "1,5",
                 "--n-boot", "20", "--json", "--threads", "1"])
    out = capsys.readouterr().out
    assert code == 0
    metrics = json.loads(out)
    res = run_dir / "analyze"
    assert metrics == json.loads((res / "metrics.json").read_text()) | {"stage": metrics["stage"]}
    scores = pd.read_parquet(res / "scores.parquet")
    assert len(scores) == 12 and sorted(scores["copies"].tolist()) == [1] * 8 + [2, 2, 4, 4]
    assert {"match_s2", "edit_s2"} <= set(scores.columns)  # next-scale: per scale after the 2-scale prefix
    assert scores["edit_score"].between(0, 1).all() and metrics["n_train"] == 12
    freq = pd.read_csv(res / "frequency.csv")
    assert sorted(freq["copies"].unique()) == [1, 2, 4]
    onset = pd.read_csv(res / "frequency_onset.csv")
    assert set(onset["epoch"]) == {1, 2}  # the saved checkpoint and the final weights
    drops = pd.read_csv(res / "perturb_drops.csv")
    assert sorted(drops["m"].unique()) == [1, 5] and set(drops["mode"]) == {"random", "nearest"}
    for f in ("entropy", "frequency", "perturb"):
        assert (res / f"{f}.png").read_bytes()[:4] == b"\x89PNG"
    assert "inference" not in metrics["analyses"]
