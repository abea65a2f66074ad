"""predict(x64=True) computes in float64 inside a scope and leaves the process in float32: training
afterwards, in the same process, trains in float32 (issue 10)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memlab.config import DataConfig
from memlab.crossover import predict as predict_mod
from memlab.crossover.predict import CrossoverConfig, predict
from memlab.diffusion.precision import x64
from memlab.diffusion.run import TrainConfig, train_and_evaluate
from memlab.io import load_npy

DATA = DataConfig(dim=4, components=2, n_train=20, n_test=50, seed=0)
TINY = {"draws": 4, "repeats": 2, "grid": 5, "bootstrap": 10}


@pytest.fixture
def probe(monkeypatch):
    """Records JAX's default float and the dtype predict asks for, inside the Monte Carlo computation."""
    seen = []
    inner = predict_mod.monte_carlo_losses

    def spy(*args, **kwargs):
        seen.append((jnp.zeros(1).dtype, np.dtype(args[6])))
        return inner(*args, **kwargs)

    monkeypatch.setattr(predict_mod, "monte_carlo_losses", spy)
    return seen


def test_x64_computes_in_float64_and_leaves_the_process_in_float32(probe):
    assert not jax.config.jax_enable_x64
    r64 = predict(DATA, CrossoverConfig(**TINY, x64=True))
    assert probe[-1] == (np.dtype("float64"), np.dtype("float64"))
    assert not jax.config.jax_enable_x64 and jnp.zeros(1).dtype == jnp.float32
    r32 = predict(DATA, CrossoverConfig(**TINY))
    assert probe[-1] == (np.dtype("float32"), np.dtype("float32"))
    assert r64["per_t"] != r32["per_t"]  # really another computation (64-bit draws)
    assert r64["config"]["crossover"]["x64"] is True


def test_float32_prediction_inside_a_float64_process_stays_float32(probe):
    with x64(True):
        predict(DATA, CrossoverConfig(**TINY))
        assert jax.config.jax_enable_x64  # the caller's setting, back after predict
    assert probe[-1] == (np.dtype("float32"), np.dtype("float32"))
    assert not jax.config.jax_enable_x64


def test_training_after_an_x64_prediction_trains_in_float32(tmp_path):
    predict(DATA, CrossoverConfig(**TINY, x64=True))
    cfg = TrainConfig.from_flat(dict(model="mixture", size=4, steps=20, n_checkpoints=3, samples=16, draws=4, n_boot=20))
    metrics = train_and_evaluate(DATA, cfg, out_dir=tmp_path / "run", progress=False)
    assert metrics["status"] == "ok"
    assert load_npy(tmp_path / "run" / "samples.npy").dtype == np.float32  # the trained model's own dtype
    from memlab.diffusion.checkpoint import Checkpoints

    ck = Checkpoints(tmp_path / "run" / "ckpt")
    restored = ck.manager.restore(ck.latest_step())
    floats = [leaf for leaf in jax.tree_util.tree_leaves(restored) if np.issubdtype(np.asarray(leaf).dtype, np.floating)]
    assert floats and all(np.asarray(leaf).dtype == np.float32 for leaf in floats)
