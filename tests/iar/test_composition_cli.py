"""`memlab iar analyze RUN --what composition` (issue 18) end to end on tiny factors runs: both views at every
selected checkpoint, tables with an epoch column, figures, metrics; bad input exits 2 with one line."""

import json

import pandas as pd
import pytest
import torch

from memlab.cli import main

torch.set_num_threads(1)
FAST = ["--classifier-steps", "30", "--classifier-images", "256", "--samples-per-class", "2", "--probe-folds", "2",
        "--n-boot", "20", "--threads", "1"]


def _train(out, **data):
    from memlab.iar.config import IARTrainConfig, ImageDataConfig, RunConfig
    from memlab.iar.train import train_run

    cfg = RunConfig(data=ImageDataConfig(data="factors", n_train=40, n_heldout=8, size=16, **data),
                    train=IARTrainConfig(arch="raster", epochs=3, tokenizer_epochs=1, width=32, depth=2, heads=2,
                                         codebook_size=16, latent_channels=4, tokenizer_channels=(8, 8, 8)))
    train_run(cfg, out, progress=False, figures=False)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("composition")
    return {"heldout": _train(root / "heldout", heldout_share=0.25),
            "arbitrary": _train(root / "arbitrary", arbitrary_labels=0.3, arbitrary_classes=2)}


def test_composition_measures_both_views_at_each_checkpoint(runs, capsys):
    run = runs["heldout"]
    assert main(["iar", "analyze", str(run), "--what", "composition", "--epochs", "1,3", *FAST, "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    res = run / "analyze"
    comp = metrics["analyses"]["composition"]
    assert comp["epochs"] == [1, 3] and [e["epoch"] for e in comp["by_epoch"]] == [1, 3]
    assert len(comp["heldout_combos"]) == 5 and comp["arbitrary_share"] == 0.0
    rates = pd.read_csv(res / "composition_rates.csv")
    assert sorted(rates["epoch"].unique()) == [1, 3] and len(rates) == 2 * 20
    assert rates.groupby("epoch")["heldout"].sum().tolist() == [5, 5]
    for col in ("shape_rate", "colour_rate", "both_rate"):
        assert rates[col].between(0, 1).all()
    out = pd.read_csv(res / "composition_output.csv")
    assert {"trained", "held-out", "held-out - trained"} <= set(out["group"])
    probes = pd.read_csv(res / "composition_probes.csv")
    assert {"train", "novel", "train->novel", "train->heldout"} <= set(probes["split"])
    assert {"real", "control"} == set(probes["probe"]) and set(probes["epoch"]) == {1, 3}
    assert probes["accuracy"].between(0, 1).all()
    # the summary reads the tables it was written from
    final = comp["by_epoch"][-1]["output"]["held-out"]["both"]["rate"]
    row = out[(out["epoch"] == 3) & (out["group"] == "held-out") & (out["measure"] == "both")]
    assert final == pytest.approx(float(row["rate"].iloc[0]))
    for f in ("composition", "composition_probes", "composition_training"):
        assert (res / f"{f}.png").read_bytes()[:4] == b"\x89PNG"
    # the classifiers are stored in the run and reused
    assert (run / "factor_classifiers").is_dir()
    assert main(["iar", "analyze", str(run), "--what", "composition", "--epochs", "3", *FAST, "--tag", "again",
                 "--json"]) == 0
    again = json.loads(capsys.readouterr().out)["analyses"]["composition"]
    assert again["classifiers"]["status"] == "loaded"
    assert again["by_epoch"][0]["output"] == comp["by_epoch"][-1]["output"]  # same seed, same numbers


def test_composition_splits_arbitrary_from_factor_labels(runs, capsys):
    run = runs["arbitrary"]
    assert main(["iar", "analyze", str(run), "--what", "composition", "--epochs", "3", *FAST]) == 0
    capsys.readouterr()
    arb = pd.read_csv(run / "analyze" / "composition_arbitrary.csv")
    assert {"arbitrary", "factor", "arbitrary - factor"} <= set(arb["group"])
    assert {"extracted", "copy"} == set(arb["measure"])
    n_arb = arb[(arb["group"] == "arbitrary") & (arb["measure"] == "extracted")]["n"].iloc[0]
    assert n_arb == 12  # round(0.3 x 40) training images carry an arbitrary label
    probes = pd.read_csv(run / "analyze" / "composition_probes.csv")
    assert "arbitrary" in set(probes["split"]) and "novel" not in set(probes["split"])


def _one_line(capsys, code, needle):
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and needle in err, err


def test_bad_input_exits_2_and_writes_nothing(runs, tmp_path, capsys):
    run = runs["heldout"]
    _one_line(capsys, main(["iar", "analyze", str(run), "--what", "composition", "--epochs", "7", "--tag", "x"]),
              "--epochs 7: no checkpoint of that epoch")
    _one_line(capsys, main(["iar", "analyze", str(run), "--what", "composition", "--probe-folds", "1", "--tag", "x"]),
              "--probe-folds must be")
    assert not (run / "analyze-x").exists()
    from memlab.iar.config import IARTrainConfig, ImageDataConfig, RunConfig
    from memlab.iar.train import train_run

    shapes = tmp_path / "shapes"
    train_run(RunConfig(data=ImageDataConfig(n_train=8, n_heldout=4, size=16),
                        train=IARTrainConfig(arch="raster", epochs=1, tokenizer_epochs=1, width=32, depth=1, heads=2,
                                             codebook_size=16, latent_channels=4, tokenizer_channels=(8, 8, 8))),
              shapes, progress=False, figures=False)
    _one_line(capsys, main(["iar", "analyze", str(shapes), "--what", "composition"]),
              "--what composition needs a run trained on --data factors, got --data shapes")
    assert not (shapes / "analyze").exists()
