import jax.numpy as jnp
import numpy as np
import pytest

import synthetic
from memlab.diffusion.denoisers import memorizing
from memlab.diffusion.models import (build_denoiser, init_params, param_count, pmem_indices, rank1_factor)
from memlab.diffusion.process import add_noise, eps_from_x0


def _noisy(x0, t, seed=0):
    eps = np.random.default_rng(seed).normal(size=x0.shape)
    return jnp.asarray(add_noise(jnp.asarray(x0), jnp.asarray(eps), t), jnp.float32)


@pytest.mark.parametrize("t", [0.9, 0.3, 0.05])
def test_gmm_mixture_pmem_start_is_theta_pmem(t):
    ds = synthetic.make_gmm(dim=6, components=2, n_train=30, n_test=10, seed=0)
    den = build_denoiser("mixture", 12, 1, "eps", ds)
    params = init_params(den, "pmem", ds, seed=3)
    idx = pmem_indices(30, 12, np.random.default_rng(np.random.SeedSequence([3, 0x1A17])))
    subset = jnp.asarray(ds.train_NxD[idx], jnp.float32)
    np.testing.assert_allclose(np.asarray(params["means_MxD"]), ds.train_NxD[idx], rtol=1e-6)
    x = _noisy(ds.test_TxD, t)
    got = den.x0(params, x, jnp.full((len(x),), t))
    want = memorizing(x, t, subset)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=2e-3)
    # the epsilon output is the same function in epsilon units
    np.testing.assert_allclose(np.asarray(den.output(params, x, jnp.full((len(x),), t))),
                               np.asarray(eps_from_x0(x, want, t)), atol=2e-2)


def test_pmem_takes_all_points_then_repeats():
    idx = pmem_indices(10, 25, np.random.default_rng(0))
    assert sorted(idx[:10]) == list(range(10)) and sorted(idx[10:20]) == list(range(10))


def test_template_pmem_start_is_theta_pmem():
    ds = synthetic.make_templates(components=3, n_train=12, n_test=8, height=5, width=5,
                                  colour_means=np.array([[1.0, 0, -1], [0.5, 0.5, 0.5], [2, 1, 0]]), seed=1)
    a, c = rank1_factor(ds.train_NxD, 3)
    np.testing.assert_allclose(np.einsum("mc,mp->mcp", c, a).reshape(12, -1), ds.train_NxD, atol=1e-10)
    assert np.allclose(np.abs(a).max(1), 1.0)
    den = build_denoiser("mixture", 12, 1, "x0", ds)
    params = init_params(den, "pmem", ds, seed=0)
    t = 0.4
    x = _noisy(ds.test_TxD, t)
    got = den.x0(params, x, jnp.full((len(x),), t))
    want = memorizing(x, t, jnp.asarray(ds.train_NxD, jnp.float32))  # M = N: every point, any order
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=2e-3)


def test_random_init_and_shapes():
    ds = synthetic.make_gmm(dim=5, components=2, n_train=20, n_test=4, seed=0)
    den = build_denoiser("mixture", 7, 1, "eps", ds)
    p = init_params(den, "random", ds, seed=0)
    assert p["means_MxD"].shape == (7, 5) and param_count(p) == 7 * 5 + 1
    assert not np.allclose(p["means_MxD"], init_params(den, "random", ds, seed=1)["means_MxD"])


@pytest.mark.parametrize("predict", ["eps", "x0"])
def test_mlp_parameter_count_and_units(predict):
    ds = synthetic.make_gmm(dim=5, components=2, n_train=20, n_test=4, seed=0)
    w, depth, temb = 16, 2, 64
    den = build_denoiser("mlp", w, depth, predict, ds)
    p = init_params(den, "pmem", ds, seed=0)
    dense = lambda i, o: i * o + o
    block = dense(w, 3 * w) + dense(w, 2 * w) + dense(2 * w, w)
    expected = dense(temb, w) + dense(w, w) + dense(5, w) + depth * block + dense(w, 2 * w) + dense(w, 5)
    assert param_count(p) == expected
    # heads start at zero: the prediction is 0 in the model's own units; x0 and eps are then consistent
    x, t = _noisy(ds.test_TxD, 0.5), jnp.full((4,), 0.5)
    assert np.allclose(den.output(p, x, t), 0.0)
    np.testing.assert_allclose(np.asarray(den.eps(p, x, t)), np.asarray(eps_from_x0(x, den.x0(p, x, t), 0.5)), atol=1e-5)


def test_weightings_match_the_crossover_shapes_and_names():
    from memlab.crossover.weighting import WEIGHTINGS as CROSSOVER, weights
    from memlab.diffusion.objective import WEIGHTINGS, grid_weights
    from memlab.diffusion.process import default_grid, psi_np
    from memlab.diffusion.train_config import WEIGHTING_NAMES

    assert tuple(WEIGHTINGS) == WEIGHTING_NAMES and set(CROSSOVER) <= set(WEIGHTINGS)
    t = default_grid()
    for name in CROSSOVER:
        w = grid_weights(name, t)
        np.testing.assert_allclose(w / w.sum(), weights(name, t), rtol=1e-9)
    np.testing.assert_allclose(grid_weights("eps", t), psi_np(t))  # the epsilon loss itself
