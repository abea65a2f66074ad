"""Phase analysis: interpolated crossing, bracket, bootstrap interval, prediction-in-interval verdicts."""

import math

import numpy as np
import pandas as pd
import pytest

from memlab.sweep.phase import bootstrap_crossing, bracket, crossing, observed_transition, summarize


def rows(x_S, ratios_SxR, n_samples, key="k", n_train=100):
    recs = []
    for x, rs in zip(x_S, ratios_SxR):
        for seed, r in enumerate(rs):
            recs.append({"data_key": key, "size": int(round(x * n_train)), "m_over_n": x, "seed": seed,
                         "memorization_ratio": r, "n_samples": n_samples, "status": "ok", "dataset": "gmm",
                         "dim": 5.0, "components": 2, "n_train": n_train, "variance": 1.0, "data_seed": 0,
                         "model": "mixture"})
    return pd.DataFrame(recs)


def test_crossing_interpolates_linearly_and_flags_the_grid_edges():
    x = np.array([0.1, 0.2, 0.4, 0.8])
    assert crossing(x, np.array([0.0, 0.2, 0.6, 1.0])) == pytest.approx(0.2 + 0.3 / 0.4 * 0.2)
    assert crossing(x, np.array([0.5, 0.7, 0.9, 1.0])) == -math.inf
    assert crossing(x, np.array([0.0, 0.1, 0.2, 0.3])) == math.inf
    assert bracket(x, np.array([0.0, 0.05, 0.6, 0.95])) == (0.2, 0.8)
    assert bracket(x, np.array([0.3, 0.4, 0.6, 0.8])) == (None, None)


def test_identical_seeds_without_sample_noise_give_a_zero_width_interval():
    x = [0.1, 0.3, 0.5, 0.7]
    obs = observed_transition(rows(x, [[0.0] * 3, [0.2] * 3, [0.8] * 3, [1.0] * 3], n_samples=0), n_boot=200)
    assert obs["m_over_n"] == pytest.approx(0.3 + 0.3 / 0.6 * 0.2)
    assert obs["interval"] == [pytest.approx(obs["m_over_n"])] * 2
    assert obs["bracket"] == pytest.approx([0.1, 0.7]) and obs["where"] == "inside the grid"


def test_bootstrap_interval_covers_the_true_crossing_and_shrinks_with_more_samples():
    rng = np.random.default_rng(0)
    x = np.linspace(0.1, 1.0, 10)
    true = 1 / (1 + np.exp(-(x - 0.45) * 12))
    truth = crossing(x, true)  # the crossing of the noise-free curve on this grid
    widths, covered = {}, 0
    for n in (50, 800):
        for rep in range(10):
            r = [rng.binomial(n, p, size=4) / n for p in true]
            obs = observed_transition(rows(x, r, n_samples=n), n_boot=400, seed=rep)
            lo, hi = obs["interval"]
            covered += lo <= truth <= hi
            widths.setdefault(n, []).append(hi - lo)
    assert covered >= 17  # 95% intervals: at most a few misses in 20
    assert np.mean(widths[800]) < 0.5 * np.mean(widths[50])


def test_bootstrap_counts_replicates_that_do_not_cross():
    x = np.array([0.1, 0.2])
    b = bootstrap_crossing(x, [np.array([0.4, 0.6]), np.array([0.45, 0.55])], [np.zeros(2, int)] * 2,
                           n_boot=500, seed=1)
    # each replicate's first mean is 0.4, 0.5 or 0.6: 0.5 and 0.6 already cross (-inf) with prob 3/4
    assert np.mean(b == -math.inf) == pytest.approx(0.75, abs=0.06)


def test_summary_sets_the_prediction_beside_the_observation():
    x = [0.1, 0.3, 0.5, 0.7]
    # a: sample noise gives the observation (0.4) an interval; b: exact ratios, crossing at 0.557
    df = pd.concat([rows(x, [[0.0] * 3, [0.2] * 3, [0.8] * 3, [1.0] * 3], 100, key="a", n_train=100),
                    rows(x, [[0.0] * 3, [0.1] * 3, [0.3] * 3, [1.0] * 3], 0, key="b", n_train=200)])
    preds = {"a": {"m_star_over_n": 0.4, "interval": [0.35, 0.45]}, "b": {"m_star_over_n": 0.4, "interval": [0.3, 0.5]}}
    s = {r["data_key"]: r for r in summarize(df, preds, n_boot=100)}
    assert s["a"]["prediction_in_interval"] is True and s["a"]["intervals_overlap"] is True
    assert s["b"]["observed"]["m_over_n"] == pytest.approx(0.5 + 0.2 / 0.7 * 0.2)
    assert s["b"]["prediction_in_interval"] is False and s["b"]["intervals_overlap"] is False
    failed = df.copy()
    failed.loc[failed["size"] == 50, "status"] = "failed"
    s2 = {r["data_key"]: r for r in summarize(failed, preds, n_boot=50)}
    assert len(s2["a"]["observed"]["sizes"]) == 3 and s2["a"]["observed"]["n_bad_rows"] == 3


