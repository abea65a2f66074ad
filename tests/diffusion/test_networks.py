"""The registry of denoiser families: every family's forward pass has the output shape and the parameter
count its architecture states (counted by hand here), U-Net and DiT learn on templates, the M axis and the
checks that refuse configs the data cannot take."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import synthetic
from memlab.diffusion import networks
from memlab.diffusion.model_config import ModelConfig
from memlab.diffusion.models import build, build_denoiser, init_params, param_count
from memlab.diffusion.networks.layers import from_image, to_image
from memlab.diffusion.process import eps_from_x0
from memlab.errors import UsageError

T_FEAT = 64  # sinusoidal time features (layers.TIME_FEATURES)


def dense(i, o):
    return i * o + o


def conv3(i, o):
    return 9 * i * o + o


def templates(height=7, width=5, n=12):
    return synthetic.make_templates(components=2, n_train=n, n_test=6, height=height, width=width, seed=0)


def unet_count(c, s, depth):
    """From the architecture in unet.py: time MLP of width 4s, input conv, ResBlocks down, bottom and up
    (channels s, then 2s; the first conv of a block has no bias), output norm and conv."""
    e = 4 * s

    def block(cin, ch):
        return (2 * cin + 9 * cin * ch + dense(e, 2 * ch) + 2 * ch + conv3(ch, ch)
                + (dense(cin, ch) if cin != ch else 0))

    chans = [s] + [2 * s] * depth
    n = dense(T_FEAT, e) + dense(e, e) + conv3(c, s)
    n += sum(block(chans[l - 1] if l else s, chans[l]) for l in range(depth))
    n += block(chans[depth - 1], chans[depth])
    n += sum(block(chans[l + 1] + chans[l], chans[l]) for l in range(depth))
    return n + 2 * s + conv3(s, c)


def dit_count(c, w, depth, patch, tokens):
    """From dit.py: patch embedding, position table, time MLP, blocks (adaLN 6W, attention 4 W x W with
    biases, MLP 4x), final adaLN and head."""
    f = patch * patch * c
    blocks = depth * (dense(w, 6 * w) + 4 * dense(w, w) + dense(w, 4 * w) + dense(4 * w, w))
    return dense(f, w) + tokens * w + dense(T_FEAT, w) + dense(w, w) + blocks + dense(w, 2 * w) + dense(w, f)


CASES = [  # family, options, dataset, hand-counted parameters
    ("mixture", {}, "gmm", 7 * 5 + 1),
    ("mixture", {}, "templates", 7 * 35 + 7 * 3 + 1),
    ("mlp", {}, "gmm", None),  # counted in test_trainable_models
    ("unet", {}, "templates", unet_count(3, 7, 2)),
    ("dit", {"patch": 3, "heads": 7}, "templates", dit_count(3, 7, 2, 3, 3 * 2)),  # 7x5 padded to 9x6: 3x2 tokens
]


@pytest.mark.parametrize("family, options, data, expected", CASES)
def test_forward_shape_and_parameter_count(family, options, data, expected):
    ds = synthetic.make_gmm(dim=5, components=2, n_train=20, n_test=6, seed=0) if data == "gmm" else templates()
    den = build(ModelConfig(family=family, size=7, depth=2, **options), ds)
    params = init_params(den, "random", ds, seed=0)
    x = jnp.asarray(ds.test_TxD, jnp.float32)
    t = jnp.linspace(0.1, 0.9, len(x))
    out = jax.jit(den.output)(params, x, t)
    assert out.shape == (6, ds.dim) and den.family == family
    if expected is not None:
        assert param_count(params) == expected
    # the M axis: the size knob for mixtures, parameter count / d for neural nets
    m_eff = networks.spec(family).effective_size(7, param_count(params), ds.dim)
    assert m_eff == (7.0 if family == "mixture" else param_count(params) / ds.dim)


@pytest.mark.parametrize("family, options", [("unet", {}), ("dit", {"patch": 2, "heads": 2})])
def test_image_nets_start_at_zero_and_keep_samples_apart(family, options):
    """Zero-initialised heads: the first prediction is 0 in the model's units; after perturbing the
    weights, each sample's output depends on that sample only (no batch mixing, padding cropped)."""
    ds = templates()
    den = build(ModelConfig(family=family, size=4, depth=2, **options), ds)
    params = init_params(den, "random", ds, seed=0)
    x, t = jnp.asarray(ds.test_TxD, jnp.float32), jnp.full((6,), 0.4)
    x0, eps = jax.jit(den.x0), jax.jit(den.eps)  # jitted: eager flax compiles every operation on its own
    assert np.allclose(jax.jit(den.output)(params, x, t), 0.0)
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    params = tree.unflatten([a + 0.1 * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys)])
    full = np.asarray(x0(params, x, t))
    assert np.abs(full).max() > 1e-3
    np.testing.assert_allclose(np.asarray(x0(params, x[:2], t[:2])), full[:2], atol=1e-5)
    np.testing.assert_allclose(np.asarray(eps(params, x, t)), np.asarray(eps_from_x0(x, full, 0.4)), atol=1e-4)


