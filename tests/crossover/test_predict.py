import math

import numpy as np
import pytest

from memlab.config import DataConfig
from memlab.crossover.predict import CrossoverConfig, crossing, predict
from memlab.crossover.weighting import weights
from memlab.diffusion.process import default_grid, psi_np
from memlab.errors import UsageError

FAST = dict(draws=8, repeats=4, grid=12, bootstrap=100)


@pytest.fixture(scope="module")
def result():
    return predict(DataConfig(dim=10, n_train=40), CrossoverConfig(**FAST))


def test_crossing_interpolates():
    m = np.array([1, 5, 9])
    assert crossing(m, np.array([4.0, 2.0, -2.0])) == pytest.approx(7.0)
    assert crossing(m, np.array([-1.0, -2.0, -3.0])) == 1.0
    assert math.isnan(crossing(m, np.array([3.0, 2.0, 1.0])))


def test_weightings():
    t = default_grid()
    np.testing.assert_allclose(weights("x0-uniform", t), 1 / 26)
    w = weights("eps", t)
    np.testing.assert_allclose(w / w[5], psi_np(t) / psi_np(t[5]))
    e = weights("elbo", t)
    np.testing.assert_allclose(e[3] / e[10], (t[10] / t[3]) ** 3, rtol=1e-9)
    custom = weights(tuple(range(26)), t)
    assert custom[0] == 0 and custom.sum() == pytest.approx(1)
    for bad in ("bogus", "1,2,3"):
        with pytest.raises(UsageError):
            CrossoverConfig(weighting=bad)


def test_prediction_fields_and_consistency(result):
    r = result
    assert 0 < r["m_star_over_n"] <= 1 and r["m_star"] == pytest.approx(40 * r["m_star_over_n"])
    lo, hi = r["interval"]
    assert lo <= r["m_star_over_n"] <= hi
    assert len(r["per_t"]) == 26 and set(r["per_t"][0]) == {"t", "psi", "loss_mem", "loss_star", "m_star_over_n"}
    assert len(r["curve"]) == 12 and r["curve"][-1]["m"] == 40
    # the weighted pmem curve crosses the generalizing loss at M*
    curve = np.array([c["loss_pmem"] for c in r["curve"]])
    m = np.array([c["m"] for c in r["curve"]])
    below = m[curve < r["loss_star_weighted"]]
    assert below.min() >= r["m_star"] - 1e-9
    assert r["curve"][-1]["loss_pmem"] == pytest.approx(r["loss_mem_weighted"], rel=1e-4)
    for name in ("linear", "linear-2x", "nearest-neighbour"):
        a = r["approximations"][name]
        assert 0 <= a["m_star_over_n"] <= 1
        assert a["delta_vs_mc"] == pytest.approx(a["m_star_over_n"] - r["m_star_over_n"])
    # 2 d s2 (1 - M/N) is always above d s2 (1 - M/N): its crossing is later
    assert r["approximations"]["linear-2x"]["m_star_over_n"] > r["approximations"]["linear"]["m_star_over_n"]


def test_same_seed_same_numbers_other_seed_differs(result):
    again = predict(DataConfig(dim=10, n_train=40), CrossoverConfig(**FAST))
    assert again["m_star"] == result["m_star"] and again["interval"] == result["interval"]
    other = predict(DataConfig(dim=10, n_train=40), CrossoverConfig(**FAST, seed=1))
    assert other["m_star"] != result["m_star"]


def test_grid_larger_than_n_rejected():
    with pytest.raises(UsageError, match="--grid"):
        predict(DataConfig(n_train=20), CrossoverConfig(grid=21))


def test_min_snr_and_v_weightings_match_training():
    t = default_grid()
    np.testing.assert_allclose(weights("v", t), (psi_np(t) + 1) / (psi_np(t) + 1).sum())
    m = np.minimum(psi_np(t), 5.0)
    np.testing.assert_allclose(weights("min-snr", t), m / m.sum())


def test_interval_matches_the_spread_over_fresh_seeds():
    # the bootstrap over permutations (each with its own draws, against theta_star on the same draws) should be
    # as wide as the spread of M* over fresh Monte Carlo seeds on the same training set: 95% width ~ 3.92 sd.
    # Resampling training points too (the earlier rule) made it ~3.6x wider.
    cfg = dict(draws=32, repeats=8, grid=12, bootstrap=400)
    runs = [predict(DataConfig(dim=10, n_train=40), CrossoverConfig(**cfg, seed=s)) for s in range(16)]
    m = np.array([r["m_star_over_n"] for r in runs])
    width = np.mean([r["interval"][1] - r["interval"][0] for r in runs])
    ratio = width / (2 * 1.96 * m.std(ddof=1))
    assert 0.55 <= ratio <= 1.8, ratio


def test_one_permutation_gives_no_interval():
    r = predict(DataConfig(dim=10, n_train=40), CrossoverConfig(draws=8, repeats=1, grid=12, bootstrap=50))
    assert 0 < r["m_star_over_n"] <= 1 and all(math.isnan(v) for v in r["interval"])
