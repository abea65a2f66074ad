"""The fused GMM loss-and-gradient equals autodiff of the reference denoiser, in every block layout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memlab.diffusion import mixture_loss, rng
from memlab.diffusion.denoisers import gmm_posterior_mean
from memlab.diffusion.process import add_noise


def _problem(rows=37, m=9, d=5, seed=0):
    r = np.random.default_rng(seed)
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    return (f32(2 * r.normal(size=(m, d))), jnp.float32(0.6), f32(2 * r.normal(size=(rows, d))),
            f32(r.normal(size=(rows, d))), f32(r.uniform(0.001, 0.999, rows)), f32(r.exponential(size=rows)))


def _reference(means, std, x0, eps, t, w):
    x = add_noise(x0, eps, t)
    x0_hat = gmm_posterior_mean(x, t[:, None], means, std**2, jnp.zeros(means.shape[0]))
    return jnp.sum(w * jnp.sum((x0_hat - x0) ** 2, axis=1))


@pytest.mark.parametrize("block_floats", [2**20, 90, 40])  # one block; 10 rows per block (pad 3); 4 per block
def test_fused_loss_and_gradient_match_autodiff(monkeypatch, block_floats):
    monkeypatch.setattr(mixture_loss, "BLOCK_FLOATS", block_floats)
    args = _problem()
    want, (gm_want, gs_want) = jax.value_and_grad(_reference, argnums=(0, 1))(*args)
    got, (gm_got, gs_got) = jax.value_and_grad(mixture_loss.gmm_weighted_sq_error, argnums=(0, 1))(*args)
    assert float(want) > 1.0  # a non-trivial loss
    np.testing.assert_allclose(float(got), float(want), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(gm_got), np.asarray(gm_want), rtol=1e-4, atol=1e-4 * float(jnp.abs(gm_want).max()))
    np.testing.assert_allclose(float(gs_got), float(gs_want), rtol=1e-4)
    # the primal alone (no gradient) is the same number
    np.testing.assert_allclose(float(mixture_loss.gmm_weighted_sq_error(*args)), float(want), rtol=1e-5)


def test_block_layout_covers_every_row_once():
    for rows, size in [(20_000, 160), (37, 9), (1, 5000), (7, 1)]:
        n, per = mixture_loss.row_blocks(rows, size)
        assert n * per >= rows > (n - 1) * per and per * size <= max(mixture_loss.BLOCK_FLOATS, size)


def test_fused_gradient_under_vmap_over_seeds():
    """Several seeds trained together ('vmap' seed mode) get each seed's own gradient."""
    means, std, *data = _problem()
    means_S = jnp.stack([means, means[::-1], 0.5 * means])
    std_S = jnp.asarray([0.6, 0.2, 1.3], jnp.float32)
    grad = jax.grad(mixture_loss.gmm_weighted_sq_error, argnums=(0, 1))
    gm_S, gs_S = jax.vmap(lambda m, s: grad(m, s, *data))(means_S, std_S)
    for i in range(3):
        gm, gs = jax.grad(_reference, argnums=(0, 1))(means_S[i], std_S[i], *data)
        np.testing.assert_allclose(np.asarray(gm_S[i]), np.asarray(gm), rtol=1e-4, atol=1e-4 * float(jnp.abs(gm).max()))
        np.testing.assert_allclose(float(gs_S[i]), float(gs), rtol=1e-4)


def test_training_noise_is_standard_normal_and_a_function_of_the_key():
    key = rng.seed_key(3, rng.TAG_TRAIN)
    eps = np.asarray(rng.normal(key, (400, 50)))
    assert eps.dtype == np.float32
    np.testing.assert_array_equal(eps, np.asarray(rng.normal(key, (400, 50))))
    assert not np.array_equal(eps, np.asarray(rng.normal(jax.random.fold_in(key, 1), (400, 50))))
    n = eps.size  # 20,000 draws: mean within 4 standard errors, variance within 4 of its standard errors
    assert abs(eps.mean()) < 4 / np.sqrt(n) and abs(eps.var() - 1) < 4 * np.sqrt(2 / n)
    assert abs(np.mean(eps**4) - 3) < 4 * np.sqrt(96 / n)  # Gaussian kurtosis
