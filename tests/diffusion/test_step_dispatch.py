"""Families that dispatch their training steps one at a time on CPU (the U-Net: the gradients of XLA's CPU
convolutions run ~5-7x slower inside a compiled loop) train as the compiled scan does: two seeds under vmap
and one after another, over a full and a partial chunk."""

import dataclasses

import jax
import numpy as np
import pytest

import synthetic
from memlab.diffusion.model_config import ModelConfig
from memlab.diffusion.models import build, init_params
from memlab.diffusion.process import default_grid
from memlab.diffusion.rng import TAG_TRAIN, key_data, seed_key
from memlab.diffusion.train import Trainer, stack
from memlab.diffusion.train_config import OptimConfig


@pytest.fixture(scope="module")
def unet():
    ds = synthetic.make_templates(components=2, n_train=6, n_test=8, height=6, width=6, seed=0)
    den = build(ModelConfig(family="unet", size=4, depth=1), ds)
    return ds, den, dataclasses.replace(den, loop_on_cpu=False)


def test_the_unet_dispatches_on_cpu_and_the_mlp_does_not(unet):
    ds, den, compiled = unet
    assert den.dispatch_steps == (jax.default_backend() == "cpu") and not compiled.dispatch_steps
    mlp = build(ModelConfig(family="mlp", size=16, depth=1), synthetic.make_gmm(dim=4, components=2, n_train=6, n_test=4, seed=0))
    assert not mlp.dispatch_steps


@pytest.mark.parametrize("seed_mode", ["vmap", "sequential"])
def test_dispatched_training_equals_the_compiled_scan(unet, seed_mode):
    """After one step the weights agree to rounding. Later steps are compared by their losses: parameters
    behind the zero-initialised output convolutions get gradients of rounding size at first, which Adam
    turns into steps of +-lr, so weights that agree to 1e-9 after one step differ by ~1e-3 after twelve in
    either mode (measured), while the losses agree to ~2e-6."""
    ds, den, compiled = unet
    optim = OptimConfig(steps=12, lr=1e-2, draws=2, warmup_frac=0.0, seed_mode=seed_mode)
    runs = {}
    for name, d in (("dispatched", den), ("compiled", compiled)):
        trainer = Trainer(d, optim, ds.train_NxD, default_grid(), 2, 5)
        state = stack([trainer.init_state(init_params(d, "random", ds, s), key_data(seed_key(s, TAG_TRAIN))) for s in (0, 1)])
        first = trainer.advance(state, 1)
        later = trainer.advance(trainer.advance(first, 4), 7)  # a full chunk, then a partial one
        assert np.asarray(later["step"]).tolist() == [12, 12]
        runs[name] = first, later
    for a, b in zip(jax.tree_util.tree_leaves(runs["dispatched"][0]["params"]), jax.tree_util.tree_leaves(runs["compiled"][0]["params"])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    losses = {name: (np.asarray(f["loss"]), np.asarray(g["loss"])) for name, (f, g) in runs.items()}
    assert np.all(losses["compiled"][1] < 0.95 * losses["compiled"][0])  # the steps did train
    np.testing.assert_allclose(losses["dispatched"][1], losses["compiled"][1], rtol=1e-4)
