"""The yardstick on the fake lookup memorizer (memory in known units): editing the true units of the targets
removes T and spares C, random edits of the same size do not, and the matched-cost verdict says "better"."""

import numpy as np
import pytest
import pandas as pd
import torch

from memlab.iar.ablate import select_units
from memlab.iar.extract import ExtractConfig
from memlab.iar.interventions import ZeroUnits
from memlab.iar.verdict import fit_clouds, verdict_table
from memlab.iar.yardstick import make_baseline, score_edit
from tests.iar.tiny_models import lookup_setting

torch.set_num_threads(1)
K, L, V = 8, 16, 8
CLOUD_KS = (0.3, 0.6, 1, 2, 5, 10, 20, 40)


def _setting():
    model, data, sets, tokens = lookup_setting(4, K, L, V)
    base = make_baseline(model, data, sets, ExtractConfig(n_candidates=K), n_samples=64, pca_dim=4)
    return model, base


def _all_units(model):
    return pd.DataFrame([(name, b, u, 0.0) for b, (name, spec) in enumerate(model.units().items())
                         for u in range(spec.weight.shape[0])], columns=["layer", "block", "unit", "score"])


def _cloud(model, base, seed=0):
    rng, rows = np.random.default_rng(seed), []
    units = _all_units(model)
    for pct in CLOUD_KS:
        for draw in range(5):
            edit = ZeroUnits(select_units(units, pct, "random", rng=rng), params={"method": "random", "k": pct,
                                                                                   "draw": draw})
            rows.append(score_edit(model, edit, base))
    return pd.DataFrame(rows)


def test_true_units_remove_the_targets_spare_the_controls_and_win_at_matched_cost():
    model, base = _setting()
    assert base.metrics["T_extracted"] == 4 and base.metrics["C_extracted"] == 4  # all 8 are regurgitated
    assert base.metrics["cost_fd"] == 0 and base.metrics["specificity"] == 0
    state = {k: v.clone() for k, v in model.state_dict().items()}
    true_units = [k * L + i for k in range(4) for i in range(L)]  # the lookup units of images 0..3 = T
    true = score_edit(model, ZeroUnits({"block.0.mlp": true_units}, params={"method": "true"}), base)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())  # restored exactly
    assert (true["T_extracted"], true["C_extracted"], true["specificity"]) == (0, 4, 1.0)
    assert true["T_token_match"] < 0.5 < true["C_token_match"] == 1.0

    units = _all_units(model)
    same_size = [score_edit(model, ZeroUnits(select_units(units, 100 * 64 / len(units), "random",
                                                          rng=np.random.default_rng(d))), base) for d in range(5)]
    assert all(r["n_edited"] == 64 for r in same_size)
    assert np.mean([r["C_extracted"] for r in same_size]) < 3 and max(r["specificity"] for r in same_size) < 0.75

    cloud = _cloud(model, base)
    fits = fit_clouds(cloud.rename(columns={"T_extracted": "y"}), ["cost_sample_nll"], n_boot=200)
    verdicts = verdict_table(fits, pd.DataFrame([true]).rename(columns={"T_extracted": "y"})
                             .assign(method="true", condition="true"))
    (v,) = verdicts.itertuples()
    assert v.verdict == "better" and v.diff_hi < -2  # random edits at the same sample drift keep >= 2 more targets


def test_same_seed_same_yardstick_table():
    model, base = _setting()
    a, b = _cloud(model, base, seed=3), _cloud(model, base, seed=3)
    cols = [c for c in a.columns if "seconds" not in c]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    assert not a[cols].equals(_cloud(model, base, seed=4)[cols])


def test_a_measure_that_falls_as_edits_grow_is_not_used_as_a_cost():
    from memlab.iar.compare import cost_direction

    cloud = pd.DataFrame({"k": [1, 5, 10, 20, 1, 5, 10, 20], "factor": [0.0] * 4 + [0.5] * 4,
                          "rising": [0.1, 0.5, 1.0, 2.0, 0.05, 0.2, 0.5, 1.0],
                          "falling": [-0.1, -0.5, -1.0, -2.0, -0.05, -0.2, -0.5, -1.0]})
    assert cost_direction(cloud, "rising") == pytest.approx(1.0) and cost_direction(cloud, "falling") == pytest.approx(-1.0)


def test_stacked_edits_score_exactly_as_one_at_a_time():
    from memlab.iar.interventions import MeanAblateUnits, ScaleUnits, unit_means
    from memlab.iar.yardstick import score_edits

    model, base = _setting()
    rng, units = np.random.default_rng(3), _all_units(model)
    means = unit_means(model, base.heldout_tokens_MxL, base.heldout_labels_M)
    edits = [ZeroUnits({"block.0.mlp": list(range(16))}),  # the true units of image 0: T drops
             ScaleUnits(select_units(units, 20, "random", rng=rng), 0.5),
             MeanAblateUnits(select_units(units, 10, "random", rng=rng), means),
             ScaleUnits({}, 0.0)]  # edits nothing
    one = [score_edit(model, e, base, seconds=1.5) for e in edits]
    for batch_size in (7, 256):  # chunks that mix edits, and one pass
        stacked = score_edits(model, edits, base, seconds=[1.5] * 4, batch_size=batch_size)
        for a, b in zip(one, stacked):
            a, b = ({k: v for k, v in r.items() if k != "eval_seconds"} for r in (a, b))
            assert a.keys() == b.keys()
            assert all(a[k] == b[k] or (isinstance(a[k], float) and np.isnan(a[k]) and np.isnan(b[k])) for k in a), \
                {k: (a[k], b[k]) for k in a if a[k] != b[k]}
    assert one[0]["T_extracted"] == 3 and one[3]["T_extracted"] == 4 and one[3]["cost_fd"] == 0
