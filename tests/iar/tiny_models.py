"""Tiny IAR models shared by the intervention and batched-evaluation tests (no weights, no training)."""

import torch

from memlab.iar.fake import FakeIAR
from memlab.iar.models import MaskedTokenModel, NextScaleTransformer, RasterTransformer

V = 16


def tiny_model(name: str):
    """raster | next-scale | masked at width 32, depth 2; fake-raster | fake-next-scale (or fake: raster)."""
    common = dict(vocab_size=V, num_classes=3, width=32, depth=2, heads=2, mlp_ratio=2)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        if name == "raster":
            return RasterTransformer(seq_len=9, **common).eval()
        if name == "next-scale":
            return NextScaleTransformer(scales=(1, 2, 3), **common).eval()
        if name == "masked":
            return MaskedTokenModel(grid=3, image_size=12, **common).eval()
        side = 4 if name == "fake-next-scale" else 3
        arch = "next-scale" if name == "fake-next-scale" else "raster"
        return FakeIAR(arch=arch, side=side, vocab=V, n_classes=3, seed=1).eval()


def lookup_setting(n_targets: int = 4, K: int = 8, L: int = 16, V_: int = 8, n_heldout: int = 48):
    """The fake lookup memorizer of K images (L tokens over V_ codes, lookups that never collide) with its run
    data and evaluation sets (T = the first n_targets images): (model, RunData, EvalSets, tokens K x L)."""
    import numpy as np

    from memlab.iar.evalsets import choose
    from memlab.iar.fake import lookup_memorizer
    from memlab.iar.pipeline import RunData

    g = torch.Generator().manual_seed(0)
    tokens = torch.stack([torch.randperm(V_, generator=g)[:K] for _ in range(L)], 1)
    heldout = torch.randint(0, V_, (n_heldout, L), generator=g)
    y, yh = torch.randint(0, 2, (K,), generator=g), torch.randint(0, 2, (n_heldout,), generator=g)
    model = lookup_memorizer(tokens, n_filler=64)
    ids = np.array([f"img{i}" for i in range(K)])
    data = RunData(model.decode(tokens), y, ids, np.ones(K, int), model.decode(heldout), yh)
    sets = choose(ids, np.ones(K, int), list(ids), n_heldout, targets=list(ids[:n_targets]))
    return model, data, sets, tokens


def train_until_killed(cfg, out, monkeypatch, n_saves: int) -> None:
    """Train `cfg` into `out` and 'kill' it (KeyboardInterrupt) right after its n_saves-th saved epoch, counting
    tokenizer epochs first, then model epochs."""
    import pytest

    from memlab.iar import checkpoint
    from memlab.iar import train as train_mod

    real_save, calls = checkpoint.save_stage, {"n": 0}

    def save_then_maybe_die(stage_dir, epoch, *a, **k):
        real_save(stage_dir, epoch, *a, **k)
        calls["n"] += 1
        if calls["n"] == n_saves:
            raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(train_mod, "save_stage", save_then_maybe_die)
        with pytest.raises(KeyboardInterrupt):
            train_mod.train_run(cfg, out, progress=False, figures=False)
