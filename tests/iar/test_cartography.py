"""Data cartography (issue 14 item 3): forget events and difficulty on hand-made histories, pruning shares,
the per-epoch table of a training run (resume continues it), pruning and down-weighting in training, and the
bad-input table of the new training options."""

import numpy as np
import pandas as pd
import pytest
import torch

from memlab.cli import main
from memlab.iar import checkpoint
from memlab.iar import train as train_mod
from memlab.iar.config import IARTrainConfig, ImageDataConfig, RunConfig
from memlab.iar.mitigate import cartography as carto
from memlab.iar.mitigate import trainset
from memlab.iar.train import train_run

torch.set_num_threads(1)


def test_forget_events_on_a_hand_made_accuracy_history():
    acc_ExN = np.array([[0.95, 0.10, 0.95, 0.90, 0.2],
                        [0.50, 0.95, 0.95, 0.89, 0.2],
                        [0.95, 0.20, 0.50, 0.90, 0.2],
                        [0.10, 0.95, 0.95, 0.91, 0.2],
                        [0.95, 0.95, 0.95, 0.50, 0.2]])
    # image 0: learned at 1, 3, 5, lost at 2 and 4 -> 2; image 1: learned at 2 and 4, lost at 3 -> 1;
    # image 2: lost once at 3 -> 1; image 3: 0.90 counts as learned (>=), lost at 2 and 5 -> 2; image 4 never learned
    assert carto.forget_events(acc_ExN, 0.9).tolist() == [2, 1, 1, 2, 0]
    assert carto.forget_events(acc_ExN, 0.4).tolist() == [1, 1, 0, 0, 0]  # image 0 is lost at 4 only
    assert carto.forget_events(acc_ExN[:1], 0.9).tolist() == [0, 0, 0, 0, 0]  # one epoch: nothing to forget
    loss_ExN = np.arange(15.0).reshape(3, 5)
    np.testing.assert_allclose(carto.difficulty(loss_ExN, 2), [2.5, 3.5, 4.5, 5.5, 6.5])
    np.testing.assert_allclose(carto.difficulty(loss_ExN, 10), loss_ExN.mean(0))  # fewer epochs than asked


def _table(n_ids: int = 13, epochs: int = 6, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = [f"img/{i:03d}" for i in range(n_ids)]
    rows = [{"epoch": e, "image_id": i, "copies": 3 if k < 2 else 1, "loss": float(rng.uniform(0, 5)),
             "acc": float(rng.uniform(0.5, 1.0))} for e in range(1, epochs + 1) for k, i in enumerate(ids)]
    return pd.DataFrame(rows)


def test_scores_and_quadrants_follow_the_table():
    table = _table()
    per = carto.scores(table, 0.9, 2)
    acc_ExN, ids, epochs = carto.matrix(table, "acc")
    assert ids == [f"img/{i:03d}" for i in range(13)] and epochs.tolist() == [1, 2, 3, 4, 5, 6]
    assert per["memorization"].tolist() == carto.forget_events(acc_ExN, 0.9).tolist()
    np.testing.assert_allclose(per["difficulty"], carto.matrix(table, "loss")[0][:2].mean(0))
    hard = per["difficulty"] > per["difficulty"].median()
    forgotten = per["memorization"] > per["memorization"].median()
    assert (per["quadrant"] == "hard, forgotten").sum() == (hard & forgotten).sum()
    assert per["copies"].tolist()[:3] == [3, 3, 1]


@pytest.mark.parametrize("pct,n,expected", [(10, 128, 13), (10, 125, 13), (10, 124, 12), (25, 13, 3), (50, 13, 7),
                                            (99, 13, 13)])
def test_pruning_removes_exactly_the_named_share(pct, n, expected):
    per = carto.scores(_table(n_ids=n), 0.9, 2)
    assert carto.n_pruned(n, pct) == expected
    for by in ("memorization", "difficulty", "random"):
        chosen = carto.select_pruned(per, pct, by, seed=3)
        assert len(chosen) == expected == len(set(chosen)), by
    mem = carto.select_pruned(per, pct, "memorization")
    worst_kept = per.set_index("image_id").drop(mem)["memorization"].max() if expected < n else -1
    assert per.set_index("image_id").loc[mem, "memorization"].min() >= worst_kept  # the most forgotten go
    hard = carto.select_pruned(per, pct, "difficulty")
    assert set(hard) == set(per.nlargest(expected, "difficulty")["image_id"])
    assert carto.select_pruned(per, pct, "random", 3) == carto.select_pruned(per, pct, "random", 3)
    if 0 < expected < n - 1:
        assert carto.select_pruned(per, pct, "random", 3) != carto.select_pruned(per, pct, "random", 4)


class _MeanLoss:
    """training_loss = the mean of the first token of each row: per-image losses we can add by hand."""

    def training_loss(self, tokens_BxL, labels_B, generator):
        return tokens_BxL[:, 0].float().mean()


def test_weighted_loss_is_the_weighted_sum_over_the_batch():
    tokens = torch.tensor([[1], [2], [3], [4]])
    w = np.array([1.0, 0.5, 1.0, 0.0])
    got = trainset.weighted_loss(_MeanLoss(), tokens, torch.zeros(4), None, w)
    assert float(got) == pytest.approx((1 + 0.5 * 2 + 3 + 0) / 4)
    assert float(trainset.weighted_loss(_MeanLoss(), tokens, torch.zeros(4), None, np.ones(4))) == 2.5
    assert float(trainset.weighted_loss(_MeanLoss(), tokens, torch.zeros(4), None, None)) == 2.5


def _tiny(tmp_path, epochs=3, **train) -> RunConfig:
    return RunConfig(ImageDataConfig(n_train=8, n_heldout=4, duplicates=3, n_duplicated=2),
                     IARTrainConfig(arch="raster", epochs=epochs, tokenizer_epochs=1, batch_size=4, lr=1e-2, width=32,
                                    depth=1, heads=2, codebook_size=16, latent_channels=4,
                                    tokenizer_channels=(8, 16, 16), **train))


def test_training_records_the_table_and_a_resumed_run_continues_it(tmp_path, monkeypatch):
    cfg = _tiny(tmp_path, epochs=3, cartography=True)
    full = train_run(cfg, tmp_path / "a", progress=False, figures=True)
    table = carto.read_table(tmp_path / "a")
    assert len(table) == 3 * 8 and table["epoch"].tolist() == [1] * 8 + [2] * 8 + [3] * 8  # 8 ids, copies folded
    assert sorted(table["copies"].unique().tolist()) == [1, 3]
    assert (tmp_path / "a" / carto.FIGURE).stat().st_size > 1000
    # the ranking-position accuracy of the planted duplicates is the training row's target_acc
    last = table[(table["epoch"] == 3) & (table["copies"] > 1)]
    assert last["acc"].mean() == pytest.approx(full["model"][-1]["target_acc"], abs=1e-6)

    real_save, calls = checkpoint.save_stage, {"n": 0}

    def crash_after_2_model_epochs(stage_dir, epoch, *a, **k):  # 1 tokenizer epoch + 2 model epochs, then "kill"
        real_save(stage_dir, epoch, *a, **k)
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_mod, "save_stage", crash_after_2_model_epochs)
    with pytest.raises(KeyboardInterrupt):
        train_run(cfg, tmp_path / "b", progress=False, figures=False)
    assert carto.read_table(tmp_path / "b")["epoch"].max() == 2
    monkeypatch.setattr(train_mod, "save_stage", real_save)
    train_run(cfg, tmp_path / "b", resume=True, progress=False, figures=False)
    pd.testing.assert_frame_equal(carto.read_table(tmp_path / "b"), table)

    # pruning 25% of the 8 ids by memorization removes 2 ids with all their copies; down-weighting keeps them
    pruned = train_run(_tiny(tmp_path, epochs=1, prune_from=str(tmp_path / "a"), prune=25.0),
                       tmp_path / "p", progress=False, figures=False)
    info = pruned["training_set"]["prune"]
    per = carto.scores(table, 0.9, 5)
    assert info["ids"] == carto.select_pruned(per, 25.0, "memorization") and info["n_ids"] == 2
    copies = per.set_index("image_id").loc[info["ids"], "copies"].sum()
    assert info["n_rows"] == copies and pruned["training_set"]["rows"] == 12 - copies
    weighted = trainset.select(_tiny(tmp_path, prune_from=str(tmp_path / "a"), prune=25.0, prune_weight=0.5).train,
                               torch.zeros(12, 3, 16, 16), [str(i) for i in _ids()])
    assert len(weighted.keep) == 12 and sorted(set(weighted.weights.tolist())) == [0.5, 1.0]
    assert (weighted.weights == 0.5).sum() == copies