def test_image_round_trip_pads_and_crops():
    x = jnp.arange(2 * 3 * 7 * 5, dtype=jnp.float32).reshape(2, -1)
    img = to_image(x, (3, 7, 5), 4)
    assert img.shape == (2, 8, 8, 3) and float(img[:, 7:, :, :].sum()) == 0.0
    assert float(img[1, 2, 3, 1]) == float(x[1, 1 * 35 + 2 * 5 + 3])  # (C, H, W) order
    np.testing.assert_array_equal(np.asarray(from_image(img, (3, 7, 5))), np.asarray(x))


def test_every_registered_family_loads_with_its_name():
    for name in networks.NAMES:
        assert networks.load(name).name == name
    with pytest.raises(UsageError, match="unknown model 'cnn'"):
        networks.spec("cnn")


@pytest.mark.parametrize("kwargs, data, match", [
    ({"family": "unet"}, "gmm", r"model 'unet' needs image-shaped data"),
    ({"family": "dit", "heads": 2}, "gmm", r"model 'dit' needs image-shaped data"),
    ({"family": "unet", "depth": 3}, "templates", r"depth must be <= 2 for 7x5 images"),
    ({"family": "dit", "patch": 6, "heads": 2}, "templates", r"patch must be <= 5"),
])
def test_configs_the_data_cannot_take_are_refused(kwargs, data, match):
    ds = synthetic.make_gmm(dim=5, components=2, n_train=20, n_test=6, seed=0) if data == "gmm" else templates()
    with pytest.raises(UsageError, match=match):
        build(ModelConfig(size=4, **kwargs), ds)


@pytest.mark.parametrize("kwargs, match", [
    ({"family": "dit", "size": 6}, r"heads must divide size \(6\), got 4"),
    ({"family": "dit", "patch": 0}, r"patch must be an integer >= 1, got 0"),
    ({"family": "dit", "heads": 2.0}, r"heads must be an integer >= 1"),
    ({"family": "mlp", "patch": 3}, r"patch applies to model 'dit' only, got 3 for model 'mlp'"),
    ({"family": "unet", "heads": 2}, r"heads applies to model 'dit' only"),
    ({"family": "cnn"}, r"unknown family 'cnn'; allowed: mixture, mlp, unet, dit"),
])
def test_model_config_names_the_bad_field(kwargs, match):
    with pytest.raises(UsageError, match=match):
        ModelConfig(**kwargs)


def test_dit_options_take_their_defaults_only_in_dit():
    assert (ModelConfig(family="dit").patch, ModelConfig(family="dit").heads) == (3, 4)
    assert (ModelConfig(family="unet").patch, ModelConfig(family="unet").heads) == (None, None)
    assert build_denoiser("dit", 8, 1, "x0", templates(), heads=2).module.heads == 2
