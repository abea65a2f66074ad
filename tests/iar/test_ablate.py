"""Ablation on a model whose memory lives in known units, and the quality measures it reports."""

import numpy as np
import pandas as pd
import pytest
import torch

from memlab.errors import UsageError
from memlab.iar.ablate import AblateConfig, AblationData, run_ablation, select_units, summarize
from memlab.iar.extract import ExtractConfig
from memlab.iar.fake import FakeIAR, lookup_memorizer
from memlab.iar.quality import QualityConfig, frechet_distance, frechet_from_moments, heldout_nll
from memlab.iar.unitmem import UnitMemConfig, compute_unitmem, unit_scores

torch.set_num_threads(1)  # tiny ops; threads only contend on a shared CPU

K, L, V = 6, 16, 8


def _memorizer_and_data(seed=0):
    g = torch.Generator().manual_seed(seed)
    # at every position the previous tokens of the K images differ, so the lookup units never collide
    tokens = torch.stack([torch.randperm(V, generator=g)[:K] for _ in range(L)], 1)
    heldout = torch.randint(0, V, (48, L), generator=g)
    y, yh = torch.randint(0, 2, (K,), generator=g), torch.randint(0, 2, (48,), generator=g)
    model = lookup_memorizer(tokens, n_filler=64)
    data = AblationData(tokens, y, np.arange(K) + 10, heldout, yh, model.decode(heldout))
    return model, data


def test_top_edit_stops_extraction_where_random_and_bottom_do_not():
    model, data = _memorizer_and_data()
    table = compute_unitmem(model, model.decode(data.train_tokens), data.train_labels, data.train_ids,
                            UnitMemConfig(), progress=False)
    units = unit_scores(table)
    lookup = (units["layer"] == "block.0.mlp") & (units["unit"] < K * L)
    assert units.loc[lookup, "score"].mean() > units.loc[~lookup, "score"].mean() + 0.2
    before = {k: v.clone() for k, v in model.state_dict().items()}
    saved = []
    cfg = AblateConfig(top_pct=10, factor=0.0, sweep=(), n_random=3)
    df = run_ablation(model, units, data, cfg, ExtractConfig(n_candidates=K),
                      QualityConfig(n_generate=24, pca_dim=4), on_row=saved.append, progress=False)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # edits were undone
    assert len(df) == 1 + 1 + 1 + 3 + 2 and len(saved) == len(df)
    s = summarize(df, 10)
    assert s["baseline"]["n_extracted"] == K
    assert s["top"]["n_extracted_mean"] == 0
    assert s["bottom"]["n_extracted_mean"] == K
    assert s["random"]["n_extracted_mean"] > s["top"]["n_extracted_mean"] and s["random"]["n_draws"] == 3
    assert s["per_block"][0]["n_extracted"] < K and s["per_block"][1]["n_extracted"] == K  # memory is in block 0
    assert df["n_edited"].tolist() == [0, 32, 32, 32, 32, 32, 16, 16]  # 10% of 320 units; of 160 per block

    # resuming from the saved rows recomputes nothing and gives the same table
    done = {r["key"]: r for r in saved}
    calls = []
    df2 = run_ablation(model, units, data, cfg, ExtractConfig(n_candidates=K), QualityConfig(n_generate=24, pca_dim=4),
                       done=done, on_row=calls.append, progress=False)
    assert calls == [] and df2["n_extracted"].tolist() == df["n_extracted"].tolist()

    # recomputed from scratch with the same seed: the same numbers
    df3 = run_ablation(model, units, data, cfg, ExtractConfig(n_candidates=K), QualityConfig(n_generate=24, pca_dim=4),
                       progress=False)
    cols = ["n_extracted", "threshold", "pixel_sim_mean", "nll", "fd"]
    pd.testing.assert_frame_equal(df3[cols], df[cols])


def test_select_units_top_bottom_random_and_per_block():
    units = pd.DataFrame({"layer": ["a"] * 10 + ["b"] * 10, "block": [0] * 10 + [1] * 10,
                          "unit": list(range(10)) * 2, "score": np.r_[np.linspace(0, 0.9, 10), np.linspace(0, 0.09, 10)]})
    assert {k: v.tolist() for k, v in select_units(units, 10, "top").items()} == {"a": [8, 9]}
    assert {k: v.tolist() for k, v in select_units(units, 10, "bottom").items()} == {"a": [0], "b": [0]}
    per = select_units(units, 20, "top", per_block=True)
    assert per["a"].tolist() == [8, 9] and per["b"].tolist() == [8, 9]
    r1 = select_units(units, 50, "random", rng=np.random.default_rng(1))
    r2 = select_units(units, 50, "random", rng=np.random.default_rng(1))
    assert sum(len(v) for v in r1.values()) == 10 and all(np.array_equal(r1[k], r2[k]) for k in r1)
    # top_count per block: 25% of 10 rounds to 2 (half to even), 35% of 10 to 4
    r3 = select_units(units, 25, "random", per_block=True, rng=np.random.default_rng(2))
    assert {k: len(v) for k, v in r3.items()} == {"a": 2, "b": 2}
    assert {k: len(v) for k, v in select_units(units, 35, "top", per_block=True).items()} == {"a": 4, "b": 4}
    for bad in (dict(top_pct=0), dict(top_pct=100.5), dict(controls=("random", "top")), dict(factor=-1)):
        with pytest.raises(UsageError):
            AblateConfig(**bad)


def test_frechet_distance_closed_form_and_nll():
    mu1, mu2 = np.array([0.0, 1.0]), np.array([1.0, 3.0])
    c1, c2 = np.diag([1.0, 4.0]), np.diag([9.0, 1.0])
    # diagonal covariances: |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2
    assert frechet_from_moments(mu1, c1, mu2, c2) == pytest.approx(5.0 + 4.0 + 1.0, rel=1e-9)
    rng = np.random.default_rng(0)
    a = rng.normal(mu1, [1.0, 2.0], size=(20000, 2))
    b = rng.normal(mu2, [3.0, 1.0], size=(20000, 2))
    assert frechet_distance(a, b) == pytest.approx(10.0, rel=0.03)
    assert frechet_distance(a, a, pca_dim=2) == pytest.approx(0.0, abs=1e-6)
    model, data = _memorizer_and_data()
    # the lookup memorizer is almost certain of its training tokens; an untrained fake is not
    assert heldout_nll(model, data.train_tokens, data.train_labels) < 0.2  # ln 8 = 2.08 is chance
    assert heldout_nll(FakeIAR(), data.train_tokens, data.train_labels) > 1.0
