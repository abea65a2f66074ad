"""The low-rank GMM's closed-form posterior mean (theta_star) against dense Gaussian algebra and Monte Carlo."""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

import synthetic
from memlab.crossover.approximations import generalizing_excess
from memlab.crossover.losses import monte_carlo_losses
from memlab.diffusion.denoisers import star_denoiser, template_posterior_mean
from memlab.diffusion.lowrank import lowrank_posterior_mean
from memlab.diffusion.precision import x64
from memlab.diffusion.process import default_grid, psi_np


def _dense_posterior_mean(x_BxD, t, truth):
    """float64: responsibilities from N(alpha mu_k, alpha^2 Sigma_k + sigma^2 I), Sigma_k = s2 U U^T + tau^2 I,
    and the Gaussian conditional mean mu_k + alpha Sigma_k (alpha^2 Sigma_k + sigma^2 I)^-1 (x - alpha mu_k)."""
    a, s = np.sqrt(1 - t * t), t
    out = []
    for x in x_BxD:
        lp, pm = [], []
        for mu, S, w in zip(truth.means_KxD, truth.covariances_KxDxD(), truth.weights_K):
            cov = a * a * S + s * s * np.eye(len(mu))
            lp.append(np.log(w) + multivariate_normal(a * mu, cov).logpdf(x))
            pm.append(mu + a * S @ np.linalg.solve(cov, x - a * mu))
        lp = np.array(lp)
        r = np.exp(lp - lp.max())
        out.append(r / r.sum() @ np.array(pm))
    return np.array(out)


def _call(truth, x, t, dtype):
    return np.asarray(lowrank_posterior_mean(
        jnp.asarray(x, dtype), jnp.asarray(t, dtype), jnp.asarray(truth.means_KxD, dtype),
        jnp.asarray(np.sqrt(truth.variance) * truth.bases_KxDxR, dtype), jnp.asarray(truth.noise, dtype),
        jnp.log(jnp.asarray(truth.weights_K, dtype))))


