"""The analyses on the fake lookup memorizer, whose memory is known by construction: each of its lookup units
fires on (position i, image k's token i - 1) and writes image k's token i, and every column of the K training
sequences is a permutation of the codes, so the previous token alone names the image."""

import numpy as np
import pytest
import torch

from memlab.iar.analyze.config import AnalyzeConfig
from memlab.iar.analyze.context import Context
from memlab.iar.analyze.perturb import nearest_other, code_vectors, perturb_counts, perturb_tokens, prefix_positions
from memlab.iar.analyze.registry import prepare, run_analyses
from memlab.iar.batching import continue_all
from memlab.iar.pipeline import RunData
from tests.iar.tiny_models import lookup_setting

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def setting():
    model, data, _, tokens = lookup_setting()
    return model, data, tokens


def test_perturbing_the_last_prefix_token_switches_the_continuation_to_the_image_it_names(setting):
    model, data, tokens = setting
    K, L = tokens.shape
    p = 4
    assert torch.equal(continue_all(model, tokens, data.train_labels, p), tokens)  # memorized exactly
    pert = tokens.clone()
    other = (torch.arange(K) + 1) % K
    pert[:, p - 1] = tokens[other, p - 1]  # the last prefix token of image k becomes image k+1's
    gen = continue_all(model, pert, data.train_labels, p)
    assert torch.equal(gen[:, p:], tokens[other, p:])  # ... so the continuation is image k+1's, as constructed
    early = tokens.clone()
    early[:, 0] = tokens[other, 0]  # an earlier prefix token is never looked up after the prefix
    assert torch.equal(continue_all(model, early, data.train_labels, p)[:, p:], tokens[:, p:])


def test_perturb_tokens_changes_exactly_m_prefix_tokens(setting):
    model, _, tokens = setting
    t = tokens.numpy()
    pos = prefix_positions(model, 4)
    assert pos.tolist() == [0, 1, 2, 3] and perturb_counts(model, 4, ()) == [1, 2, 4]
    near = nearest_other(code_vectors(model))  # grey levels: the nearest other code is a neighbouring level
    assert all(abs(int(near[v]) - v) == 1 for v in range(model.vocab_size))
    for mode in ("random", "nearest"):
        out = perturb_tokens(t, pos, 2, mode, model.vocab_size, near, np.random.default_rng(0))
        assert ((out != t).sum(1) == 2).all() and (out[:, 4:] == t[:, 4:]).all()


def test_perturb_analysis_drop_follows_the_construction(setting):
    model, data, tokens = setting
    cfg = AnalyzeConfig(what=("perturb",), ms=(4,), modes=("random",), n_boot=20)
    ctx = prepare(model, data, cfg)
    from memlab.iar.analyze.perturb import analyze

    res = analyze(ctx)
    table = res.tables["perturb_images"]
    # with all 4 prefix tokens replaced the last one always changes: every continuation follows another image
    assert table["changed"].all()
    # ... so each new continuation is the suffix of another image j (the one the new last token names): its
    # score is what image j's suffix shares with the true one, computed here independently
    from memlab.iar.analyze.scores import edit_score

    K, p = tokens.shape[0], 4
    suffix = tokens[:, p:].numpy()
    for b, score in zip(range(K), table["edit_score"]):
        others = {round(float(edit_score(suffix[[j]], suffix[[b]])[0]), 9) for j in range(K) if j != b}
        assert round(float(score), 9) in others
    assert table["drop"].to_numpy() == pytest.approx(1.0 - table["edit_score"].to_numpy())
    assert res.tables["redundancy"]["low_perturb"].all()  # the continuation changes at the smallest m
    drops = res.tables["perturb_drops"]
    assert drops["memorized"].all() and drops["drop"].iloc[0] == pytest.approx(table["drop"].mean())


def test_auc_is_1_on_a_model_that_memorizes_exactly_its_training_set(setting, tmp_path):
    model, data, _ = setting
    ctx = prepare(model, data, AnalyzeConfig(what=("inference", "entropy"), n_boot=50))
    metrics = run_analyses(ctx, tmp_path / "out")
    auc = metrics["analyses"]["inference"]
    assert auc["entropy-adjusted score"]["auc"] == 1.0 and auc["memorization score"]["auc"] == 1.0
    assert auc["entropy-adjusted score"]["auc_lo"] == pytest.approx(1.0)
    assert metrics["n_memorized"] == 8 and metrics["mean_edit_score"] == 1.0
    for f in ("scores.parquet", "scores.csv", "inference_auc.csv", "entropy_fits.csv", "metrics.json"):
        assert (tmp_path / "out" / f).is_file(), f
    assert (tmp_path / "out" / "inference.png").read_bytes()[:4] == b"\x89PNG"


def test_auc_is_chance_when_members_and_nonmembers_are_the_same_images(setting):
    model, data, tokens = setting
    # held-out = the training images themselves: no test can tell them apart
    same = RunData(data.train_images, data.train_labels, data.train_ids, data.copies, data.train_images,
                   data.train_labels)
    ctx = Context(model, same, AnalyzeConfig(n_boot=20), prefix=4)
    from memlab.iar.analyze.inference import analyze

    table = analyze(ctx).tables["inference_auc"]
    assert np.allclose(table["auc"], 0.5)


def test_rank_auc_equals_sklearns():
    from memlab.iar.analyze.inference import auc, rank_auc

    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1, 40).round(1), rng.normal(0, 1, 30).round(1)  # rounded: ties
    assert rank_auc(a, b) == pytest.approx(auc(a, b)) and 0.5 < auc(a, b) < 1
    assert rank_auc(np.ones(3), np.zeros(4)) == 1.0 and rank_auc(np.ones(3), np.ones(4)) == 0.5
