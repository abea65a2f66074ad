"""The blocked training losses equal their unblocked autodiff references, in every block layout: the GMM
mixture's hand-written gradient and the autodiff blocks of the other models."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import synthetic
from memlab.diffusion import blocked, mixture_loss, rng
from memlab.diffusion.denoisers import gmm_posterior_mean
from memlab.diffusion.models import build_denoiser, init_params
from memlab.diffusion.objective import x0_sq_error
from memlab.diffusion.process import add_noise


def _problem(rows=37, m=9, d=5, seed=0):
    r = np.random.default_rng(seed)
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    return (f32(2 * r.normal(size=(m, d))), jnp.float32(0.6), f32(2 * r.normal(size=(rows, d))),
            f32(r.normal(size=(rows, d))), f32(r.uniform(0.001, 0.999, rows)), f32(r.exponential(size=rows)))


def _reference(params, x0, eps, t, w):
    x = add_noise(x0, eps, t)
    means = params["means_MxD"]
    x0_hat = gmm_posterior_mean(x, t[:, None], means, params["std"] ** 2, jnp.zeros(means.shape[0]))
    return jnp.sum(w * jnp.sum((x0_hat - x0) ** 2, axis=1))


def _assert_tree_close(got, want, rtol=1e-4, whole_tree=False):
    """Leaf by leaf; the absolute tolerance scales with each leaf's largest entry, or with the whole tree's
    (whole_tree: leaves whose gradient is 0 up to rounding, such as a bias right before a normalisation)."""
    top = max(float(jnp.abs(w).max()) for w in jax.tree_util.tree_leaves(want))
    for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        scale = top if whole_tree else float(jnp.abs(w).max())
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("block_floats", [2**20, 90, 40])  # one block; 10 rows per block (pad 3); 4 per block
def test_fused_loss_and_gradient_match_autodiff(block_floats):
    means, std, *data = _problem()
    params = {"means_MxD": means, "std": std}
    fused = mixture_loss.gmm_loss(block_floats)
    want, g_want = jax.value_and_grad(_reference)(params, *data)
    got, g_got = jax.value_and_grad(fused)(params, *data)
    assert float(want) > 1.0  # a non-trivial loss
    np.testing.assert_allclose(float(got), float(want), rtol=1e-5)
    _assert_tree_close(g_got, g_want)
    np.testing.assert_allclose(float(fused(params, *data)), float(want), rtol=1e-5)  # the primal alone


def test_block_layout_covers_every_row_once():
    for rows, width, block in [(20_000, 160, 2**20), (37, 9, 90), (1, 5000, 2**20), (7, 1, 3), (20_000, 50, 2**18)]:
        n, per = blocked.row_blocks(rows, width, block)
        assert n * per >= rows > (n - 1) * per and per * width <= max(block, width)
    assert blocked.row_blocks(20_000, 50, 2**18) == (4, 5000)


def test_denoisers_report_their_loss_blocks():
    """The benchmark scales XLA's per-block flop count by this: GMM blocks by M, autodiff models by d."""
    ds = synthetic.make_gmm(dim=50, components=2, n_train=200, n_test=5, seed=0)
    gmm = build_denoiser("mixture", 160, 1, "eps", ds)
    assert gmm.loss_blocks(init_params(gmm, "pmem", ds, 0), 20_000, 50) == 4  # 2^20 // 160 = 6553 rows
    assert gmm.loss_blocks(init_params(gmm, "pmem", ds, 0), 1_000, 50) == 1
    mlp = build_denoiser("mlp", 16, 1, "eps", ds)
    assert mlp.loss_blocks(init_params(mlp, "random", ds, 0), 20_000, 50) == 4  # 2^18 // 50 = 5242 rows


def test_fused_gradient_under_vmap_over_seeds():
    """Several seeds trained together ('vmap' seed mode) get each seed's own gradient."""
    means, std, *data = _problem()
    params_S = {"means_MxD": jnp.stack([means, means[::-1], 0.5 * means]),
                "std": jnp.asarray([0.6, 0.2, 1.3], jnp.float32)}
    grad = jax.grad(mixture_loss.gmm_loss(40))
    g_S = jax.vmap(lambda p: grad(p, *data))(params_S)
    for i in range(3):
        one = jax.tree_util.tree_map(lambda a: a[i], params_S)
        _assert_tree_close(jax.tree_util.tree_map(lambda a: a[i], g_S), jax.grad(_reference)(one, *data))


