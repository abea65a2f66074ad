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
