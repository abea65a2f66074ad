"""Extraction: a perfect memorizer gives up every candidate, an untrained model none."""

import numpy as np
import pytest
import torch

from memlab.iar.extract import (ExtractConfig, calibrate_threshold, extract, tokenize_all, unique_rows)
from memlab.iar.fake import FakeIAR

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
    assert (res.table["nn_ratio"] > 0.5).all()  # generations are not near any one image    assert res.table["token_match"].mean() < 0.5
    assert res.table["tf_acc"].max() < 0.6


def test_fixed_candidates_threshold_and_dedupe():
    tr, ytr, ho, yho = _data("raster")
    oracle = FakeIAR(oracle_tokens_KxL=tr, oracle_labels_K=ytr)
    res = extract(oracle, tr, ytr, np.arange(len(tr)), ho, yho, ExtractConfig(prefix=2), candidates=np.array([5, 1]))
    assert res.table["index"].tolist() == [5, 1] and res.prefix == 2
    sims = np.linspace(0, 1, 101)
    assert calibrate_threshold(sims, 0.05) == pytest.approx(0.95)
    assert (sims > calibrate_threshold(sims, 0.05)).mean() <= 0.05
    assert unique_rows(np.array([7, 3, 7, 9, 3])).tolist() == [0, 1, 3]


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
