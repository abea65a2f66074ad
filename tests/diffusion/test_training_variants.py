"""Training variants: seeds under vmap, the template mixture estimator, the MLP with minibatches."""

import numpy as np

from memlab.config import DataConfig
from memlab.diffusion.run import TrainConfig, train_and_evaluate
from memlab.diffusion.train import VMAP_BYTES, resolve_seed_mode

# the shapes of test_training.py's generalizer, so compiled programs are shared through the cache
DATA = DataConfig(dim=10, components=2, n_train=50, n_test=200, seed=0)
BASE = TrainConfig.from_flat(dict(model="mixture", size=2, steps=600, lr=1e-2, draws=8, samples=128, n_checkpoints=5,
                                   n_boot=200))


def test_seeds_vmap_matches_sequential():
    cfg = BASE.replace(steps=60, seeds=2, n_checkpoints=3)
    seq = train_and_evaluate(DATA, cfg.replace(seed_mode="sequential"), progress=False)
    vec = train_and_evaluate(DATA, cfg.replace(seed_mode="vmap"), progress=False)
    assert [s["seed"] for s in seq["per_seed"]] == [0, 1] and vec["timing"]["seed_mode"] == "vmap"
    for a, b in zip(seq["per_seed"], vec["per_seed"]):
        np.testing.assert_allclose([r["train_loss"] for r in a["per_t"]], [r["train_loss"] for r in b["per_t"]],
                                   rtol=2e-2)  # same draws; float rounding differs under vmap
    assert seq["per_seed"][0]["per_t"] != seq["per_seed"][1]["per_t"]


def test_auto_seed_mode_follows_the_measured_limits():
    assert resolve_seed_mode("auto", 4, 5_000, 90, backend="cpu") == "vmap"  # 29 MB: vmap was 1.4x faster
    assert resolve_seed_mode("auto", 4, 20_000, 210, backend="cpu") == "sequential"  # 270 MB: 0.8x
    assert resolve_seed_mode("auto", 4, 20_000, 66, backend="cpu") == "sequential"  # MLP w=16, 84 MB: 0.9x
    assert resolve_seed_mode("auto", 4, 20_000, 210, backend="gpu") == "vmap"
    assert resolve_seed_mode("auto", 4, VMAP_BYTES // 16, 2, backend="gpu") == "sequential"  # 8x too big
    assert resolve_seed_mode("auto", 1, 100, 10, backend="gpu") == "sequential"
    assert resolve_seed_mode("sequential", 4, 100, 10, backend="gpu") == "sequential"  # an explicit choice stands


def test_template_mixture_memorizes_and_mlp_minibatch_trains():
    tdata = DataConfig(dataset="templates", components=2, n_train=12, n_test=20, height=4, width=4, seed=0)
    small = BASE.replace(steps=40, samples=32, n_checkpoints=3)
    m = train_and_evaluate(tdata, small.replace(size=12), progress=False)
    assert m["memorization_ratio"] >= 0.9 and m["per_seed"][0]["mixture"]["near_training_point"] >= 10
    assert m["param_count"] == 12 * 16 + 12 * 3 + 1
    mlp = train_and_evaluate(DATA, small.replace(model="mlp", size=32, lr=3e-3, batch=20, steps=200), progress=False)
    assert mlp["status"] == "ok" and "mixture" not in mlp["per_seed"][0]
    first, last = mlp["checkpoints"][0], mlp["checkpoints"][-1]
    assert last["train_loss"] < 0.7 * first["train_loss"]  # it learns (x0 loss, averaged over t)