def _ids():
    from memlab.iar.data import image_set_tensors  # the image set of _tiny

    return image_set_tensors(ImageDataConfig(n_train=8, n_heldout=4, duplicates=3, n_duplicated=2))[4]


def test_reweighting_multiplies_the_weight_of_images_below_the_loss():
    table = pd.DataFrame({"epoch": [1, 1, 2, 2], "image_id": ["a", "b", "a", "b"], "copies": [2, 1, 2, 1],
                          "loss": [0.1, 0.1, 0.5, 2.0], "acc": [1, 1, 1, 0.2]})
    w = trainset.reweighted(None, ["a", "b", "a#copy1"], table, 1.0, 0.1)  # the last epoch counts: a only
    assert w.tolist() == [0.1, 1.0, 0.1]
    assert trainset.reweighted(np.array([0.5, 1.0, 0.5]), ["a", "b", "a#copy1"], table, 1.0, 0.1).tolist() == \
        pytest.approx([0.05, 1.0, 0.05])


TINY = ["--n-train", "8", "--n-heldout", "4", "--epochs", "1", "--tokenizer-epochs", "1", "--width", "32",
        "--depth", "1", "--heads", "2", "--codebook-size", "16", "--tokenizer-channels", "8,16,16",
        "--latent-channels", "4", "--batch-size", "4"]


@pytest.mark.parametrize("flags,needle", [
    (["--prune", "0"], "--prune"), (["--prune", "100"], "--prune"), (["--prune", "nan"], "--prune"),
    (["--by", "loss"], "--by"), (["--prune-weight", "1"], "--prune-weight"),
    (["--prune-weight", "-0.1"], "--prune-weight"), (["--forget-threshold", "0"], "--forget-threshold"),
    (["--forget-threshold", "1.5"], "--forget-threshold"), (["--difficulty-epochs", "0"], "--difficulty-epochs"),
    (["--reweight-below", "0"], "--reweight-below"), (["--reweight-below", "inf"], "--reweight-below"),
    (["--reweight-factor", "1"], "--reweight-factor"), (["--dedup-threshold", "0"], "--dedup-threshold"),
    (["--dedup-threshold", "-1"], "--dedup-threshold"),
    (["--prune-from", "MISSING"], "does not exist"), (["--prune-from", "NOCARTO"], "--cartography"),
])
def test_bad_mitigation_options_exit_2_with_one_line_and_write_nothing(flags, needle, tmp_path, capsys):
    (tmp_path / "nocarto").mkdir()
    flags = [str(tmp_path / "missing") if f == "MISSING" else str(tmp_path / "nocarto") if f == "NOCARTO" else f
             for f in flags]
    out = tmp_path / "out"
    assert main(["iar", "train", *TINY, *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not out.exists()
