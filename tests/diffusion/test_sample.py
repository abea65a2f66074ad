import numpy as np
import pytest

import synthetic
from memlab.diffusion.denoisers import memorizing_denoiser, star_denoiser
from memlab.diffusion.process import default_grid
from memlab.diffusion.rng import seed_key
from memlab.diffusion.sample import ancestral_update, ddim_update, draw
from memlab.metrics.memorization import memorization_ratio


def _per_row(den):
    return lambda params, x, t_B: den(x, t_B[0])  # the closed forms take one time for the batch


@pytest.fixture(scope="module")
def gmm():
    return synthetic.make_gmm(dim=4, components=2, n_train=20, n_test=10, variance=0.5, seed=1)


@pytest.mark.parametrize("method", ["ddim", "ancestral"])
def test_theta_star_samples_have_the_mixture_moments(gmm, method):
    n = 4000
    s = np.asarray(draw(_per_row(star_denoiser(gmm.truth)), None, 4, default_grid(200), seed_key(0, 3), n, method))
    mu = gmm.truth.means_KxD.mean(0)
    var = 0.5 + np.var(gmm.truth.means_KxD, axis=0)  # mixture variance per coordinate
    assert np.all(np.abs(s.mean(0) - mu) < 4 * np.sqrt(var / n))
    assert np.all(np.abs(s.var(0) - var) < 4 * var * np.sqrt(2 / n))


def test_theta_mem_samples_land_on_training_points(gmm):
    s = draw(_per_row(memorizing_denoiser(gmm.train_NxD)), None, 4, default_grid(), seed_key(0, 3), 300)
    out = memorization_ratio(np.asarray(s), gmm.train_NxD)
    assert out["memorization_ratio"] >= 0.97
    # and the nearest training points are spread over the set, not one collapsed point
    assert len(set(out["nearest_index"])) >= 15


@pytest.mark.parametrize("method", ["ddim", "ancestral"])
def test_sample_i_depends_only_on_seed_i(gmm, method):
    den = _per_row(star_denoiser(gmm.truth))
    key = seed_key(5, 3)
    ten = np.asarray(draw(den, None, 4, default_grid(), key, 10, method))
    four = np.asarray(draw(den, None, 4, default_grid(), key, 4, method))
    np.testing.assert_allclose(ten[:4], four, atol=1e-5)
    other = np.asarray(draw(den, None, 4, default_grid(), seed_key(6, 3), 4, method))
    assert not np.allclose(other, four)


def test_updates_on_a_point_mass():
    """With x0_hat = x0 exactly, DDIM keeps x_t on the ray alpha_t x0 + sigma_t eps with the same eps, and
    the ancestral mean does the same in expectation."""
    x0, eps = np.array([[1.0, -2.0]], np.float32), np.array([[0.3, 0.7]], np.float32)
    t, t2 = 0.8, 0.3
    x_t = np.sqrt(1 - t**2) * x0 + t * eps
    want = np.sqrt(1 - t2**2) * x0 + t2 * eps
    np.testing.assert_allclose(ddim_update(x_t, x0, t, t2, None), want, atol=1e-6)
    import jax

    keys = jax.vmap(lambda i: jax.random.fold_in(seed_key(0, 3), i))(np.arange(20000))
    xs = np.asarray(ancestral_update(np.repeat(x_t, 20000, 0), np.repeat(x0, 20000, 0), t, t2, keys))
    a = np.sqrt(1 - t**2) / np.sqrt(1 - t2**2)
    s2 = t**2 - a**2 * t2**2
    mean = (a * t2**2 * x_t + np.sqrt(1 - t2**2) * s2 * x0) / t**2
    np.testing.assert_allclose(xs.mean(0), mean[0], atol=0.01)
    np.testing.assert_allclose(xs.std(0), np.sqrt(s2) * t2 / t, rtol=0.03)