@pytest.mark.parametrize("model, dataset", [("mlp", "gmm"), ("mixture", "templates"), ("unet", "templates"),
                                            ("dit", "templates"), ("mixture", "lowrank-gmm")])
def test_autodiff_models_blocked_loss_equals_the_unblocked_one(model, dataset):
    """The MLP, the template and low-rank mixtures, the U-Net and the DiT train on `blocked_sum` of their x0 loss: same
    value and gradient as differentiating all rows at once, with padding (37 rows in blocks of 5). The
    weights are perturbed off their start, whose zero heads would leave most gradients exactly zero."""
    ds = {"gmm": lambda: synthetic.make_gmm(dim=6, components=2, n_train=37, n_test=5, seed=0),
          "lowrank-gmm": lambda: synthetic.make_lowrank_gmm(dim=6, components=2, rank=2, n_train=37, n_test=5,
                                                            noise=0.1, seed=0),
          "templates": lambda: synthetic.make_templates(components=2, n_train=37, n_test=5, height=3, width=3,
                                                        seed=0)}[dataset]()
    den = build_denoiser(model, 8, 1, "eps", ds)
    leaves, tree = jax.tree_util.tree_flatten(init_params(den, "random", ds, seed=1))
    keys = jax.random.split(jax.random.PRNGKey(2), len(leaves))
    params = tree.unflatten([a + 0.1 * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys)])
    r = np.random.default_rng(4)
    data = (jnp.asarray(ds.train_NxD, jnp.float32), jnp.asarray(r.normal(size=ds.train_NxD.shape), jnp.float32),
            jnp.asarray(r.uniform(0.01, 0.99, 37), jnp.float32), jnp.asarray(r.exponential(size=37), jnp.float32))

    def whole(p, x0, eps, t, w):
        return jnp.sum(w * x0_sq_error(den.x0, p, x0, eps, t))

    block = blocked.blocked_sum(whole, lambda p, x0: x0.shape[1], 5 * ds.dim)
    want, g_want = jax.value_and_grad(whole)(params, *data)
    got, g_got = jax.value_and_grad(block)(params, *data)
    assert float(want) > 0.1
    np.testing.assert_allclose(float(got), float(want), rtol=1e-5)
    # the U-Net's last biases feed a GroupNorm of one channel per group at this size: gradient 0 + rounding
    whole_tree = model == "unet"
    _assert_tree_close(g_got, g_want, whole_tree=whole_tree)
    # the product's loss is this blocked sum (one block at these sizes) ...
    np.testing.assert_allclose(float(den.weighted_sq_error(params, *data)), float(want), rtol=1e-5)
    if den.row_floats:  # ... and in its own layout (rows of `row_floats` activations), here 8 blocks of 5 rows
        small = dataclasses.replace(den, block_floats=5 * den.row_floats)
        assert small.loss_blocks(params, 37, ds.dim) == 8
        got, g_got = jax.value_and_grad(small.weighted_sq_error)(params, *data)
        np.testing.assert_allclose(float(got), float(want), rtol=1e-5)
        _assert_tree_close(g_got, g_want, whole_tree=whole_tree)


def test_training_noise_is_standard_normal_and_a_function_of_the_key():
    key = rng.seed_key(3, rng.TAG_TRAIN)
    eps = np.asarray(rng.normal(key, (400, 50)))
    assert eps.dtype == np.float32
    np.testing.assert_array_equal(eps, np.asarray(rng.normal(key, (400, 50))))
    assert not np.array_equal(eps, np.asarray(rng.normal(jax.random.fold_in(key, 1), (400, 50))))
    n = eps.size  # 20,000 draws: mean within 4 standard errors, variance within 4 of its standard errors
    assert abs(eps.mean()) < 4 / np.sqrt(n) and abs(eps.var() - 1) < 4 * np.sqrt(2 / n)
    assert abs(np.mean(eps**4) - 3) < 4 * np.sqrt(96 / n)  # Gaussian kurtosis
