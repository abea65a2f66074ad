import numpy as np
import pytest

import synthetic
from memlab.crossover.approximations import nearest_neighbour_excess
from memlab.crossover.losses import m_grid, monte_carlo_losses, naive_pmem_losses
from memlab.diffusion.process import default_grid


@pytest.fixture(scope="module")
def small():
    ds = synthetic.make_gmm(dim=8, components=3, n_train=30, n_test=5, seed=1)
    t = default_grid()[[0, 12, 25]]
    m = m_grid(30, 5)
    return ds, t, m, monte_carlo_losses(ds, t, m, draws=7, repeats=3, seed=4, chunk=16)


def test_shared_prefix_sums_equal_each_subset_evaluated_separately(small):
    ds, t, m, tab = small
    naive = naive_pmem_losses(ds, t, m, draws=7, perms_PxN=tab.perms_PxN, seed=4)
    np.testing.assert_allclose(tab.pmem_PxGxNxT, naive, rtol=1e-4, atol=1e-4)
    assert tab.draws_P.tolist() == [3, 2, 2]


def test_pmem_of_all_points_equals_mem(small):
    _, _, m, tab = small
    assert m[-1] == 30
    np.testing.assert_allclose(tab.pmem_GxNxT[-1], tab.mem_NxT, rtol=1e-5, atol=1e-5)


def test_pmem_loss_decreases_with_model_size(small):
    _, _, _, tab = small
    curve = tab.pmem_GxNxT.mean(1)[:, 2]  # a middle noise level
    assert np.all(np.diff(curve) < 0)


def test_results_do_not_depend_on_chunking(small):
    ds, t, m, tab = small
    other = monte_carlo_losses(ds, t, m, draws=7, repeats=3, seed=4, chunk=64)
    np.testing.assert_allclose(other.pmem_PxGxNxT, tab.pmem_PxGxNxT, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(other.star_NxT, tab.star_NxT, rtol=1e-5, atol=1e-6)


def test_m_grid():
    g = m_grid(100, 50)
    assert g[0] == 1 and g[-1] == 100 and len(g) == 50 and np.all(np.diff(g) > 0)
    g = m_grid(200, 30, "log")
    assert len(g) == 30 and g[-1] == 200 and np.all(np.diff(g) > 0)


def test_nearest_neighbour_excess_brute_force():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(9, 3))
    perm = rng.permutation(9)
    got = nearest_neighbour_excess(X, perm[None], np.array([1, 4, 9]))[0]
    for value, m in zip(got, [1, 4, 9]):
        S = perm[:m]
        want = sum(min(np.sum((X[i] - X[j]) ** 2) for j in S) for i in range(9) if i not in S) / 9
        assert value == pytest.approx(want)


def test_nearest_neighbour_form_matches_monte_carlo_pmem_excess_at_low_noise():
    """In high dimension, theta_pmem(M) maps a noisy point outside the subset onto its nearest stored point;
    for t <= 0.76 the excess over theta_mem is the nearest-neighbour form within 5%."""
    ds = synthetic.make_gmm(dim=100, components=4, n_train=60, seed=0)
    t = default_grid()
    t = t[t <= 0.76]
    m = m_grid(60, 6)
    tab = monte_carlo_losses(ds, t, m, draws=12, repeats=3, seed=0)
    nn_PxG = nearest_neighbour_excess(ds.train_NxD, tab.perms_PxN, m)
    mc_PxGxT = tab.pmem_PxGxNxT.mean(2) - tab.mem_NxT.mean(0)[None, None]
    inner = m < 60
    nn = nn_PxG[:, inner].mean(0)[:, None]
    mc = mc_PxGxT[:, inner].mean(0)
    rel = np.abs(mc - nn) / nn
    assert rel.max() < 0.05, rel.max()
