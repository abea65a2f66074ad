import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

import synthetic
from memlab.crossover.approximations import generalizing_excess
from memlab.crossover.losses import monte_carlo_losses
from memlab.diffusion.denoisers import (gmm_posterior_mean, memorizing, memorizing_denoiser, star_denoiser,
                                        template_posterior_mean)
from memlab.diffusion.process import default_grid, psi_np


def _dense_posterior_mean(x, t, means, covs, w):
    """Brute force: posterior mean of a Gaussian mixture under x_t = a x + s eps, dense linear algebra."""
    a, s = np.sqrt(1 - t * t), t
    out = []
    for xi in x:
        lp, pm = [], []
        for m, S, wk in zip(means, covs, w):
            cov = a * a * S + s * s * np.eye(len(m))
            lp.append(np.log(wk) + multivariate_normal(a * m, cov).logpdf(xi))
            pm.append(m + a * S @ np.linalg.solve(cov, xi - a * m))
        lp = np.array(lp)
        r = np.exp(lp - lp.max())
        out.append((r / r.sum()) @ np.array(pm))
    return np.array(out)


@pytest.mark.parametrize("t", [0.05, 0.3, 0.7, 0.98])
def test_template_posterior_mean_matches_dense_linear_algebra(t):
    rng = np.random.default_rng(0)
    K, C, P = 3, 3, 4
    A, mu, s2, w = rng.random((K, P)), rng.normal(size=(K, C)), 0.7, np.array([0.2, 0.3, 0.5])
    x = rng.normal(size=(6, C * P)) * 2
    means = [np.kron(mu[k], A[k]) for k in range(K)]
    covs = [s2 * np.kron(np.eye(C), np.outer(A[k], A[k])) for k in range(K)]
    want = _dense_posterior_mean(x, t, means, covs, w)
    got = template_posterior_mean(jnp.array(x), t, jnp.array(A), jnp.array(mu), s2, jnp.log(jnp.array(w)))
    np.testing.assert_allclose(np.asarray(got), want, rtol=2e-4, atol=2e-4)


def test_template_posterior_mean_takes_one_time_per_row():
    """Rows at different times in one call equal each row alone at its own time (dense reference)."""
    rng = np.random.default_rng(2)
    K, C, P = 3, 3, 4
    A, mu, s2, w = rng.random((K, P)), rng.normal(size=(K, C)), 0.5, np.array([0.2, 0.3, 0.5])
    x = rng.normal(size=(4, C * P)) * 2
    t_B = np.array([0.05, 0.3, 0.7, 0.98])
    means = [np.kron(mu[k], A[k]) for k in range(K)]
    covs = [s2 * np.kron(np.eye(C), np.outer(A[k], A[k])) for k in range(K)]
    want = np.concatenate([_dense_posterior_mean(x[i:i + 1], t, means, covs, w) for i, t in enumerate(t_B)])
    got = template_posterior_mean(jnp.array(x), jnp.array(t_B), jnp.array(A), jnp.array(mu), s2, jnp.log(jnp.array(w)))
    np.testing.assert_allclose(np.asarray(got), want, rtol=2e-4, atol=2e-4)


def test_gmm_posterior_mean_matches_dense_linear_algebra():
    rng = np.random.default_rng(1)
    means, s2, w = rng.normal(size=(3, 5)) * 2, 0.4, np.array([0.5, 0.25, 0.25])
    x = rng.normal(size=(6, 5)) * 2
    want = _dense_posterior_mean(x, 0.45, means, [s2 * np.eye(5)] * 3, w)
    got = gmm_posterior_mean(jnp.array(x), 0.45, jnp.array(means), s2, jnp.log(jnp.array(w)))
    np.testing.assert_allclose(np.asarray(got), want, rtol=2e-4, atol=2e-4)


def test_memorizing_is_posterior_mean_of_empirical_distribution():
    rng = np.random.default_rng(2)
    pts, x, t = rng.normal(size=(7, 4)), rng.normal(size=(5, 4)), 0.6
    a = np.sqrt(1 - t * t)
    logw = -np.sum((x[:, None] - a * pts[None]) ** 2, 2) / (2 * t * t)
    w = np.exp(logw - logw.max(1, keepdims=True))
    want = (w / w.sum(1, keepdims=True)) @ pts
    np.testing.assert_allclose(np.asarray(memorizing(jnp.array(x), t, jnp.array(pts))), want, rtol=1e-4, atol=1e-5)
    # at tiny t it snaps to the nearest training point, without overflow
    snapped = memorizing(jnp.array(a * pts[:3] + 1e-4), 1e-3, jnp.array(pts))
    np.testing.assert_allclose(np.asarray(snapped), pts[:3], atol=1e-5)


def test_gmm_generalizing_excess_matches_closed_form_where_psi_at_least_one():
    ds = synthetic.make_gmm(dim=30, components=4, n_train=100, seed=0)
    t = default_grid()
    tab = monte_carlo_losses(ds, t, np.array([100]), draws=48, repeats=1, seed=0)
    excess = tab.star_NxT.mean(0) - tab.mem_NxT.mean(0)
    closed = generalizing_excess(ds.truth, psi_np(t))
    np.testing.assert_allclose(closed, 30 / (1 + psi_np(t)), rtol=1e-12)
    ok = psi_np(t) >= 1
    rel = np.abs(excess[ok] - closed[ok]) / closed[ok]
    assert rel.max() < 0.05, rel
    # theta_mem's own loss tends to 0 at small t (and is large at t ~ 1)
    mem = tab.mem_NxT.mean(0)
    assert mem[-1] < 1e-4 and mem[-5:].max() < 1e-2 and mem[0] > 10


def test_template_generalizing_loss_approaches_C_over_psi_for_large_templates():
    # |a|^2 ~ 1e4: the colour is pinned down, the loss is C s_c^2 |a|^2 sigma^2/(sigma^2 + alpha^2 s_c^2 |a|^2)
    ds = synthetic.make_templates(components=3, n_train=30, n_test=5, scale=20.0, seed=0)
    t = default_grid()
    tab = monte_carlo_losses(ds, t, np.array([30]), draws=32, repeats=1, seed=0)
    star = tab.star_NxT.mean(0)
    C_over_psi = 3 / psi_np(t)
    sel = (t > 0.05) & (t < 0.9)
    np.testing.assert_allclose(star[sel], C_over_psi[sel], rtol=0.1)


def test_star_denoiser_dispatch_and_pmem_of_all_points_is_mem():
    ds = synthetic.make_gmm(dim=6, components=2, n_train=12, seed=0)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(5, 6)), jnp.float32)
    star = star_denoiser(ds.truth)
    assert star(x, 0.5).shape == (5, 6)
    with pytest.raises(TypeError):
        star_denoiser(object())
    mem = memorizing_denoiser(ds.train_NxD)
    np.testing.assert_allclose(np.asarray(mem(x, 0.5)),
                               np.asarray(memorizing(x, 0.5, jnp.asarray(ds.train_NxD[::-1], jnp.float32))),
                               rtol=1e-5, atol=1e-5)
