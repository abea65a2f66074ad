"""Extraction: a perfect memorizer gives up every candidate, an untrained model none."""

import numpy as np
import pytest
import torch

import torch.nn.functional as F

from memlab.iar.batching import tokenize_all
from memlab.iar.extract import ExtractConfig, calibrate_threshold, extract
from memlab.iar.fake import FakeIAR
from memlab.iar.models import MaskedTokenModel
from memlab.iar.pipeline import fold_duplicates
from memlab.iar.quality import heldout_nll

torch.set_num_threads(1)  # tiny ops; threads only contend on a shared CPU


def _data(arch, n_train=24, n_heldout=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n_train + n_heldout, 3, 4, 4, generator=g)
    labels = torch.randint(0, 2, (n_train + n_heldout,), generator=g)
    probe = FakeIAR(arch=arch)
    tokens = tokenize_all(probe, images)
    return tokens[:n_train], labels[:n_train], tokens[n_train:], labels[n_train:]


@pytest.mark.parametrize("arch", ["raster", "next-scale"])
def test_oracle_memorizer_extracts_every_candidate(arch):
    tr, ytr, ho, yho = _data(arch)
    oracle = FakeIAR(arch=arch, oracle_tokens_KxL=tr, oracle_labels_K=ytr)
    prefix = 2 if arch == "next-scale" else 4  # scales 1x1 + 2x2, or 4 of 16 tokens: enough to tell images apart
    res = extract(oracle, tr, ytr, np.arange(len(tr)) + 500, ho, yho, ExtractConfig(n_candidates=16, prefix=prefix))
    t = res.table
    assert len(t) == 16 and res.n_extracted == 16
    assert (t["tf_acc"] == 1.0).all() and (t["token_match"] == 1.0).all() and (t["pixel_sim"] == 1.0).all()
    assert res.threshold < 1.0 and t["image_id"].min() >= 500 and (t["nn_ratio"] == 0).all()
    assert res.summary()["n_extracted"] == 16


@pytest.mark.parametrize("arch", ["raster", "next-scale"])
def test_untrained_model_extracts_nothing(arch):
    tr, ytr, ho, yho = _data(arch)
    model = FakeIAR(arch=arch, seed=3)
    prefix = 2 if arch == "next-scale" else 4
    res = extract(model, tr, ytr, np.arange(len(tr)), ho, yho, ExtractConfig(n_candidates=16, prefix=prefix))
    assert res.n_extracted == 0
    assert (res.table["nn_ratio"] > 0.5).all()  # generations are not near any one image
    assert res.table["token_match"].mean() < 0.5
    assert res.table["tf_acc"].max() < 0.6


def test_fixed_candidates_and_threshold():
    tr, ytr, ho, yho = _data("raster")
    oracle = FakeIAR(oracle_tokens_KxL=tr, oracle_labels_K=ytr)
    res = extract(oracle, tr, ytr, np.arange(len(tr)), ho, yho, ExtractConfig(prefix=2), candidates=np.array([5, 1]))
    assert res.table["index"].tolist() == [5, 1] and res.prefix == 2
    sims = np.linspace(0, 1, 101)
    assert calibrate_threshold(sims, 0.05) == pytest.approx(0.95)
    assert (sims > calibrate_threshold(sims, 0.05)).mean() <= 0.05


def test_fold_duplicates_counts_planted_copies_once():
    ids = np.array(["a", "b", "a#copy1", "c", "b#copy1", "a#copy2", "7"])
    images = torch.arange(7.0)[:, None, None, None].expand(7, 3, 2, 2)
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 3])
    heldout = torch.zeros(2, 3, 2, 2)
    d = fold_duplicates(images, labels, heldout, torch.tensor([0, 1]), ids)
    assert d.train_ids.tolist() == ["a", "b", "c", "7"]  # first occurrences, in training order
    assert d.copies.tolist() == [3, 2, 1, 1] and d.duplicated_ids == {"a", "b"}
    assert d.train_images[:, 0, 0, 0].tolist() == [0.0, 1.0, 3.0, 6.0] and d.train_labels.tolist() == [0, 1, 2, 3]
    assert d.heldout_images is heldout
    ints = fold_duplicates(images[:5], labels[:5], heldout, torch.tensor([0, 1]), np.array([7, 3, 7, 9, 3]))
    assert ints.train_ids.tolist() == ["7", "3", "9"] and ints.copies.tolist() == [2, 2, 1]
    assert ints.train_images[:, 0, 0, 0].tolist() == [0.0, 1.0, 3.0]


def _ce(model, tokens_BxL, labels_B, keep_L):
    logits_BxLxV = model.teacher_forced_logits(tokens_BxL, labels_B)[:, keep_L]
    return float(F.cross_entropy(logits_BxLxV.flatten(0, 1), tokens_BxL[:, keep_L].flatten()))


def test_extraction_and_nll_positions_come_from_the_model_interface():
    torch.manual_seed(0)
    fake, fake_ns = FakeIAR("raster", seed=2), FakeIAR("next-scale", seed=2)  # 16 tokens; scales 1, 4, 16
    masked = MaskedTokenModel(vocab_size=8, grid=3, num_classes=2, width=16, depth=1, heads=2, mlp_ratio=2,
                              image_size=12).eval()
    generated = lambda m, prefix: (~m.revealed_mask(prefix)).nonzero().flatten().tolist()
    ranked = lambda m, prefix: m.ranking_positions(prefix).nonzero().flatten().tolist()
    assert generated(fake, 4) == list(range(4, 16)) and ranked(fake, 4) == list(range(4, 16))
    assert generated(fake_ns, 2) == list(range(5, 21)) and generated(fake_ns, 1) == list(range(1, 21))
    assert ranked(fake_ns, 1) == list(range(5, 21))  # finest scale
    order = masked.reveal_order_L
    assert generated(masked, 2) == sorted(order[2:].tolist())
    assert ranked(masked, 2) == sorted(order[9 // 2:].tolist())  # the masked half of teacher forcing
    assert ranked(masked, 6) == sorted(order[6:].tolist())  # ... less what a longer prefix reveals
    with torch.no_grad():
        for model in (fake, fake_ns, masked):
            t = torch.randint(0, 8, (5, model.seq_len)); y = torch.tensor([0, 1, 1, 0, 1])
            want = _ce(model, t, y, model.scored_positions())
            assert heldout_nll(model, t, y, batch_size=2) == pytest.approx(want, rel=1e-5)
            if model is masked:  # the revealed half is a one-hot on the given token: nearly zero loss
                assert want > 1.0 and _ce(model, t, y, ~model.scored_positions()) < 1e-3


def test_ranking_breaks_accuracy_ties_by_log_likelihood():
    from memlab.iar.extract import rank_candidates

    class Confident(FakeIAR):
        """Always right; its confidence in sample b's true tokens is margin[b]."""

        def teacher_forced_logits(self, tokens_BxL, labels_B):
            margin_B = labels_B.float()
            return torch.nn.functional.one_hot(tokens_BxL, self.vocab_size).float() * margin_B[:, None, None]

    tr, _, _, _ = _data("raster", n_train=5)
    order, acc, ll = rank_candidates(Confident(), tr, torch.tensor([1, 4, 2, 9, 3]), prefix=4)
    assert (acc == 1.0).all() and order.tolist() == [3, 1, 4, 2, 0]
    assert ll[3] == pytest.approx(-np.log(1 + 7 * np.exp(-9.0)), rel=1e-3)  # float32 log-softmax