@pytest.mark.parametrize("noise", [0.0, 0.3])
@pytest.mark.parametrize("t", [0.005, 0.02, 0.3, 0.7, 0.98])
def test_lowrank_posterior_mean_equals_dense_linear_algebra(t, noise):
    ds = synthetic.make_lowrank_gmm(dim=7, components=3, rank=2, n_train=12, n_test=6, variance=2.0, noise=noise,
                                    seed=1)
    # test points off the data (noised with this t) and far off it, where responsibilities are sharp
    rng = np.random.default_rng(0)
    x = np.concatenate([np.sqrt(1 - t * t) * ds.test_TxD + t * rng.standard_normal(ds.test_TxD.shape),
                        3 * rng.standard_normal((3, 7))])
    want = _dense_posterior_mean(x, t, ds.truth)
    with x64():
        got64 = _call(ds.truth, x, t, jnp.float64)
    np.testing.assert_allclose(got64, want, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(_call(ds.truth, x, t, jnp.float32), want, rtol=2e-4, atol=2e-4)
    # one time per row gives each row's own-time answer; star_denoiser dispatches on the truth's type
    t_B = np.linspace(0.05, 0.95, len(x))
    rows = np.concatenate([_dense_posterior_mean(x[i:i + 1], ti, ds.truth) for i, ti in enumerate(t_B)])
    np.testing.assert_allclose(_call(ds.truth, x, t_B, jnp.float32), rows, rtol=2e-4, atol=2e-4)
    np.testing.assert_allclose(np.asarray(star_denoiser(ds.truth)(jnp.asarray(x, jnp.float32), t)), want,
                               rtol=2e-4, atol=2e-4)


def test_templates_are_the_block_diagonal_case_of_the_lowrank_posterior():
    """template_posterior_mean = lowrank_posterior_mean with factors F_k = s_c blockdiag(a_k), tau^2 = 0."""
    rng = np.random.default_rng(3)
    K, C, P = 3, 3, 5
    A, mu, s2, w = rng.random((K, P)), rng.normal(size=(K, C)), 0.7, np.array([0.2, 0.3, 0.5])
    x = rng.normal(size=(6, C * P)) * 2
    factors = np.stack([np.sqrt(s2) * np.kron(np.eye(C), A[k][:, None]) for k in range(K)])  # K x CP x C
    means = np.stack([np.kron(mu[k], A[k]) for k in range(K)])
    f = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    for t in (0.1, 0.6):
        lr = lowrank_posterior_mean(f(x), t, f(means), f(factors), 0.0, jnp.log(f(w)))
        tp = template_posterior_mean(f(x), t, f(A), f(mu), s2, jnp.log(f(w)))
        np.testing.assert_allclose(np.asarray(lr), np.asarray(tp), rtol=1e-4, atol=1e-4)


def test_lowrank_star_loss_matches_its_closed_form():
    """theta_star's x0 loss is sum_lambda lambda / (1 + psi lambda) over the component covariance's eigenvalues
    (s2 + tau^2 r times, tau^2 d - r times) where the components are separated (psi >= 1); Monte Carlo."""
    ds = synthetic.make_lowrank_gmm(dim=20, components=3, rank=4, n_train=60, variance=3.0, noise=0.05, seed=0)
    t = default_grid()
    tab = monte_carlo_losses(ds, t, np.array([60]), draws=32, repeats=1, seed=0)
    closed = generalizing_excess(ds.truth, psi_np(t))
    ok = psi_np(t) >= 1
    rel = np.abs(tab.star_NxT.mean(0)[ok] - closed[ok]) / closed[ok]
    assert rel.max() < 0.05, rel


@pytest.mark.parametrize("t", [0.9, 0.3, 0.05])
def test_lowrank_mixture_pmem_start_is_theta_pmem(t):
    from memlab.diffusion.denoisers import memorizing
    from memlab.diffusion.models import build_denoiser, init_params, param_count, pmem_indices

    ds = synthetic.make_lowrank_gmm(dim=8, components=2, rank=2, n_train=30, n_test=10, seed=0)
    den = build_denoiser("mixture", 12, 1, "x0", ds)
    params = init_params(den, "pmem", ds, seed=3)
    assert params["factors_MxDxR"].shape == (12, 8, 2) and param_count(params) == 12 * 8 * 3 + 1
    idx = pmem_indices(30, 12, np.random.default_rng(np.random.SeedSequence([3, 0x1A17])))
    rng = np.random.default_rng(0)
    x = jnp.asarray(np.sqrt(1 - t * t) * ds.test_TxD + t * rng.standard_normal(ds.test_TxD.shape), jnp.float32)
    got = den.x0(params, x, jnp.full((len(x),), t))
    want = memorizing(x, t, jnp.asarray(ds.train_NxD[idx], jnp.float32))
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=5e-3)


def test_lowrank_mixture_with_the_true_parameters_is_theta_star():
    """The trainable family's output at the truth's means, factors sqrt(s2) U_k and tau equals theta_star."""
    from memlab.diffusion.models import build_denoiser

    ds = synthetic.make_lowrank_gmm(dim=8, components=3, rank=2, n_train=30, n_test=10, noise=0.2, seed=4)
    den = build_denoiser("mixture", 3, 1, "x0", ds)
    tr = ds.truth
    params = {"means_MxD": jnp.asarray(tr.means_KxD, jnp.float32),
              "factors_MxDxR": jnp.asarray(np.sqrt(tr.variance) * tr.bases_KxDxR, jnp.float32),
              "std": jnp.asarray(np.sqrt(tr.noise), jnp.float32)}
    x = jnp.asarray(ds.test_TxD * 0.8 + 0.6 * np.random.default_rng(1).standard_normal(ds.test_TxD.shape), jnp.float32)
    np.testing.assert_allclose(np.asarray(den.x0(params, x, jnp.full((10,), 0.6))),
                               _dense_posterior_mean(np.asarray(x, float), 0.6, tr), rtol=2e-4, atol=2e-4)