def test_convergence_diagnostic_is_the_change_since_the_previous_checkpoint():
    import json

    df = rows([0.2, 0.8], [[0.0, 0.0], [1.0, 0.8]], 0)
    curves = {0.2: [[0.9, 0.1, 0.0], [0.9, 0.0, 0.0]], 0.8: [[1.0, 1.0, 1.0], [1.0, 0.6, 0.8]]}
    df["checkpoints_json"] = [json.dumps([{"step": s, "memorization_ratio": v} for s, v in enumerate(curves[x][seed])])
                              for x, seed in zip(df["m_over_n"], df["seed"])]
    obs = observed_transition(df, n_boot=20)
    assert [s["mean_ratio_previous_checkpoint"] for s in obs["sizes"]] == pytest.approx([0.05, 0.8])
    assert obs["max_change_last_checkpoint"] == pytest.approx(0.1)  # |0.9 - 0.8| at M/N = 0.8


def test_a_transition_beyond_the_grid_gives_a_one_sided_interval():
    obs = observed_transition(rows([0.1, 0.4], [[0.0, 0.0], [0.05, 0.0]], 100), n_boot=100)
    assert obs["where"] == "above the grid" and obs["m_over_n"] is None
    assert obs["interval"][0] == pytest.approx(0.4) and obs["interval_open"] == [False, True]
    s = summarize(rows([0.1, 0.4], [[0.0, 0.0], [0.05, 0.0]], 100, key="k"),
                  {"k": {"m_star_over_n": 0.9, "interval": [0.85, 0.95]}}, n_boot=100)
    assert s[0]["prediction_in_interval"] is True  # consistent: both say beyond 0.4


def test_a_jump_across_one_grid_step_makes_that_step_the_interval():
    x = [0.1, 0.3, 0.5, 0.7]
    df = rows(x, [[0.0] * 3, [0.02, 0.03, 0.01], [0.96, 0.98, 0.97], [1.0] * 3], 200)
    obs = observed_transition(df, n_boot=300)
    # the interpolated point is the line between 0.02 and 0.97; the bootstrap alone is far narrower than the step
    assert obs["m_over_n"] == pytest.approx(0.3 + 0.48 / 0.95 * 0.2, abs=1e-3)
    b_lo, b_hi = obs["bootstrap_interval"]
    assert b_hi - b_lo < 0.02
    assert obs["interval"] == [pytest.approx(0.3), pytest.approx(0.5)] and obs["interval_from"] == "grid step"
    # a prediction inside the step is consistent with it, though outside the bootstrap interval
    s = summarize(df.assign(data_key="k"), {"k": {"m_star_over_n": 0.46, "interval": [0.44, 0.48]}}, n_boot=300)
    assert not b_lo <= 0.46 <= b_hi and s[0]["prediction_in_interval"] is True
    # with a size on the rise the interpolation is trusted and the bootstrap interval stands
    risen = observed_transition(rows(x, [[0.0] * 3, [0.3] * 3, [0.97] * 3, [1.0] * 3], 200), n_boot=300)
    assert risen["interval_from"] == "bootstrap" and risen["interval"] == risen["bootstrap_interval"]
    from memlab.sweep.table import summary_table

    assert summary_table(s).caption.startswith("grid step") and "grid step" in str(summary_table(s).columns[5]._cells)


def test_a_grid_step_keeps_a_side_the_bootstrap_left_open():
    # noisy ratios near 0.5 at the smallest size let some replicates cross below the grid: that side stays open
    df = rows([0.1, 0.2, 0.3], [[0.45, 0.45, 0.6, 0.3], [0.05] * 4, [0.95] * 4], 20)
    obs = observed_transition(df, n_boot=400)
    assert obs["interval_open"][0] and obs["interval"][0] is None
    s = summarize(df.assign(data_key="k"), {"k": {"m_star_over_n": 0.05, "interval": [0.04, 0.06]}}, n_boot=400)
    assert s[0]["prediction_in_interval"] is True  # consistent: the interval reaches below the grid
