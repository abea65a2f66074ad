"""UnitMem on a constructed model whose units have known selectivity."""

import numpy as np
import pandas as pd
import pytest
import torch

from memlab.iar.augment import AugmentConfig, augment
from memlab.iar.fake import FakeIAR

torch.set_num_threads(1)  # tiny ops; threads only contend on a shared CPU
from memlab.iar.unitmem import (UnitMemConfig, aggregate, compute_unitmem, top_count, top_mask, unit_scores,
                                 unitmem_scores)


def _images(K=6, planted=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.05, 0.45, size=(K, 3, 4, 4))
    x[planted, :, 1:3, 1:3] = 1.0  # only image 3 has bright pixels (tokens 6..7 of 8 levels)
    return torch.tensor(x, dtype=torch.float32)


def _constructed_model(arch="raster"):
    model = FakeIAR(arch=arch, side=4, vocab=8, n_blocks=2, hidden=3)
    with torch.no_grad():
        for blk in model.blocks:
            blk.fc.weight.zero_(); blk.fc.bias.zero_(); blk.proj.weight.zero_()
        fc = model.blocks[0].fc
        fc.weight[0, 6] = fc.weight[0, 7] = 1.0  # fires only when the previous token is bright
        fc.bias[1] = 1.0  # fires equally for every image
        pos0 = model.vocab_size + 1 + model.n_classes
        fc.weight[2, pos0:] = 0.5  # reads only the position: equal for every image
        model.blocks[1].fc.bias[:] = 2.0
    return model


@pytest.mark.parametrize("arch", ["raster", "next-scale"])
def test_planted_unit_scores_one_with_kstar_3_and_uniform_units_zero(arch):
    model = _constructed_model(arch)
    images, labels = _images(), torch.tensor([0, 1, 0, 1, 0, 1])
    ids = np.arange(100, 106)
    table = compute_unitmem(model, images, labels, ids, UnitMemConfig(batch_size=4), progress=False)
    n_scales = len(model.scale_slices())
    assert len(table) == 2 * 3 * n_scales
    units = unit_scores(table).set_index(["layer", "unit"])
    assert units.loc[("block.0.mlp", 0), "score"] > 0.99
    assert units.loc[("block.0.mlp", 0), "k_star"] == 3
    assert units.loc[("block.0.mlp", 0), "image_id"] == 103
    for key in [("block.0.mlp", 1), ("block.0.mlp", 2), ("block.1.mlp", 0)]:
        assert units.loc[key, "score"] < 1e-6, key
    per_block, per_sb = aggregate(table, top_pct=100 / 6)  # top 1 of 6 units
    assert per_block.set_index("block").loc[0, "top_share"] == 1.0
    assert per_sb["n_units"].sum() == len(table)


def test_streaming_batches_and_median_agree_with_closed_form():
    model = _constructed_model()
    images, labels = _images(K=5, planted=3), torch.tensor([0, 1, 0, 1, 0])
    ids = np.arange(5)
    cfg = UnitMemConfig(augment=AugmentConfig(n_aug=4))
    t1 = compute_unitmem(model, images, labels, ids, cfg, progress=False)
    t2 = compute_unitmem(model, images, labels, ids, UnitMemConfig(augment=AugmentConfig(n_aug=4), batch_size=2),
                         progress=False)
    np.testing.assert_allclose(t1["score"], t2["score"], rtol=1e-12, atol=1e-12)
    mu_KxU = np.array([[1.0, 2.0], [3.0, 2.0], [0.0, 2.0], [1.0, 2.0]])
    score, kstar, mu_max, mu_rest = unitmem_scores(mu_KxU, "mean")
    assert kstar[0] == 1 and np.isclose(score[0], (3 - 2 / 3) / (3 + 2 / 3)) and score[1] == 0
    score_med, *_ = unitmem_scores(mu_KxU, "median")
    assert np.isclose(score_med[0], (3 - 1) / (3 + 1))
    assert unitmem_scores(np.zeros((3, 2)))[0].tolist() == [0.0, 0.0]


def test_augmentations_depend_only_on_seed_id_and_index():
    x = _images(K=4)
    cfg = AugmentConfig(n_aug=3, seed=7)
    a = augment(x, [10, 11, 12, 13], 2, cfg)
    b = augment(x[[2, 0]], [12, 10], 2, cfg)
    assert torch.equal(a[[2, 0]], b)
    assert torch.equal(augment(x, [10, 11, 12, 13], 0, cfg), x)
    assert not torch.equal(a, x) and a.min() >= 0 and a.max() <= 1
    assert (a - x).abs().mean() < 0.2  # small edits only


def test_interrupted_pass_resumes_from_its_checkpoint(tmp_path):
    model = _constructed_model("next-scale")
    images, labels, ids = _images(K=6), torch.tensor([0, 1, 0, 1, 0, 1]), np.arange(6)
    cfg = UnitMemConfig(augment=AugmentConfig(n_aug=3), batch_size=2)
    full = compute_unitmem(model, images, labels, ids, cfg, progress=False)

    calls = {"n": 0}
    forward = model.teacher_forced_logits

    def crash_in_third_batch(tokens, y):
        calls["n"] += 1
        if calls["n"] == 2 * 3 + 1:  # first pass of the third batch
            raise KeyboardInterrupt
        return forward(tokens, y)

    model.teacher_forced_logits = crash_in_third_batch
    with pytest.raises(KeyboardInterrupt):
        compute_unitmem(model, images, labels, ids, cfg, progress=False, checkpoint=tmp_path)
    # sums and progress live in one atomically written file, so they can never disagree
    assert [p.name for p in tmp_path.iterdir()] == ["unitmem_state.npz"]
    model.teacher_forced_logits = forward
    calls["n"] = 0
    model.teacher_forced_logits = lambda t, y: (calls.__setitem__("n", calls["n"] + 1), forward(t, y))[1]
    resumed = compute_unitmem(model, images, labels, ids, cfg, progress=False, checkpoint=tmp_path)
    assert calls["n"] == 3  # only the last batch's 3 passes were recomputed
    np.testing.assert_array_equal(resumed["score"].to_numpy(), full["score"].to_numpy())
    other = compute_unitmem(model, images, labels, ids, UnitMemConfig(augment=AugmentConfig(n_aug=2), batch_size=2),
                            progress=False, checkpoint=tmp_path)  # another config: starts over
    assert calls["n"] == 3 + 3 * 2
    assert not np.array_equal(other["mu_max"].to_numpy(), full["mu_max"].to_numpy())


def test_top_count_rounds_to_nearest_with_at_least_one_and_top_mask_uses_it():
    assert top_count(1000, 10) == 100 and top_count(256, 10) == 26 and top_count(10, 100) == 10
    assert top_count(10, 35) == 4 and top_count(10, 25) == 2  # halves round to even (Python's round)
    assert top_count(5, 1) == 1 and top_count(1, 0.001) == 1  # never empty
    scores = pd.Series([0.3, 0.9, 0.1, 0.9, 0.5, 0.2, 0.8, 0.0, 0.4, 0.6])
    assert np.flatnonzero(top_mask(scores, 35)).tolist() == [1, 3, 6, 9]  # 4 units; the tie keeps both 0.9s
    assert np.flatnonzero(top_mask(scores, 25)).tolist() == [1, 3]
    assert np.flatnonzero(top_mask(-scores, 1)).tolist() == [7]
